"""Properties of classify over any valid record (hypothesis)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.classify import classify
from adapter.classify.table import RULES_BY_ID
from adapter.model import (
    AssayRecord,
    Category,
    Ihc0Subtype,
    IhcResult,
    IhcScore,
    Interpretation,
    Interval,
    IshCount,
    IshProbe,
    IshResult,
    LabInterpretation,
    OfficialResult,
    Origin,
    ReceptorResult,
    SourceFormat,
    Specimen,
    Tissue,
)

# Values near the thresholds, plus any finite Decimal (huge and tiny exponents included).
_near_thresholds = st.sampled_from(
    [
        Decimal(v)
        for v in ("0", "0.9", "1", "1.99", "2.0", "3.99", "4", "5", "5.99", "6", "10", "10.5", "50")
    ]
)
_numbers = st.one_of(
    _near_thresholds,
    st.decimals(min_value=0, max_value=100, places=2),
    st.decimals(allow_nan=False, allow_infinity=False),
)


@st.composite
def intervals(draw: st.DrawFn) -> Interval:
    low = draw(st.none() | _numbers)
    high = draw(st.none() | _numbers)
    if draw(st.booleans()) and low is not None:
        return Interval.point(low)
    return Interval(
        low=low,
        low_inclusive=draw(st.booleans()),
        high=high,
        high_inclusive=draw(st.booleans()),
        text=draw(st.sampled_from(["", "as sent"])),
    )


_maybe_interval = st.none() | intervals()
_stated = st.none() | st.sampled_from(Interpretation)
_failed = st.none() | st.just("failed controls")
_conflict = st.none() | st.just("conflicting results in one order: OBX[2], OBX[3]")

ihc_results = st.builds(
    IhcResult,
    score=st.none() | st.sampled_from(IhcScore),
    ihc0_subtype=st.none() | st.sampled_from(Ihc0Subtype),
    stained_percent=_maybe_interval,
    stated=_stated,
    indeterminate_reason=_failed,
    conflict=_conflict,
)
ish_counts = st.builds(
    IshCount, ratio=_maybe_interval, her2_copies=_maybe_interval, cep17_copies=_maybe_interval
)
ish_results = st.builds(
    IshResult,
    probe=st.none() | st.sampled_from(IshProbe),
    ratio=_maybe_interval,
    her2_copies=_maybe_interval,
    cep17_copies=_maybe_interval,
    recount_done=st.booleans(),
    earlier_counts=st.lists(ish_counts, max_size=2).map(tuple),
    amplified_percent=_maybe_interval,
    stated=_stated,
    indeterminate_reason=_failed,
    conflict=_conflict,
)
receptor_results = st.builds(
    ReceptorResult,
    percent=_maybe_interval,
    stated=_stated,
    indeterminate_reason=_failed,
    conflict=_conflict,
)
records = st.builds(
    AssayRecord,
    origin=st.just(Origin(format=SourceFormat.FHIR, message_id="P1")),
    specimen=st.builds(Specimen, tissue=st.sampled_from(Tissue)),
    her2_ihc=st.none() | ihc_results,
    her2_ish=st.none() | ish_results,
    er=st.none() | receptor_results,
    pgr=st.none() | receptor_results,
    lab_interpretation=st.none() | st.builds(LabInterpretation, stated=_stated),
)

CATEGORIES = {
    OfficialResult.POSITIVE: {Category.HER2_POSITIVE},
    OfficialResult.EQUIVOCAL: {Category.HER2_EQUIVOCAL},
    OfficialResult.INDETERMINATE: {Category.INDETERMINATE},
    # no official result: no HER2 result at all, or one whose value could not be read
    None: {Category.HER2_NOT_REPORTED, Category.HER2_NOT_UNDERSTOOD},
    OfficialResult.NEGATIVE: {
        Category.HER2_LOW,
        Category.HER2_ULTRALOW,
        Category.HER2_NULL,
        Category.HER2_NEGATIVE,
    },
}
NEGATIVE_OUTSIDE_BREAST = {Category.HER2_NEGATIVE}


@settings(max_examples=400)
@given(records)
def test_total_and_names_a_known_rule(record: AssayRecord) -> None:
    """Any valid record classifies without raising and names ≥ 1 rule, each from the table."""
    result = classify(record)
    assert result.rules
    for fired in result.rules:
        assert fired.citation == RULES_BY_ID[fired.rule_id].citation
        assert fired.reason


@settings(max_examples=400)
@given(records)
def test_category_matches_official_result(record: AssayRecord) -> None:
    """The category always belongs to the official result; outside breast a negative is plain."""
    result = classify(record)
    assert result.category in CATEGORIES[result.official_result]
    if result.tissue is not Tissue.BREAST and result.official_result is OfficialResult.NEGATIVE:
        assert result.category in NEGATIVE_OUTSIDE_BREAST
    if result.tissue is not Tissue.BREAST:
        assert result.ish_group is None


def _failed_test(result: IhcResult | IshResult | LabInterpretation | None) -> bool:
    if result is None:
        return False
    if result.stated is Interpretation.INDETERMINATE:
        return True
    return not isinstance(result, LabInterpretation) and result.indeterminate_reason is not None


@settings(max_examples=400)
@given(records)
def test_indeterminate_only_for_a_failed_test(record: AssayRecord) -> None:
    """Section 4.6: indeterminate needs a test the lab said failed, and nothing that conflicts."""
    result = classify(record)
    if result.official_result is not OfficialResult.INDETERMINATE:
        return
    tests = (record.her2_ihc, record.her2_ish, record.lab_interpretation)
    assert any(_failed_test(t) for t in tests)
    assert all(t is None or t.conflict is None for t in (record.her2_ihc, record.her2_ish))


@settings(max_examples=400)
@given(records, st.none() | st.just("failed controls"))
def test_raising_ihc_2_to_3_never_loses_positive(record: AssayRecord, failed: str | None) -> None:
    """IHC 2+ → 3+ never turns a positive into a non-positive; a usable 3+ is always positive."""
    two = replace(record, her2_ihc=IhcResult(score=IhcScore.TWO, indeterminate_reason=failed))
    three = replace(record, her2_ihc=IhcResult(score=IhcScore.THREE, indeterminate_reason=failed))
    before, after = classify(two), classify(three)
    if before.official_result is OfficialResult.POSITIVE:
        assert after.official_result is OfficialResult.POSITIVE
    if failed is None:
        assert after.official_result is OfficialResult.POSITIVE
