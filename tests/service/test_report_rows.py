"""``report_rows``: each DiagnosticReport of a Bundle is indexed with its own case's audit facts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapter.audit.facts import ReportFacts
from adapter.config import Settings
from adapter.model import SourceFormat
from adapter.pipeline import Context, RawMessage, process
from adapter.service.workers import processed, report_rows
from adapter.store import ReportIndexRow

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "cases"


def _two_specimens_one_message() -> bytes:
    """The two-specimens fixture's two orders (left IHC 3+, right IHC 0) in one message."""
    folder = CASES / "two-specimens-one-patient"
    left, right = (p.read_bytes().split(b"\r") for p in sorted(folder.iterdir()))
    header, order = left[:3], left[3:]
    return b"\r".join([*header, *order[:-1], *right[3:]])


def _reports(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    ]


def _facts(row: ReportIndexRow) -> ReportFacts:
    assert row.audit is not None
    return ReportFacts.from_json(row.audit)


def test_two_cases_in_one_message_each_have_their_own_facts() -> None:
    """Two specimens in one message: two case reports, each indexed with its own category."""
    outcome = process(
        RawMessage(_two_specimens_one_message(), SourceFormat.HL7V2),
        Context.from_settings(Settings()),
    )
    assert outcome.error is None
    assert outcome.bundle is not None
    rows = processed(outcome).reports
    assert [_facts(row).category for row in rows] == ["HER2-positive", "HER2-negative"]
    # the row's category is its report's conclusion code (the index holds no copy of the report)
    assert [row.category for row in rows] == ["HER2-positive", "HER2-negative"]
    assert [row.report_id for row in rows] == [r["id"] for r in _reports(outcome.bundle)]


def test_reports_in_another_order_keep_their_facts() -> None:
    """The facts follow the report's id, not its place in the Bundle."""
    outcome = process(
        RawMessage(_two_specimens_one_message(), SourceFormat.HL7V2),
        Context.from_settings(Settings()),
    )
    assert outcome.bundle is not None
    facts = {row.report_id: _facts(row) for row in processed(outcome).reports}
    bundle = dict(outcome.bundle, entry=list(reversed(outcome.bundle["entry"])))
    rows = report_rows(bundle, facts)
    assert [_facts(row).category for row in rows] == ["HER2-negative", "HER2-positive"]
    assert all(_facts(row).category == row.category for row in rows)


def test_two_orders_of_one_case_give_one_report() -> None:
    """An IHC order and a FISH order of one specimen: one case report, with the ISH in it."""
    data = (CASES / "two-groups-one-message" / "1-ihc-and-fish.hl7").read_bytes()
    outcome = process(RawMessage(data, SourceFormat.HL7V2), Context.from_settings(Settings()))
    assert len(outcome.records) == 2
    (row,) = processed(outcome).reports
    facts = _facts(row)
    assert (facts.category, facts.ish_reported, facts.ish_group) == ("HER2-low", True, 5)


def test_a_report_without_facts_is_indexed_without_them() -> None:
    """A report no case names is indexed (searchable) but gives the audit nothing to count."""
    outcome = process(
        RawMessage(_two_specimens_one_message(), SourceFormat.HL7V2),
        Context.from_settings(Settings()),
    )
    assert outcome.bundle is not None
    first, second = processed(outcome).reports
    rows = report_rows(outcome.bundle, {first.report_id: _facts(first)})
    assert [row.report_id for row in rows] == [first.report_id, second.report_id]
    assert rows[0].audit == first.audit
    assert rows[1].audit is None
