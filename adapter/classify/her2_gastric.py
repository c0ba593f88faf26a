"""Gastroesophageal HER2 (Bartley 2016, section 7): IHC 3+ or ISH ratio ≥ 2.0 is positive.

The breast ISH groups do not apply (no group is assigned) and there is no HER2-low: every negative
is ``HER2-negative``.
"""

from __future__ import annotations

from adapter.classify.her2_common import (
    Her2Status,
    IhcReading,
    counts_disagree,
    flag_heterogeneity,
    ihc_bucket,
    ihc_only,
    incomplete_ish,
    ish_conflicting,
    ish_lab_failed,
    ish_ratio,
    missing_numbers_reason,
    non_negative_category,
    read_ihc,
    stated_ish_only,
    words_only_negative,
)
from adapter.classify.table import GASTRIC_IHC_RULE, RATIO_AMPLIFIED, RATIO_NOT_AMPLIFIED
from adapter.classify.trace import Trace, place, show
from adapter.model import (
    AssayRecord,
    Category,
    FlagCode,
    IhcScore,
    Interval,
    IshResult,
    OfficialResult,
)

_RATIO_BANDS = (RATIO_AMPLIFIED, RATIO_NOT_AMPLIFIED)


def gastric_status(record: AssayRecord) -> Her2Status:
    trace = Trace()
    failures: list[str] = []
    ish = record.her2_ish
    ihc = read_ihc(record.her2_ihc, GASTRIC_IHC_RULE, trace, failures)
    # A conflict is read before a failure: results that disagree are not a failed test.
    if ish is not None and (conflicting := ish_conflicting(ish, ihc, trace)) is not None:
        official = conflicting
    elif ish is None or ish_lab_failed(ish, failures):
        official = ihc_only(ihc, record, failures, trace)
    elif (stated := stated_ish_only(ish, ihc, trace)) is not None:
        official = stated
    else:
        official = _with_ish(ish, ihc, trace)
    flag_heterogeneity(ish, trace)
    return Her2Status(official, ihc, None, trace)


def _with_ish(ish: IshResult, ihc: IhcReading | None, trace: Trace) -> OfficialResult:
    # The recount is a breast group work-up; it does not change a gastric IHC 2+.
    bucket = ihc_bucket(ihc, recount_done=False)
    ratio: Interval | None = ish_ratio(ish, trace)
    if ish.earlier_counts:
        disagreement = _counts_disagreement(ish, ratio, trace)
        if disagreement is not None:
            return counts_disagree(disagreement, ihc, trace, gastric=True)
    # Without a ratio placed below 2.0 nothing rules out an ISH-positive count.
    if ratio is None:
        reason = missing_numbers_reason(ish, ratio)
        negative_words = words_only_negative(ish, ratio)
        return incomplete_ish(
            reason, ihc, bucket, trace, rules_out_positive=negative_words, gastric=True
        )
    band = place(ratio, _RATIO_BANDS)
    if band is None:
        reason = (
            f"ratio {show(ratio)} straddles {RATIO_AMPLIFIED.text} / {RATIO_NOT_AMPLIFIED.text}"
        )
        trace.flag(FlagCode.UNDECIDABLE_VALUE, reason)
        return incomplete_ish(reason, ihc, bucket, trace, rules_out_positive=False, gastric=True)
    if band is RATIO_AMPLIFIED:
        trace.fire("GEA-ISH-POSITIVE", f"ratio {show(ratio)} {band.text}: positive")
        return OfficialResult.POSITIVE
    if ihc is not None and ihc.score is IhcScore.THREE:
        trace.fire("GEA-ISH-NEGATIVE", f"ratio {show(ratio)} {band.text}, but IHC 3+: positive")
        return OfficialResult.POSITIVE
    trace.fire("GEA-ISH-NEGATIVE", f"ratio {show(ratio)} {band.text}: negative")
    return OfficialResult.NEGATIVE


def _counts_disagreement(ish: IshResult, last: Interval | None, trace: Trace) -> str | None:
    """The counts' ratio bands in reporting order when they differ; a count without a placeable
    ratio differs from every other (it cannot confirm them)."""
    ratios = [ish_ratio(count, trace) for count in ish.earlier_counts] + [last]
    bands = [None if ratio is None else place(ratio, _RATIO_BANDS) for ratio in ratios]
    if len(set(bands)) == 1:
        return None
    labels = [
        "no placeable ratio" if ratio is None or band is None else f"{show(ratio)} ({band.text})"
        for ratio, band in zip(ratios, bands, strict=True)
    ]
    return f"ISH counts fall on different sides of ratio 2.0: {', '.join(labels)}"


def gastric_category(status: Her2Status) -> Category:
    category = non_negative_category(status.official, status.trace)
    if category is not None:
        return category
    status.trace.fire("GEA-CAT-NEGATIVE", "gastroesophageal negative: HER2-negative")
    return Category.HER2_NEGATIVE
