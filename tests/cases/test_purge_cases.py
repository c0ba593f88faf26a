"""Retention and cases: a case is purged whole, or kept whole (docs/security.md#retention).

The next message of a case is combined with every earlier one, so a purge that took an old IHC
while its case still changes would leave the case to be classified without it. A case goes once
every message of it is old and finished: its messages, its timeline and its numbers; who first
used each number stays, so that ids never pass to another patient.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from adapter.config import Settings
from adapter.pipeline import Context
from adapter.service.handler import Service
from adapter.store import GroupCommitter, Store, Transport, open_store

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "cases"
NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
OLD, RECENT = NOW - timedelta(days=100), NOW - timedelta(days=20)
CUTOFF = NOW - timedelta(days=90)


def fixture(sequence: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((CASES / sequence).iterdir())]


def received(store: Store, messages: list[tuple[datetime, bytes]]) -> None:
    """Each message through the service, received at its time."""
    clock = [NOW]

    async def main() -> None:
        async with GroupCommitter(store) as committer:
            service = Service(Context.from_settings(Settings()), committer, lambda: clock[0])
            for at, message in messages:
                clock[0] = at
                handled = await service.handle(message, Transport.MLLP)
                assert handled.error is None

    asyncio.run(main())


def owners(store: Store, number: str) -> int:
    counted = store._transaction(write=False)
    with counted as session:
        row = session.one("SELECT COUNT(*) FROM case_owners WHERE number = ?", (number,))
    return int(row[0]) if row else 0


def test_a_closed_case_goes_whole_and_an_open_one_stays_whole(store_url: str) -> None:
    """Both messages old: the case, its timeline and numbers go. IHC old and ISH recent: the
    IHC stays with its case. The numbers' first users stay either way."""
    closed_ihc, closed_ish = fixture("ihc2-then-ish-g5")
    open_ihc, open_fish = fixture("reference-lab-by-parent")
    with open_store(store_url) as store:
        received(
            store,
            [(OLD, closed_ihc), (OLD, open_ihc), (OLD, closed_ish), (RECENT, open_fish)],
        )
        purged = store.purge(CUTOFF, batch=1)
        assert (purged.messages, purged.kept_in_open_cases) == (2, 1)
        assert store.find_cases(number="SP26-09005") == []
        assert store.get_message("ihc2-then-ish-g5-1") is None
        assert store.get_message("ihc2-then-ish-g5-2") is None
        assert owners(store, "filler:SP26-09005") == 1
        (open_case,) = store.find_cases(number="SP26-09050")
        assert [e.category for e in store.case_timeline(open_case)] == [
            "HER2-equivocal",
            "HER2-positive",
        ]
        assert store.get_message("reference-lab-by-parent-1") is not None
        assert store.purge(CUTOFF).messages == 0


def test_one_case_of_a_patient_goes_and_the_other_stays(store_url: str) -> None:
    """Two specimens under one accession: the left one's case is closed, the right one's is not."""
    left, right = fixture("two-specimens-one-patient")
    with open_store(store_url) as store:
        received(store, [(OLD, left), (RECENT, right)])
        (left_case, right_case) = (
            sorted(store.find_cases(number="SP26-09080-A1")),
            sorted(store.find_cases(number="SP26-09080-B1")),
        )
        assert store.purge(CUTOFF).messages == 1
        assert store.find_cases(number="SP26-09080-A1") == []
        assert store.find_cases(number="SP26-09080-B1") == right_case
        assert store.find_cases(number="SP26-09080") == right_case
        assert [e.version for e in store.case_timeline(right_case[0])] == [1]
        assert left_case != right_case


def test_a_result_after_the_purge_opens_a_case_that_knows_only_it(store_url: str) -> None:
    """The ISH of a purged case: a new case of one message (not combined with the purged IHC),
    with the ids the first patient's results always had."""
    ihc, ish = fixture("ihc2-then-ish-g5")
    with open_store(store_url) as store:
        received(store, [(OLD, ihc)])
        (before,) = store.find_cases(number="SP26-09005")
        report = store.case_timeline(before)[-1].report_id
        assert store.purge(CUTOFF).messages == 1
        received(store, [(RECENT, ish)])
        (after,) = store.find_cases(number="SP26-09005")
        events = store.case_timeline(after)
        assert [(e.version, e.report_id) for e in events] == [(1, report)]
        assert events[0].category != "HER2-low"  # the IHC 2+ is no longer known
