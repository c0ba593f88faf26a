"""Breast HER2: IHC (section 1), dual- and single-probe ISH (sections 2-3), status and category
(section 4), discordance and heterogeneity (section 5)."""

from __future__ import annotations

from decimal import Decimal

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
from adapter.classify.table import (
    BREAST_IHC_RULE,
    COPIES_LT4,
    COPIES_LT6,
    GROUP_NEGATIVE_COMMENT,
    GROUP_WORKUP,
    IHC_STAINED_ABOVE_IHC0,
    IHC_STAINED_AT_MOST_10,
    IHC_STAINED_NULL,
    IHC_STAINED_ULTRALOW,
    ISH_GROUPS,
    RATIO_AMPLIFIED,
    RATIO_NOT_AMPLIFIED,
    RECOUNT_MIN_CELLS,
    SINGLE_PROBE_BANDS,
    SINGLE_PROBE_WORKUP,
    GroupRow,
    IhcBucket,
    WorkupCell,
)
from adapter.classify.trace import Trace, place, show
from adapter.model import (
    AssayRecord,
    Category,
    FlagCode,
    Ihc0Subtype,
    IhcScore,
    Interval,
    IshProbe,
    IshResult,
    OfficialResult,
)

_LOW_CATEGORIES = (Category.HER2_LOW, Category.HER2_ULTRALOW, Category.HER2_NULL)
_SUBTYPE_BAND = {Ihc0Subtype.NULL: IHC_STAINED_NULL, Ihc0Subtype.ULTRALOW: IHC_STAINED_ULTRALOW}


def _recounted(ish: IshResult, trace: Trace) -> bool:
    """A recount as section 2 asks: reported, and of >= 20 cells when the number is given."""
    if ish.recount_cells is None:
        return ish.recount_done
    cells = Interval.point(Decimal(ish.recount_cells), f"{ish.recount_cells} cells")
    if cells.within(RECOUNT_MIN_CELLS):
        return True
    trace.flag(
        FlagCode.PENDING_WORKUP,
        f"the recount reported {cells.text}, fewer than {RECOUNT_MIN_CELLS.text}: not a recount",
    )
    return False


def breast_status(record: AssayRecord) -> Her2Status:
    trace = Trace()
    failures: list[str] = []
    ish = record.her2_ish
    ihc = read_ihc(record.her2_ihc, BREAST_IHC_RULE, trace, failures)
    _flag_score_against_stained(ihc, trace)
    bucket = ihc_bucket(ihc, recount_done=ish is not None and _recounted(ish, trace))
    group: int | None = None
    # A conflict is read before a failure: results that disagree are not a failed test.
    if ish is not None and (conflicting := ish_conflicting(ish, ihc, trace)) is not None:
        official = conflicting
    elif ish is None or ish_lab_failed(ish, failures):
        official = ihc_only(ihc, record, failures, trace)
    elif (stated := stated_ish_only(ish, ihc, trace)) is not None:
        official = stated
    elif ish.probe is IshProbe.SINGLE or _single_probe_inferred(ish, trace):
        official = _single_probe(ish, ihc, bucket, trace)
    else:
        official, group = _dual_probe(ish, ihc, bucket, trace)
    flag_heterogeneity(ish, trace)
    return Her2Status(official, ihc, group, trace)


def _single_probe_inferred(ish: IshResult, trace: Trace) -> bool:
    """Section 3: HER2 copies and no CEP17 count and no ratio in the whole case is single probe.

    A CEP17 count or ratio reported as failed has already made the probe dual (ingest).
    """
    if ish.probe is not None or ish.her2_copies is None:
        return False
    if ish.ratio is not None or ish.cep17_copies is not None or ish.earlier_counts:
        return False
    trace.flag(
        FlagCode.PROBE_INFERRED,
        "HER2 copies per cell with no CEP17 count and no ratio in the case: read as "
        "single-probe ISH",
    )
    return True


