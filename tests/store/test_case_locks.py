"""Two services on one database: their writes to one case take turns (adapter/store/cases.py).

Each message of a case is first combined with what its service's store held; the case write
checks, in the transaction that stores it, that the store still holds that. Two connections
(two services) racing on one case must not both pass the check: the second waits for the
first's transaction and then finds the case changed (``CaseConflict``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from store.conftest import T0

import adapter.store.cases as case_sql
from adapter.store import CaseConflict, CaseEventRow, CaseWriteRequest, Store, open_store

SENDER = "GOODHEALTH PATHOLOGY"
PATIENT = "identifier|urn:oid:1.2.3|TST000001"
NUMBER = "filler:SP26-09005"


def case_write(row_id: int, case_id: str, number: str = NUMBER) -> CaseWriteRequest:
    """A message combined with nothing (the store held no case of the number) opening a case."""
    event = CaseEventRow(
        case_id, SENDER, PATIENT, (number,), f"report-{case_id}", "HER2-low", "", "final", "{}"
    )
    return CaseWriteRequest(
        row_id,
        ((SENDER, PATIENT, number),),
        ((SENDER, number),),
        (),
        (),
        (((SENDER, number), PATIENT),),
        (event,),
    )


def received(store: Store, message_id: str) -> int:
    return store.receive(
        transport="mllp",
        message_format="hl7v2",
        sender=SENDER,
        message_id=message_id,
        raw=message_id.encode(),
        received_at=T0,
    ).row_id


def hold_case_write(
    row_id: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Event, threading.Event]:
    """The case write of ``row_id`` stays written but uncommitted from ``written`` being set
    until ``release`` is: the other connection acts meanwhile."""
    written, release = threading.Event(), threading.Event()
    write = case_sql.write

    def held_write(session: object, request: CaseWriteRequest) -> None:
        write(session, request)  # type: ignore[arg-type]
        if request.message_row_id == row_id:
            written.set()
            assert release.wait(30)

    monkeypatch.setattr(case_sql, "write", held_write)
    return written, release


@pytest.fixture
def two_stores(store_url: str) -> Iterator[tuple[Store, Store]]:
    """Two stores (two connections) on one database, as two services would open it."""
    with open_store(store_url, timeout=30) as first, open_store(store_url, timeout=30) as second:
        yield first, second


def test_the_second_writer_of_a_case_waits_and_finds_it_changed(
    two_stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holds its case write uncommitted; B's write waits for it, then conflicts."""
    first, second = two_stores
    row_a, row_b = received(first, "A"), received(second, "B")
    written, release = hold_case_write(row_a, monkeypatch)
    a = threading.Thread(target=first.write, args=([case_write(row_a, "case-specimen")],))
    a.start()
    assert written.wait(30)
    outcome: list[BaseException | None] = []

    def write_b() -> None:
        # B names the accession only, so it would open a case of another id: no unique
        # constraint stops it, only the check.
        try:
            second.write([case_write(row_b, "case-accession")])
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome.append(error)
        else:
            outcome.append(None)

    b = threading.Thread(target=write_b)
    b.start()
    b.join(1.0)
    waited = b.is_alive()  # B cannot have passed its check while A's write is open
    release.set()
    a.join(30)
    b.join(30)
    assert waited
    assert len(outcome) == 1
    assert isinstance(outcome[0], CaseConflict)
    assert first.find_cases(number="SP26-09005") == ["case-specimen"]


def test_writes_of_other_cases_do_not_wait(
    two_stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The locks are per number and case: B's write of another case goes through while A's
    is open (PostgreSQL; SQLite has one write lock for the whole file)."""
    first, second = two_stores
    if first.backend_name != "postgresql":
        pytest.skip("SQLite serialises every write transaction")
    row_a, row_b = received(first, "A"), received(second, "B")
    written, release = hold_case_write(row_a, monkeypatch)
    a = threading.Thread(target=first.write, args=([case_write(row_a, "case-a")],))
    a.start()
    assert written.wait(30)
    other = case_write(row_b, "case-b", "filler:SP26-77777")
    try:
        second.write([other])  # returns while A is still open
    finally:
        release.set()
        a.join(30)
    assert second.find_cases(number="SP26-77777") == ["case-b"]


def test_a_purge_does_not_take_a_case_a_write_just_added_to(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The purge chose an old, closed case's IHC; before it deletes, another service stores the
    case's reflex ISH. The purge locks the case, sees the ISH, and leaves the case whole (without
    the lock its DELETE saw the ISH's committed event and took it with the IHC)."""
    from cases.test_purge_cases import CUTOFF, OLD, RECENT, fixture
    from cases.test_purge_cases import received as through_service

    ihc, ish = fixture("ihc2-then-ish-g5")
    with open_store(postgres_url, timeout=30) as purging, open_store(postgres_url) as other:
        through_service(purging, [(OLD, ihc)])
        lock_keys = case_sql.purge_lock_keys
        chose: list[str] = []

        def ish_arrives_meanwhile(session: object, message_ids: list[int]) -> list[str]:
            keys = lock_keys(session, message_ids)  # type: ignore[arg-type]
            if not chose:
                chose.extend(keys)
                through_service(other, [(RECENT, ish)])  # committed before the purge locks
            return keys

        monkeypatch.setattr(case_sql, "purge_lock_keys", ish_arrives_meanwhile)
        purged = purging.purge(CUTOFF)
        assert chose
        assert (purged.messages, purged.kept_in_open_cases) == (0, 1)
        (case,) = purging.find_cases(number="SP26-09005")
        assert [e.category for e in purging.case_timeline(case)] == [
            "HER2-equivocal",
            "HER2-low",
        ]
