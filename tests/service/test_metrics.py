"""The audit's signals in /metrics: per sender and category, IHC class, flag and unused code,
with bounded label sets."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from audit_traffic import Case, message
from http_support import build_runtime, serving

from adapter.service import metrics
from adapter.service.metrics import REGISTRY, BoundedLabel

pytestmark = pytest.mark.anyio
HL7 = {"Content-Type": "x-application/hl7-v2+er7"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_bounded_label_keeps_its_first_values_and_calls_the_rest_other() -> None:
    """Past its cap, a label is 'other'; values seen before keep theirs."""
    label = BoundedLabel(2)
    assert [label(v) for v in ("a", "b", "c", "a", "d", "b")] == [
        "a",
        "b",
        "other",
        "a",
        "other",
        "b",
    ]


async def test_processed_reports_are_counted_by_sender_category_flag_and_code(
    tmp_path: Path,
) -> None:
    """Messages over HTTP count in every audit metric, with no patient data in /metrics."""
    sender = "METRICS-LAB^METRICS-LAB PATHOLOGY"
    day = date(2024, 3, 1)
    before = {
        "low": value("her2_reports_total", sender=sender, tissue="breast", category="HER2-low"),
        "ihc1": value("her2_ihc_scores_total", sender=sender, tissue="breast", ihc="1+"),
        "flag": value("her2_report_flags_total", sender=sender, flag="lab-interpretation-differs"),
        "code": value(
            "her2_unused_results_total",
            sender=sender,
            kind="unmapped-code",
            code="urn:her2-adapter:local:99LOC|KI67",
        ),
    }
    cases = [
        Case("METRICS-LAB", day, "1+"),
        Case("METRICS-LAB", day, "1+", stated="Positive"),
        Case("METRICS-LAB", day, "1+", unmapped_code="KI67"),
    ]
    async with serving(build_runtime(tmp_path)) as client:
        for number, case in enumerate(cases, start=900_001):
            answer = await client.post("/hl7v2", content=message(case, number), headers=HL7)
            assert answer.status_code == 200
        scraped = (await client.get("/metrics")).text
    assert (
        value("her2_reports_total", sender=sender, tissue="breast", category="HER2-low")
        == before["low"] + 3
    )
    assert value("her2_ihc_scores_total", sender=sender, tissue="breast", ihc="1+") == (
        before["ihc1"] + 3
    )
    assert (
        value("her2_report_flags_total", sender=sender, flag="lab-interpretation-differs")
        == before["flag"] + 1
    )
    assert (
        value(
            "her2_unused_results_total",
            sender=sender,
            kind="unmapped-code",
            code="urn:her2-adapter:local:99LOC|KI67",
        )
        == before["code"] + 1
    )
    assert "her2_reports_total{" in scraped
    assert "MRN" not in scraped


async def test_senders_beyond_the_cap_count_as_other(tmp_path: Path) -> None:
    """Senders past the cap are counted under sender='other'."""
    saved = metrics._senders
    metrics._senders = BoundedLabel(1)
    try:
        before = value("her2_reports_total", sender="other", tissue="breast", category="HER2-low")
        async with serving(build_runtime(tmp_path)) as client:
            for number, name in enumerate(("CAP-ONE", "CAP-TWO", "CAP-THREE"), start=910_001):
                body = message(Case(name, date(2024, 3, 1), "1+"), number)
                assert (await client.post("/hl7v2", content=body, headers=HL7)).status_code == 200
        assert (
            value("her2_reports_total", sender="other", tissue="breast", category="HER2-low")
            == before + 2
        )
        assert not value(
            "her2_reports_total",
            sender="CAP-TWO^CAP-TWO PATHOLOGY",
            tissue="breast",
            category="HER2-low",
        )
    finally:
        metrics._senders = saved


def test_the_caps_come_from_the_settings() -> None:
    """bound_labels sets both caps (serve calls it with the settings)."""
    saved = (metrics._senders.limit, metrics._codes.limit)
    try:
        metrics.bound_labels(7, 9)
        assert (metrics._senders.limit, metrics._codes.limit) == (7, 9)
    finally:
        metrics.bound_labels(*saved)


def test_a_metric_child_is_found_again_and_counts_in_the_registry() -> None:
    """``Children`` hands out the child ``labels`` makes, once made, so what it counts is what
    /metrics shows."""
    children = metrics.Children(metrics.ACKS)
    before = value("her2_acks_total", code="XX-TEST")
    child = children("XX-TEST")
    assert child is children("XX-TEST") is metrics.ACKS.labels(code="XX-TEST")
    child.inc()
    children("XX-TEST").inc(2)
    assert value("her2_acks_total", code="XX-TEST") == before + 3