def _flag_score_against_stained(ihc: IhcReading | None, trace: Trace) -> None:
    """Section 1: 1+, 2+ and 3+ each need staining in > 10% of cells; the score still decides."""
    if ihc is None or ihc.score is None or ihc.score is IhcScore.ZERO:
        return
    percent = ihc.source.stained_percent
    if percent is None or not percent.within(IHC_STAINED_AT_MOST_10):
        return
    stained = f"stained cells {show(percent)} {IHC_STAINED_AT_MOST_10.text}"
    trace.fire(
        "HER2-IHC-SCORE-CONTRADICTS-STAINED",
        f"IHC {ihc.score.value} with {stained}: result follows the score, review",
    )
    trace.flag(
        FlagCode.DISCORDANCE,
        f"IHC {ihc.score.value} with {stained} (the score needs staining in "
        f"{IHC_STAINED_ABOVE_IHC0.text}): review",
    )


def _single_probe(
    ish: IshResult, ihc: IhcReading | None, bucket: IhcBucket, trace: Trace
) -> OfficialResult:
    copies = ish.her2_copies
    if ish.earlier_counts:
        disagreement = _single_probe_disagreement(ish)
        if disagreement is not None:
            return counts_disagree(disagreement, ihc, trace)
    if copies is None:
        reason = "single-probe ISH without HER2 copies"
        return incomplete_ish(reason, ihc, bucket, trace, rules_out_positive=False)
    band = place(copies, SINGLE_PROBE_BANDS)
    if band is None:
        bands = " / ".join(band.text for band in SINGLE_PROBE_BANDS)
        reason = f"single-probe HER2 copies {show(copies)} straddle the bands {bands}"
        trace.flag(FlagCode.UNDECIDABLE_VALUE, reason)
        below_positive = copies.within(COPIES_LT6)
        return incomplete_ish(reason, ihc, bucket, trace, rules_out_positive=below_positive)
    cell = SINGLE_PROBE_WORKUP[(band, bucket)]
    _apply(cell, f"single probe, HER2 copies {show(copies)} {band.text}", ihc, trace)
    if band is COPIES_LT4 and bucket is IhcBucket.IHC3:
        trace.flag(
            FlagCode.DISCORDANCE,
            f"IHC 3+ with single-probe HER2 copies {show(copies)} {band.text}: review",
        )
    return cell[0]


def _dual_probe(
    ish: IshResult, ihc: IhcReading | None, bucket: IhcBucket, trace: Trace
) -> tuple[OfficialResult, int | None]:
    ratio = ish_ratio(ish, trace)
    copies = ish.her2_copies
    if ish.earlier_counts:
        disagreement = _dual_probe_disagreement(ish, ratio, trace)
        if disagreement is not None:
            return counts_disagree(disagreement, ihc, trace), None
    no_group_1 = _rules_out_group_1(ratio, copies) or words_only_negative(ish, ratio)
    if ratio is None or copies is None:
        reason = missing_numbers_reason(ish, ratio)
        return incomplete_ish(reason, ihc, bucket, trace, rules_out_positive=no_group_1), None
    row = _group_row(ratio, copies, trace)
    if row is None:
        reason = f"ratio {show(ratio)} and HER2 copies {show(copies)} fit no single ISH group"
        return incomplete_ish(reason, ihc, bucket, trace, rules_out_positive=no_group_1), None
    trace.fire(
        row.rule_id,
        f"ratio {show(ratio)} {row.ratio.text} and HER2 copies {show(copies)} {row.copies.text}: "
        f"group {row.group}",
    )
    cell = GROUP_WORKUP[(row.group, bucket)]
    comment = GROUP_NEGATIVE_COMMENT.get(row.group) if cell[0] is OfficialResult.NEGATIVE else None
    _apply(cell, f"group {row.group}", ihc, trace, comment)
    if comment is not None:
        trace.comment(comment)
    _flag_group_discordance(row.group, ihc, trace)
    return cell[0], row.group


def _rules_out_group_1(ratio: Interval | None, copies: Interval | None) -> bool:
    """Group 1 needs ratio ≥ 2.0 and copies ≥ 4.0: one value wholly below its threshold rules
    it out, which is what lets IHC 0/1+ decide an incomplete count."""
    return (ratio is not None and ratio.within(RATIO_NOT_AMPLIFIED)) or (
        copies is not None and copies.within(COPIES_LT4)
    )


