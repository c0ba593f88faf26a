"""The audit over a store of known traffic (tests/audit_traffic.py): figures, drift, privacy."""

from __future__ import annotations

import math
import statistics
from typing import Any

import orjson
import pytest
from audit_traffic import (
    IHC2_WORKUP,
    ISH_HOURS,
    JUMP_MONTH,
    LAB_A,
    LAB_B,
    LAB_C,
    STEADY_MONTH,
    audit_of,
    cell,
)

from adapter.audit.figures import Period
from adapter.model import Category, FlagCode

SHARE = 5e-5  # shares are rounded to four places

GROUP_5 = sum(1 for ish in IHC2_WORKUP if ish == ("1.2", "2.5", "2.1"))
GROUP_4 = sum(1 for ish in IHC2_WORKUP if ish == ("1.6", "4.9", "3.06"))
NO_ISH = sum(1 for ish in IHC2_WORKUP if ish is None)


@pytest.fixture(scope="module")
def audit(traffic_store_url: str) -> dict[str, Any]:
    return audit_of(traffic_store_url)


def test_breast_and_gastric_category_mix_are_counted_apart(audit: dict[str, Any]) -> None:
    """A month of LAB-A: the breast mix as the traffic was built, the gastric report apart."""
    january = cell(audit, LAB_A, "2024-01")
    breast = january["categories"]["breast"]
    expected = {
        "HER2-positive": STEADY_MONTH["3+"],
        "HER2-low": STEADY_MONTH["1+"] + GROUP_5,
        "HER2-ultralow": STEADY_MONTH["0 ultralow"],
        "HER2-null": STEADY_MONTH["0 null"],
        "HER2-negative": STEADY_MONTH["0"],
        "HER2-equivocal": GROUP_4 + NO_ISH,
        "indeterminate": 0,
        "HER2-not-reported": 0,
        "HER2-not-understood": 0,
    }
    assert breast["counts"] == expected
    assert breast["total"] == sum(STEADY_MONTH.values())
    assert breast["shares"]["HER2-low"] == pytest.approx(expected["HER2-low"] / 40, abs=SHARE)
    gastric = january["categories"]["gastroesophageal"]
    assert (gastric["total"], gastric["counts"]["HER2-negative"]) == (1, 1)
    assert january["reports"] == 41


def test_the_ihc_distribution_shows_the_jump(audit: dict[str, Any]) -> None:
    """LAB-B's April IHC distribution is the jump month as built."""
    april = cell(audit, LAB_B, "2024-04")["ihc"]["breast"]
    assert april["counts"] == {
        "0 null": JUMP_MONTH["0 null"],
        "0 ultralow": JUMP_MONTH["0 ultralow"],
        "0 unknown sub-type": JUMP_MONTH["0"],
        "1+": JUMP_MONTH["1+"],
        "2+": JUMP_MONTH["2+"],
        "3+": JUMP_MONTH["3+"],
    }
    assert april["shares"]["0 null"] == pytest.approx(0.4, abs=SHARE)


