"""The report index behind the HTTP queries: latest version wins, filters combine."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from adapter.store import Receipt, ReportIndexRow, Store

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
Receive = Callable[..., Receipt]


def report(
    report_id: str, patient: str, category: str = "breast", status: str = "final"
) -> ReportIndexRow:
    return ReportIndexRow(report_id, patient, category, status)


def test_indexed_reports_are_found_with_their_message(store: Store, processed: Receive) -> None:
    """Each indexed report comes back with the message that carried it, and its Bundle."""
    receipt = processed("M1", b"x")
    store.index_reports(receipt.row_id, [report("R1", "P1"), report("R2", "P1", "gastric")])
    found = store.get_report("R2")
    assert found is not None
    assert (found.message_row_id, found.received_at) == (receipt.row_id, T0)
    assert (found.patient, found.category, found.status) == ("P1", "gastric", "final")
    assert found.bundle == b'{"raw":"x"}'  # where the report is: the index holds no copy
    assert store.get_report("absent") is None


def test_correction_in_a_later_message_replaces_the_report(
    store: Store, processed: Receive
) -> None:
    """The latest received message's version of a report is the one returned and found."""
    first = processed("M1", b"v1")
    later = processed("M2", b"v2", at=T0 + timedelta(hours=1))
    store.index_reports(first.row_id, [report("R1", "P1", status="final")])
    store.index_reports(later.row_id, [report("R1", "P1", status="corrected")])
    latest = store.get_report("R1")
    assert latest is not None
    assert (latest.message_row_id, latest.status) == (later.row_id, "corrected")
    assert [r.status for r in store.find_reports(patient="P1")] == ["corrected"]
    assert store.find_reports(status="final") == []


def test_reindexing_an_older_message_does_not_override_the_newer(
    store: Store, processed: Receive
) -> None:
    """Reprocessing an old message must not resurrect its superseded report version."""
    first = processed("M1", b"v1")
    later = processed("M2", b"v2", at=T0 + timedelta(hours=1))
    store.index_reports(later.row_id, [report("R1", "P1", status="corrected")])
    store.index_reports(first.row_id, [report("R1", "P1", status="final")])
    latest = store.get_report("R1")
    assert latest is not None
    assert latest.status == "corrected"


def test_a_report_moved_to_another_patient_is_not_found_under_the_old_one(
    store: Store, processed: Receive
) -> None:
    """Filters apply to the latest version only."""
    first = processed("M1", b"v1")
    later = processed("M2", b"v2", at=T0 + timedelta(hours=1))
    store.index_reports(first.row_id, [report("R1", "P-wrong")])
    store.index_reports(later.row_id, [report("R1", "P-right", status="corrected")])
    assert store.find_reports(patient="P-wrong") == []
    assert [r.patient for r in store.find_reports(patient="P-right")] == ["P-right"]


def test_index_reports_replaces_the_message_rows(store: Store, processed: Receive) -> None:
    """Reindexing a message replaces its reports; an empty list clears them."""
    receipt = processed("M1", b"x")
    store.index_reports(receipt.row_id, [report("R1", "P1"), report("R2", "P1")])
    store.index_reports(receipt.row_id, [report("R2", "P1", status="amended")])
    assert [(r.report_id, r.status) for r in store.find_reports()] == [("R2", "amended")]
    store.index_reports(receipt.row_id, [])
    assert store.find_reports() == []


def test_index_reports_for_a_missing_message_raises_and_stores_nothing(store: Store) -> None:
    """Reports always belong to a stored message."""
    with pytest.raises(LookupError):
        store.index_reports(42, [report("R1", "P1")])
    assert store.find_reports() == []


FIND_CASES = [
    pytest.param({}, ["R1", "R2", "R3", "R4"], id="no-filter-all-by-report-id"),
    pytest.param({"patient": "P1"}, ["R1", "R2"], id="patient"),
    pytest.param({"category": "gastric"}, ["R2", "R4"], id="category"),
    pytest.param({"status": "preliminary"}, ["R3"], id="status"),
    pytest.param({"patient": "P1", "category": "gastric"}, ["R2"], id="patient-and-category"),
    pytest.param({"patient": "P2", "status": "final"}, ["R4"], id="patient-and-status"),
    pytest.param({"patient": "P3"}, [], id="unknown-patient"),
]


@pytest.mark.parametrize(("filters", "expected"), FIND_CASES)
def test_find_reports_filters_combine(
    store: Store, processed: Receive, filters: dict[str, str], expected: list[str]
) -> None:
    """Every given filter must match; the result is ordered by report id."""
    receipt = processed("M1", b"x")
    store.index_reports(
        receipt.row_id,
        [
            report("R3", "P2", "breast", "preliminary"),
            report("R1", "P1", "breast"),
            report("R4", "P2", "gastric"),
            report("R2", "P1", "gastric"),
        ],
    )
    assert [r.report_id for r in store.find_reports(**filters)] == expected