def _group_of(ratio: Interval | None, copies: Interval | None) -> int | None:
    """The group one count falls in, or ``None`` when a value is missing or straddles bands."""
    if ratio is None or copies is None:
        return None
    ratio_band = place(ratio, (RATIO_AMPLIFIED, RATIO_NOT_AMPLIFIED))
    rows = [row for row in ISH_GROUPS if row.ratio is ratio_band and copies.within(row.copies)]
    return rows[0].group if len(rows) == 1 else None


def _dual_probe_disagreement(ish: IshResult, last: Interval | None, trace: Trace) -> str | None:
    """The groups of every count in reporting order when they differ; a count that cannot be
    grouped differs from every other (it cannot confirm them)."""
    groups = [_group_of(ish_ratio(count, trace), count.her2_copies) for count in ish.earlier_counts]
    groups.append(_group_of(last, ish.her2_copies))
    if len(set(groups)) == 1:
        return None
    labels = ["no group" if group is None else str(group) for group in groups]
    return f"ISH counts fall in different groups: {', '.join(labels)}"


def _single_probe_disagreement(ish: IshResult) -> str | None:
    copies = [count.her2_copies for count in ish.earlier_counts] + [ish.her2_copies]
    bands = [None if value is None else place(value, SINGLE_PROBE_BANDS) for value in copies]
    if len(set(bands)) == 1:
        return None
    labels = ["no band" if band is None else band.text for band in bands]
    return f"ISH counts fall in different HER2 copy-number bands: {', '.join(labels)}"


def _group_row(ratio: Interval, copies: Interval, trace: Trace) -> GroupRow | None:
    ratio_band = place(ratio, (RATIO_AMPLIFIED, RATIO_NOT_AMPLIFIED))
    if ratio_band is None:
        trace.flag(
            FlagCode.UNDECIDABLE_VALUE,
            f"ratio {show(ratio)} straddles {RATIO_AMPLIFIED.text} / {RATIO_NOT_AMPLIFIED.text}",
        )
        return None
    rows = [row for row in ISH_GROUPS if row.ratio is ratio_band]
    row = next((row for row in rows if copies.within(row.copies)), None)
    if row is None:
        bands = " / ".join(row.copies.text for row in rows)
        trace.flag(
            FlagCode.UNDECIDABLE_VALUE,
            f"HER2 copies {show(copies)} straddle the bands {bands} (ratio {ratio_band.text})",
        )
    return row


def _apply(
    cell: WorkupCell,
    where: str,
    ihc: IhcReading | None,
    trace: Trace,
    comment: str | None = None,
) -> None:
    result, rule_id, pending = cell
    ihc_text = ihc.describe() if ihc else "no usable IHC"
    comment_text = f" (comment: {comment})" if comment else ""
    trace.fire(rule_id, f"{where} with {ihc_text}: {result.value}{comment_text}")
    if pending is not None:
        trace.flag(FlagCode.PENDING_WORKUP, f"{where} with {ihc_text}: pending {pending}")


def _flag_group_discordance(group: int, ihc: IhcReading | None, trace: Trace) -> None:
    score = ihc.score if ihc else None
    if group == 5 and score is IhcScore.THREE:
        trace.fire("HER2-DISCORDANCE-IHC3-G5", "IHC 3+ with ISH group 5: positive, review")
        trace.flag(FlagCode.DISCORDANCE, "IHC 3+ with ISH group 5 (status positive): review")
    elif group == 1 and score is IhcScore.ZERO:
        trace.fire("HER2-DISCORDANCE-IHC0-G1", "IHC 0 with ISH group 1: positive, review")
        trace.flag(FlagCode.DISCORDANCE, "IHC 0 with ISH group 1 (status positive): review")


def breast_category(status: Her2Status) -> Category:
    """Section 4 category table; HER2-low/ultralow/null also fire the 2023 wording rule."""
    trace = status.trace
    category = non_negative_category(status.official, trace)
    if category is not None:
        return category
    category = _negative_category(status.ihc, trace)
    if category in _LOW_CATEGORIES:
        trace.fire(
            "HER2-2023-WORDING",
            f"{category.value} is not an official ASCO/CAP result; the official result is negative",
        )
    return category