def test_the_jump_in_ihc_0_is_flagged_against_the_labs_own_past_and_its_peers(
    audit: dict[str, Any],
) -> None:
    """The April IHC 0 jump is flagged with the z and p the formula gives; the steady lab is not."""
    flagged = {
        (t["sender"], t["period"], t["ihc"], t["against"]): t for t in audit["drift"]["flagged"]
    }
    own = flagged[(LAB_B, "2024-04", "0 null", "own-earlier")]
    assert (own["count"], own["scored"]) == (16, 40)
    assert (own["reference_count"], own["reference_scored"]) == (12, 120)
    pooled = 28 / 160
    z = (16 / 40 - 12 / 120) / math.sqrt(pooled * (1 - pooled) * (1 / 40 + 1 / 120))
    assert own["z"] == pytest.approx(z, abs=1e-3)
    assert own["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-2)
    assert own["p_value"] < audit["drift"]["alpha"]
    assert (LAB_B, "2024-04", "1+", "own-earlier") in flagged
    # The steady lab never drifts from its own past, and nothing drifts before April.
    assert not [key for key in flagged if key[0] == LAB_A and key[3] == "own-earlier"]
    assert {key[1] for key in flagged} == {"2024-04"}


def test_a_sender_with_few_reports_shows_counts_and_no_shares(audit: dict[str, Any]) -> None:
    """Five reports in a month: counts only, no shares, no drift test."""
    march = cell(audit, LAB_C, "2024-03")
    assert march["reports"] == 5
    assert march["shares_shown"] is False
    assert march["categories"]["breast"]["shares"] is None
    assert march["categories"]["breast"]["counts"]["HER2-low"] == 5
    assert march["workup"]["pending_share"] is None
    assert march["quality"]["flag_shares"] is None
    assert not [t for t in audit["drift"]["results"] if t["sender"] == LAB_C]


def test_the_min_reports_threshold_is_configurable(traffic_store_url: str) -> None:
    """With min_reports 5, LAB-C's five reports show their shares."""
    audit = audit_of(traffic_store_url, min_reports=5)
    assert cell(audit, LAB_C, "2024-03")["categories"]["breast"]["shares"]["HER2-low"] == 1.0


def test_work_up_health(audit: dict[str, Any]) -> None:
    """IHC 2+ with ISH, the median IHC→ISH time, groups 2-4, pending and equivocal shares."""
    work = cell(audit, LAB_A, "2024-02")["workup"]
    with_ish = GROUP_5 + GROUP_4
    assert (work["ihc2"], work["ihc2_with_ish"]) == (STEADY_MONTH["2+"], with_ish)
    assert work["ihc2_with_ish_share"] == pytest.approx(with_ish / STEADY_MONTH["2+"], abs=SHARE)
    assert work["ihc_to_ish_median_hours"] == pytest.approx(statistics.median(ISH_HOURS))
    assert work["ihc_to_ish_timed"] == with_ish
    assert work["groups"] == {"1": 0, "2": 0, "3": 0, "4": GROUP_4, "5": GROUP_5}
    assert work["groups_2_4_share"] == pytest.approx(GROUP_4 / with_ish, abs=SHARE)
    assert work["pending"] == GROUP_4 + NO_ISH
    assert work["equivocal_share"] == pytest.approx((GROUP_4 + NO_ISH) / 41, abs=SHARE)


def test_disagreements_by_rule(audit: dict[str, Any]) -> None:
    """The monthly 'lab says positive, IHC 1+' report, by call and by the HER2 rules fired."""
    total = cell(audit, LAB_A, "all")["disagreements"]
    assert total["reports"] == 4  # one a month: the lab says positive, IHC 1+ says negative
    assert total["by_rule"]["HER2-IHC-1"] == 4
    assert total["by_call"] == {"positive → HER2-low": 4}
    assert not any(rule.startswith(("ER-", "PGR-", "HR-")) for rule in total["by_rule"])


def test_data_quality_by_code(audit: dict[str, Any]) -> None:
    """The unmapped local code is counted by code; the rejected message by error code."""
    lab_a = cell(audit, LAB_A, "all")["quality"]
    assert lab_a["unused_codes"] == [
        {"kind": "unmapped-code", "code": "urn:her2-adapter:local:99LOC|KI67", "count": 4}
    ]
    assert lab_a["unused"]["unmapped-code"] == 4
    assert lab_a["flags"]["pending-workup"] == 4 * (GROUP_4 + NO_ISH)
    lab_c = cell(audit, LAB_C, "all")["quality"]
    assert lab_c["unprocessed"] == {"NO-HER2-RESULT": 1}


def test_the_vocabularies_come_from_the_enums(audit: dict[str, Any]) -> None:
    """Categories and flags are the model's enums: a new member shows up by itself."""
    assert audit["vocabulary"]["categories"] == [c.value for c in Category]
    assert audit["vocabulary"]["flags"] == [f.value for f in FlagCode]
    assert set(cell(audit, LAB_A, "all")["quality"]["flags"]) == {f.value for f in FlagCode}


def test_sender_and_week_filters(traffic_store_url: str) -> None:
    """One sender, by ISO week (reports are issued on the 13th of each month)."""
    audit = audit_of(traffic_store_url, sender=LAB_B, period=Period.WEEK)
    assert audit["senders"] == [LAB_B]
    # Each month's reports are issued on the 13th (three days after the 10th).
    assert audit["periods"] == ["2024-W02", "2024-W07", "2024-W11", "2024-W15"]


def test_since_and_until_keep_the_days_in_between(traffic_store_url: str) -> None:
    """--since is inclusive, --until exclusive, on the report day."""
    from datetime import date

    audit = audit_of(traffic_store_url, since=date(2024, 2, 1), until=date(2024, 4, 1))
    assert audit["periods"] == ["2024-02", "2024-03"]


def test_no_patient_data_reaches_the_audit(audit: dict[str, Any]) -> None:
    """No identifier, name, birth date or order number anywhere in the figures."""
    text = orjson.dumps(audit).decode()
    for patient_detail in ("MRN", "TEST", "PATIENT", "19600101", "ACC", "PLC"):
        assert patient_detail not in text


def test_a_value_no_enum_names_is_still_shown() -> None:
    """A category or flag written by another adapter version is counted after the known ones."""
    from datetime import date

    from adapter.audit.facts import ReportFacts
    from adapter.audit.figures import AuditInput, build_audit

    facts = ReportFacts(
        tissue="breast",
        category="HER2-from-elsewhere",
        official="negative",
        ihc=None,
        ish_reported=False,
        ish_group=None,
        flags=("a-new-flag",),
        rules=(),
        unused=(),
        warnings=(),
        lab_stated=None,
        reported_on=date(2024, 5, 2),
        ihc_to_ish_hours=None,
    )
    audit = build_audit([AuditInput("LAB", facts.reported_on, facts)])
    assert audit["vocabulary"]["categories"][-1] == "HER2-from-elsewhere"
    assert audit["vocabulary"]["flags"][-1] == "a-new-flag"
    counts = cell(audit, "LAB", "2024-05")["categories"]["breast"]["counts"]
    assert counts["HER2-from-elsewhere"] == 1
