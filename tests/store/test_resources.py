"""The resource index behind the FHIR facade: latest version wins, filters combine, pages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from adapter.store import (
    IndexReportsRequest,
    Receipt,
    ReportIndexRow,
    ResourceIndexRow,
    ResourceSearch,
    Store,
    StoredResource,
)

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
Receive = Callable[..., Receipt]


def row(
    resource_id: str,
    patient: str = "Patient/P1",
    tokens: str = " code:A code:|A ",
    moment: str = "2024-03-01T10:00:00Z",
    kind: str = "Observation",
) -> ResourceIndexRow:
    return ResourceIndexRow(kind, resource_id, patient, tokens, moment)


def ids(found: tuple[int, list[StoredResource]]) -> list[str]:
    return [resource.resource_id for resource in found[1]]


def test_latest_version_is_read_and_searched(store: Store, processed: Receive) -> None:
    """A later message's version replaces the earlier one for reads and for every filter."""
    first = processed("M1", b"v1")
    later = processed("M2", b"v2", at=T0 + timedelta(hours=1))
    store.index_reports(first.row_id, [], [row("O1", patient="Patient/P-wrong")])
    store.index_reports(
        later.row_id, [], [ResourceIndexRow("Observation", "O1", "Patient/P-right", "", "")]
    )
    # found with the Bundle of the message that carries its latest version, its one copy
    assert store.get_resource("Observation", "O1") == StoredResource(
        "Observation", "O1", b'{"raw":"v2"}'
    )
    assert store.get_resource("Patient", "O1") is None
    assert ids(store.find_resources(ResourceSearch("Observation", patient="Patient/P-wrong"))) == []
    assert ids(store.find_resources(ResourceSearch("Observation", patient="Patient/P-right"))) == [
        "O1"
    ]


SEARCHES = [
    pytest.param(ResourceSearch("Observation"), ["O1", "O2", "O3"], id="all-by-id"),
    pytest.param(ResourceSearch("Observation", resource_id="O2"), ["O2"], id="id"),
    pytest.param(ResourceSearch("Observation", tokens=(("code:B",),)), ["O2"], id="token"),
    pytest.param(
        ResourceSearch("Observation", tokens=(("code:B", "code:C"),)), ["O2", "O3"], id="or"
    ),
    pytest.param(
        ResourceSearch("Observation", tokens=(("code:A",), ("status:final",))), [], id="and"
    ),
    pytest.param(ResourceSearch("Observation", tokens=(("code:%",),)), [], id="like-is-literal"),
    pytest.param(
        ResourceSearch("Observation", moments=((">=", "2024-03-02T00:00:00Z"),)),
        ["O2", "O3"],
        id="moment",
    ),
    pytest.param(ResourceSearch("Observation", count=1, offset=1), ["O2"], id="page"),
    pytest.param(ResourceSearch("Patient"), [], id="other-type"),
]


@pytest.mark.parametrize(("search", "expected"), SEARCHES)
def test_find_resources(
    store: Store, processed: Receive, search: ResourceSearch, expected: list[str]
) -> None:
    """Every filter must hold; the total counts every match, the page is by id."""
    receipt = processed("M1", b"x")
    store.index_reports(
        receipt.row_id,
        [],
        [
            row("O3", tokens=" code:C ", moment="2024-03-03T00:00:00Z"),
            row("O1"),
            row("O2", tokens=" code:B ", moment="2024-03-02T00:00:00Z"),
        ],
    )
    total, _ = store.find_resources(
        ResourceSearch(
            search.resource_type, search.resource_id, search.patient, search.tokens, search.moments
        )
    )
    assert ids(store.find_resources(search)) == expected
    assert total >= len(expected)


def test_search_refuses_an_operator_that_is_not_a_comparison() -> None:
    """Operators reach SQL text: only the five comparisons are accepted."""
    with pytest.raises(ValueError, match="comparison"):
        ResourceSearch("Observation", moments=(("; DROP", "x"),))


def test_a_batch_indexes_each_message_as_its_last_request_says(
    store: Store, processed: Receive
) -> None:
    """The index rows of a whole batch are written together: for a message indexed twice in
    one batch the later request wins, a group refused for a missing row indexes nothing, and
    more rows than one statement takes (64) are all written."""
    first = processed("M1", b"v1")
    second = processed("M2", b"v2", at=T0 + timedelta(hours=1))
    many = [row(f"X{number:03d}") for number in range(100)]
    outcomes = store.write_batch(
        [
            [IndexReportsRequest(first.row_id, [], [row("O1")])],
            [IndexReportsRequest(second.row_id, [ReportIndexRow("R2", "P", "c", "final")], many)],
            [IndexReportsRequest(9999, [], [row("GHOST")])],
            [IndexReportsRequest(first.row_id, [ReportIndexRow("R1", "P", "c", "final")], [])],
        ]
    )
    assert [type(outcome) for outcome in outcomes] == [list, list, LookupError, list]
    assert store.get_resource("Observation", "O1") is None  # replaced by the later request
    assert store.get_resource("Observation", "GHOST") is None
    assert ids(store.find_resources(ResourceSearch("Observation", count=200))) == [
        f"X{number:03d}" for number in range(100)
    ]
    reports = {report.report_id: report.message_row_id for report in store.find_reports()}
    assert reports == {"R1": first.row_id, "R2": second.row_id}
    assert len(store.audit_rows()) == 2