def _negative_category(ihc: IhcReading | None, trace: Trace) -> Category:
    score = ihc.score if ihc else None
    if score is IhcScore.ONE:
        trace.fire("HER2-CAT-LOW-IHC1", "negative with IHC 1+: HER2-low")
        return Category.HER2_LOW
    if score is IhcScore.TWO:
        trace.fire("HER2-CAT-LOW-IHC2-ISH-NEG", "negative with IHC 2+ (ISH negative): HER2-low")
        return Category.HER2_LOW
    if ihc is None or score is None:
        trace.fire(
            "HER2-CAT-NEGATIVE-NO-SUBTYPE", "negative without a usable IHC score: HER2-negative"
        )
        return Category.HER2_NEGATIVE
    subtype, how = _ihc0_subtype(ihc, trace)
    if subtype is Ihc0Subtype.ULTRALOW:
        trace.fire("HER2-CAT-ULTRALOW", f"negative with IHC 0, ultralow ({how}): HER2-ultralow")
        return Category.HER2_ULTRALOW
    if subtype is Ihc0Subtype.NULL:
        trace.fire("HER2-CAT-NULL", f"negative with IHC 0, null ({how}): HER2-null")
        return Category.HER2_NULL
    trace.fire(
        "HER2-CAT-NEGATIVE-NO-SUBTYPE", f"negative with IHC 0, sub-type {how}: HER2-negative"
    )
    return Category.HER2_NEGATIVE


def _ihc0_subtype(ihc: IhcReading, trace: Trace) -> tuple[Ihc0Subtype | None, str]:
    """The stated sub-type, unless the stained percentage contradicts it; else the percentage of
    stained cells, when it fits one band."""
    source = ihc.source
    percent = source.stained_percent
    stated = source.ihc0_subtype
    band = _SUBTYPE_BAND.get(stated) if stated is not None else None
    if stated is not None and band is not None and percent is not None and not percent.within(band):
        return _subtype_contradiction(stated, band, percent, trace)
    if stated is not None:
        return stated, f"sub-type stated {stated.value}"
    if percent is None:
        return None, "not reported"
    stained = f"stained cells {show(percent)}"
    if percent.within(IHC_STAINED_NULL):
        return Ihc0Subtype.NULL, f"{stained} {IHC_STAINED_NULL.text}"
    if percent.within(IHC_STAINED_ULTRALOW):
        return Ihc0Subtype.ULTRALOW, f"{stained} {IHC_STAINED_ULTRALOW.text}"
    if percent.within(IHC_STAINED_ABOVE_IHC0):
        trace.flag(
            FlagCode.DISCORDANCE,
            f"IHC 0 with {stained} {IHC_STAINED_ABOVE_IHC0.text}: sub-type unknown, review",
        )
        return Ihc0Subtype.UNKNOWN, f"unknown ({stained} {IHC_STAINED_ABOVE_IHC0.text})"
    trace.flag(
        FlagCode.UNDECIDABLE_VALUE,
        f"IHC 0 {stained} straddle null ({IHC_STAINED_NULL.text}) and ultralow "
        f"({IHC_STAINED_ULTRALOW.text})",
    )
    return Ihc0Subtype.UNKNOWN, f"unknown ({stained} undecidable)"


def _subtype_contradiction(
    stated: Ihc0Subtype, band: Interval, percent: Interval, trace: Trace
) -> tuple[Ihc0Subtype, str]:
    """A stated sub-type and a stained percentage that disagree (or may): neither is trusted."""
    both = f"sub-type stated {stated.value}, stained cells {show(percent)} (not {band.text})"
    trace.fire("HER2-IHC0-SUBTYPE-CONTRADICTS-STAINED", f"IHC 0 {both}: sub-type unknown")
    trace.flag(FlagCode.DISCORDANCE, f"IHC 0 {both}: sub-type unknown, review")
    return Ihc0Subtype.UNKNOWN, f"unknown ({both})"
