"""The IHC→ISH time of a case, along its timeline: a reflex ISH in a later message counts."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from audit_traffic import (
    DAY,
    IHC2,
    LAB_R,
    REFLEX_DAYS,
    Case,
    audit_of,
    cell,
    message,
    reflex_traffic,
    store_messages,
)

from adapter.audit.facts import case_facts
from adapter.audit.sources import from_files
from adapter.cases import PriorMessage
from adapter.cases.log import CaseLog
from adapter.config import Settings
from adapter.pipeline import Context, process, split_input
from adapter.store import open_store

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "cases"


def _hours(data: list[bytes]) -> list[float | None]:
    """Each case's IHC→ISH hours as its last message leaves it (the pipeline, one run)."""
    context = Context.from_settings(Settings())
    cases, latest = CaseLog(), {}
    for raw in (m for d in data for m in split_input(d)):
        outcome = process(raw, context, cases.prior)
        assert outcome.application is not None
        cases.add(PriorMessage(raw.data, raw.format), outcome.application)
        latest.update(
            {v.case_id: case_facts(v).ihc_to_ish_hours for v in outcome.application.cases}
        )
    return list(latest.values())


def test_a_reflex_ish_in_a_later_message_is_timed_by_the_reports_issue_times() -> None:
    """Each case's time is the ISH order's OBR-22 minus the IHC order's, not 0 from the
    result times (which repeat the collection time's day here)."""
    assert _hours(reflex_traffic()) == [24.0 * days for days in REFLEX_DAYS]


def test_the_stores_audit_times_the_reflex_ish(tmp_path: Path) -> None:
    """In the store: one report per case, each with its ISH, the median over the four cases;
    the case timeline holds the IHC version and then the ISH version."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store_messages(url, reflex_traffic())
    month = cell(audit_of(url), LAB_R, "2024-03")
    assert month["reports"] == 4
    work = month["workup"]
    assert (work["ihc2"], work["ihc2_with_ish"], work["ihc_to_ish_timed"]) == (4, 4, 4)
    assert work["ihc_to_ish_median_hours"] == 24.0 * (3 + 5) / 2
    with open_store(url) as store:
        (case_id,) = store.find_cases(number="ACC1R")
        timeline = store.case_timeline(case_id)
    added = [[c["analyte"] for c in orjson.loads(e.changes)["added"]] for e in timeline]
    assert [e.category for e in timeline] == ["HER2-equivocal", "HER2-low"]
    assert added[0] == ["her2-ihc"]
    assert added[1] == ["her2-cep17-ratio", "her2-copies", "cep17-copies"]


def test_files_give_the_stores_times(tmp_path: Path) -> None:
    """The same traffic as files, audited without a store: the same figures."""
    names = []
    for number, data in enumerate(reflex_traffic(), start=1):
        names.append(str(tmp_path / f"m{number:02d}.hl7"))
        Path(names[-1]).write_bytes(data)
    data = from_files(names)
    hours = sorted(r.facts.ihc_to_ish_hours or 0 for r in data.reports if r.facts)
    assert hours == [24.0 * days for days in REFLEX_DAYS]


def test_both_in_one_order_are_timed_by_their_result_times() -> None:
    """IHC and ISH in one order: OBX-14 tells them apart (the order has one issue time)."""
    assert _hours([message(Case("LAB-R", DAY, ihc="2+", ish=IHC2.ish, ish_hours=30), 1)]) == [30.0]


def test_a_reflex_ish_without_an_issue_time_is_not_timed() -> None:
    """An order without OBR-22 gives no time: the result times would be a guess."""
    data = [message(IHC2, 1, part="ihc"), message(IHC2, 1, part="ish", issued_after=None)]
    assert _hours(data) == [None]


@pytest.mark.parametrize(
    ("folder", "hours"),
    [
        # the ISH arrived first: there is no time from IHC to ISH
        ("ish-g5-then-ihc1", None),
        # the same order sent again with the ISH: two arrivals, by their OBR-22
        ("repeat-order-new-results", 52.25),
        # the IHC corrected a week later keeps the time it first came
        ("correction-after-final", 52.25),
        # a reference lab's FISH order found by its OBR-29 parent
        ("reference-lab-by-parent", 97.75),
        # the IHC withdrawn: nothing to time from
        ("fhir-ihc2-then-ish-g5", None),
    ],
)
def test_case_fixtures(folder: str, hours: float | None) -> None:
    """The case fixtures' timelines, read as the lab's issue times give them."""
    files = sorted((CASES / folder).iterdir())
    assert _hours([path.read_bytes() for path in files]) == [hours]
