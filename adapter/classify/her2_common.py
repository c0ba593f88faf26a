"""HER2 reading shared by the breast and gastroesophageal rules.

Whether an IHC result is usable, the ISH ratio (reported or derived), the incomplete-ISH and
indeterminate fall-backs, heterogeneity, and the lab's own call: none of these depend on tissue.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Context, Decimal, Overflow, Underflow, localcontext

from adapter.classify.table import (
    COMPATIBLE_STATED,
    COUNTS_DISAGREE,
    HETEROGENEITY,
    HETEROGENEITY_HIGH,
    HETEROGENEITY_LOW,
    IHC_RESULT,
    INCOMPLETE_ISH_IHC01_OPEN,
    INCOMPLETE_ISH_WORKUP,
    ISH_CONFLICTING,
    LAB_STATED_NOT_ASSIGNABLE,
    PENDING_COMPLETE_ISH,
    PENDING_LAB_REVIEW,
    PENDING_REFLEX_ISH,
    STATED_CALL,
    STATED_CATEGORY,
    STATED_OFFICIAL,
    STATED_WITHOUT_SCORE,
    IhcBucket,
    WorkupCell,
)
from adapter.classify.trace import Trace, place, show
from adapter.model import (
    Analyte,
    AssayRecord,
    Category,
    FlagCode,
    IhcResult,
    IhcScore,
    Interpretation,
    Interval,
    IshCount,
    IshResult,
    OfficialResult,
)

# Enough digits that a derived ratio is exact for any count a lab can report; rounding would be
# a silent guess at a threshold.
_RATIO_PRECISION = 60
_RATIO_TEXT_MAX = 12
_RATIO_TEXT_STEP = Decimal("0.0001")


@dataclass(frozen=True)
class IhcReading:
    """A usable IHC result. ``score`` is ``None`` when the call rests on a word ("Negative")."""

    score: IhcScore | None
    result: OfficialResult
    source: IhcResult

    def describe(self) -> str:
        if self.score is None:
            stated = self.source.stated.value if self.source.stated else "nothing"
            return f"IHC stated {stated} (no score)"
        return f"IHC {self.score.value}"


@dataclass
class Her2Status:
    """The official result for one tissue's rules, before the category is chosen."""

    official: OfficialResult
    ihc: IhcReading | None
    ish_group: int | None
    trace: Trace


def read_ihc(
    ihc: IhcResult | None, rule_for: dict[IhcScore, str], trace: Trace, failures: list[str]
) -> IhcReading | None:
    """The usable IHC result, or ``None``; lab failures are appended to ``failures``."""
    if ihc is None:
        return None
    if ihc.conflict is not None:
        trace.fire("HER2-IHC-CONFLICTING", f"{ihc.conflict}: IHC not used")
        trace.flag(FlagCode.DISCORDANCE, f"{ihc.conflict}; the IHC result was not used")
        return None
    if ihc_failed(ihc):
        failures.append(f"IHC: {ihc.indeterminate_reason or 'stated indeterminate'}")
        return None
    if ihc.score is None:
        return _read_stated_only(ihc, trace)
    if ihc.stated is not None and ihc.stated not in COMPATIBLE_STATED[ihc.score]:
        trace.fire(
            "HER2-IHC-TEXT-CONTRADICTS-SCORE",
            f"IHC text '{ihc.stated.value}' contradicts score {ihc.score.value}: IHC not used",
        )
        trace.flag(
            FlagCode.DISCORDANCE,
            f"IHC text '{ihc.stated.value}' contradicts score {ihc.score.value}; "
            "the IHC result was not used",
        )
        return None
    result = IHC_RESULT[ihc.score]
    trace.fire(rule_for[ihc.score], f"IHC {ihc.score.value}: IHC {result.value}")
    return IhcReading(ihc.score, result, ihc)


def ihc_failed(ihc: IhcResult) -> bool:
    """The lab said the IHC could not be done or assessed (section 4.1)."""
    return ihc.indeterminate_reason is not None or ihc.stated is Interpretation.INDETERMINATE


def _read_stated_only(ihc: IhcResult, trace: Trace) -> IhcReading | None:
    if ihc.stated is None:
        return None
    result = STATED_WITHOUT_SCORE.get(ihc.stated)
    if result is None:
        trace.fire(
            "HER2-IHC-SCORE-MISSING-UNUSABLE",
            f"IHC stated '{ihc.stated.value}' without a score: IHC not used",
        )
        trace.flag(
            FlagCode.SCORE_MISSING,
            f"IHC stated '{ihc.stated.value}' without a score; the IHC result was not used",
        )
        return None
    trace.fire(
        "HER2-IHC-STATED-NO-SCORE",
        f"IHC stated '{ihc.stated.value}' without a score: IHC {result.value}, score unknown",
    )
    why = " (0 or 1+ decides HER2-low)" if result is OfficialResult.NEGATIVE else ""
    trace.flag(FlagCode.SCORE_MISSING, f"IHC stated '{ihc.stated.value}' without a score{why}")
    return IhcReading(None, result, ihc)


def ihc_bucket(ihc: IhcReading | None, recount_done: bool) -> IhcBucket:
    if ihc is None:
        return IhcBucket.NONE
    # ASCO/CAP define IHC positive as 3+ and equivocal as 2+: the word alone is that bucket.
    if ihc.score is IhcScore.THREE or ihc.result is OfficialResult.POSITIVE:
        return IhcBucket.IHC3
    if ihc.score is IhcScore.TWO or ihc.result is OfficialResult.EQUIVOCAL:
        return IhcBucket.IHC2_RECOUNT if recount_done else IhcBucket.IHC2_PENDING
    if ihc.score is None and ihc.source.stated is Interpretation.HER2_LOW:
        return IhcBucket.IHC_LOW_UNSCORED
    return IhcBucket.IHC01


def ish_conflicting(ish: IshResult, ihc: IhcReading | None, trace: Trace) -> OfficialResult | None:
    """Section 5: ISH results of one order that disagree are not picked from, and not a failed
    test either: IHC 3+ is positive with every ISH result, anything else waits for the lab's
    adjudication (equivocal), as when a count and a recount disagree."""
    if ish.conflict is None:
        return None
    three = ihc is not None and ihc.score is IhcScore.THREE
    cell = ISH_CONFLICTING[three]
    return _awaits_adjudication(cell, ish.conflict, "the ISH results were not used", ihc, trace)


def ish_lab_failed(ish: IshResult, failures: list[str]) -> bool:
    if ish.indeterminate_reason is not None or ish.stated is Interpretation.INDETERMINATE:
        failures.append(f"ISH: {ish.indeterminate_reason or 'stated indeterminate'}")
        return True
    return False


def ish_ratio(ish: IshResult | IshCount, trace: Trace) -> Interval | None:
    """The reported ratio, else HER2 / CEP17 copies when both are single reported values."""
    if ish.ratio is not None:
        return ish.ratio
    her2, cep17 = ish.her2_copies, ish.cep17_copies
    if her2 is None or cep17 is None:
        return None
    if her2.value is None or cep17.value is None or cep17.value == 0:
        return None
    # Out-of-range exponents would silently become 0 or infinity: no ratio rather than a wrong one.
    try:
        with localcontext(Context(prec=_RATIO_PRECISION, traps=[Overflow, Underflow])):
            quotient = her2.value / cep17.value
    except (Overflow, Underflow):
        return None
    text = _ratio_text(quotient)
    trace.fire(
        "HER2-ISH-RATIO-DERIVED",
        f"no ratio reported: HER2 copies {show(her2)} / CEP17 copies {show(cep17)} = {text}",
    )
    return Interval.point(quotient, text=text)


def _ratio_text(quotient: Decimal) -> str:
    """A readable derived ratio: digits past the fourth decimal are cut (never rounded up, so
    1.99999 never reads as 2.0) and marked with an ellipsis. Comparisons use the full value."""
    exact = str(quotient)
    if len(exact) <= _RATIO_TEXT_MAX or quotient.adjusted() > _RATIO_TEXT_MAX:
        return exact
    with localcontext(Context(prec=_RATIO_PRECISION, traps=[])):
        cut = quotient.quantize(_RATIO_TEXT_STEP, rounding=ROUND_DOWN)
    return f"{cut}…"


def missing_numbers_reason(ish: IshResult, ratio: Interval | None) -> str:
    """Why a dual-probe count cannot be placed in a group (one of the two values is absent)."""
    if ratio is None and ish.her2_copies is None:
        if ish.stated is not None:
            return (
                f"ISH stated '{ish.stated.value}' without ratio or HER2 copies: "
                "no group can be assigned"
            )
        return "ISH reported without ratio or HER2 copies"
    if ratio is None:
        return (
            f"HER2 copies {_show_optional(ish.her2_copies)} without a ratio or usable CEP17 copies"
        )
    return f"ratio {show(ratio)} without HER2 copies"


def _show_optional(value: Interval | None) -> str:
    return "none" if value is None else show(value)


def incomplete_ish(
    reason: str,
    ihc: IhcReading | None,
    bucket: IhcBucket,
    trace: Trace,
    *,
    rules_out_positive: bool,
    gastric: bool = False,
) -> OfficialResult:
    """Section 4.4: decide on IHC where it can; equivocal on IHC 2+; indeterminate without IHC.

    IHC 0/1+ decides negative only when the known values rule out an ISH-positive count, which
    would be positive whatever the IHC (ASCO/CAP 2018, Bartley 2016): a deliberate departure
    from a literal reading of section 4.4.
    """
    trace.flag(FlagCode.INCOMPLETE_ISH, reason)
    if bucket is IhcBucket.IHC01 and not rules_out_positive:
        result, rule_id, pending = INCOMPLETE_ISH_IHC01_OPEN[gastric]
    else:
        result, rule_id, pending = INCOMPLETE_ISH_WORKUP[bucket]
    ihc_text = ihc.describe() if ihc else "no usable IHC"
    trace.fire(rule_id, f"{reason}; {ihc_text}: {result.value}")
    if pending is not None:
        trace.flag(FlagCode.PENDING_WORKUP, f"equivocal, pending {pending}")
    return result


def words_only_negative(ish: IshResult, ratio: Interval | None) -> bool:
    """An ISH reported only as "not amplified", with no numbers at all.

    Nothing then suggests an ISH-positive count, so IHC 0/1+ decides as it would without any
    ISH; an ISH stated "amplified" in words keeps the question open instead.
    """
    numbers = (ratio, ish.her2_copies, ish.cep17_copies)
    return all(value is None for value in numbers) and ish.stated is Interpretation.NEGATIVE


def counts_disagree(
    listing: str, ihc: IhcReading | None, trace: Trace, *, gastric: bool = False
) -> OfficialResult:
    """Sections 2 and 5: a count and a recount that disagree need adjudication, not a pick."""
    three = ihc is not None and ihc.score is IhcScore.THREE
    cell = COUNTS_DISAGREE[(gastric, three)]
    return _awaits_adjudication(cell, listing, "adjudication needed", ihc, trace)


def _awaits_adjudication(
    cell: WorkupCell, disagreement: str, consequence: str, ihc: IhcReading | None, trace: Trace
) -> OfficialResult:
    """ISH results that disagree: the table's cell fires, with a discordance flag, and a
    pending-workup flag when the cell waits for one."""
    result, rule_id, pending = cell
    ihc_text = ihc.describe() if ihc else "no usable IHC"
    trace.fire(rule_id, f"{disagreement}; {ihc_text}: {result.value}")
    trace.flag(FlagCode.DISCORDANCE, f"{disagreement}; {consequence}")
    if pending is not None:
        trace.flag(FlagCode.PENDING_WORKUP, f"equivocal, pending {pending}")
    return result


def ihc_only(
    ihc: IhcReading | None, record: AssayRecord, failures: list[str], trace: Trace
) -> OfficialResult:
    """Sections 4.1 and 4.3: no usable ISH, so IHC decides, or the result is indeterminate."""
    if ihc is not None:
        if ihc.result is OfficialResult.EQUIVOCAL:
            trace.flag(
                FlagCode.PENDING_WORKUP, f"{ihc.describe()} equivocal, pending {PENDING_REFLEX_ISH}"
            )
        return ihc.result
    lab = record.lab_interpretation
    if lab is not None and lab.stated is Interpretation.INDETERMINATE:
        failures.append("the lab's overall HER2 call is indeterminate")
    stated = lab.stated if lab is not None else None
    nothing_else = record.her2_ihc is None and record.her2_ish is None
    if not failures and nothing_else and stated in STATED_CALL:
        result = STATED_CALL[stated]
        trace.fire(
            "HER2-LAB-STATED-ONLY",
            f"the lab's overall HER2 call '{stated.value}' and no IHC or ISH: {result.value}",
        )
        _flag_stated_pending(result, trace)
        return result
    # An IHC that was reported and did not fail, but could not be used (conflicting results, a
    # text contradicting its score, a word that is no HER2 result), is not a failed test: the
    # case waits for the lab's review (equivocal), never "indeterminate" (section 4.6).
    reported = record.her2_ihc
    unusable = reported is not None and (reported.conflict is not None or not ihc_failed(reported))
    if failures and not unusable:
        trace.fire(
            "HER2-INDETERMINATE-LAB",
            f"no usable IHC or ISH; the lab could not do a test ({'; '.join(failures)})",
        )
        return OfficialResult.INDETERMINATE
    failed = f"; {'; '.join(failures)}" if failures else ""
    trace.fire(
        "HER2-NO-USABLE-RESULT",
        f"HER2 reported, but no usable IHC or ISH result and no failed test{failed}: equivocal",
    )
    trace.flag(FlagCode.PENDING_WORKUP, f"equivocal, pending {PENDING_LAB_REVIEW}")
    return OfficialResult.EQUIVOCAL


def has_count(ish: IshResult) -> bool:
    """Whether the ISH carries any number of a count (ratio, HER2 or CEP17 copies)."""
    return any(value is not None for value in (ish.ratio, ish.her2_copies, ish.cep17_copies))


def stated_ish_only(ish: IshResult, ihc: IhcReading | None, trace: Trace) -> OfficialResult | None:
    """Section 4.5: an ISH result word without any count, and no usable IHC, is the lab's call.

    With an IHC beside it the work-up tables decide (incomplete ISH), as before.
    """
    if ihc is not None or ish.stated not in STATED_CALL:
        return None
    if has_count(ish):
        return None
    result = STATED_CALL[ish.stated]
    trace.fire(
        "HER2-ISH-STATED-ONLY",
        f"ISH stated '{ish.stated.value}' without a count, no usable IHC: {result.value}",
    )
    _flag_stated_pending(result, trace)
    return result


def _flag_stated_pending(result: OfficialResult, trace: Trace) -> None:
    if result is OfficialResult.EQUIVOCAL:
        trace.flag(
            FlagCode.PENDING_WORKUP,
            f"the lab's call is equivocal, pending {PENDING_COMPLETE_ISH} or {PENDING_REFLEX_ISH}",
        )


def flag_stated_only(record: AssayRecord, official: OfficialResult, trace: Trace) -> None:
    """Section 4.5: say so when the HER2 result rests on the lab's words alone."""
    if official is OfficialResult.INDETERMINATE:
        return
    ihc, ish, lab = record.her2_ihc, record.her2_ish, record.lab_interpretation
    if ihc is not None and ihc.score is not None:
        return
    if ish is not None and any(
        v is not None for v in (ish.ratio, ish.her2_copies, ish.cep17_copies)
    ):
        return
    words = [
        f"{label} '{source.stated.value}'"
        for label, source in (("IHC", ihc), ("ISH", ish), ("overall interpretation", lab))
        if source is not None and source.stated is not None
    ]
    if not words:
        return
    reason = (
        f"HER2 {official.value} rests on the lab's stated call ({', '.join(words)}) without an "
        "IHC score or ISH count"
    )
    if official is OfficialResult.NEGATIVE:
        reason = f"{reason}: {LAB_STATED_NOT_ASSIGNABLE}"
    trace.fire("HER2-STATED-ONLY", reason)
    trace.flag(FlagCode.LAB_STATED_ONLY, reason)


# Every analyte that is part of a HER2 result (the rest are ER and PgR).
HER2_ANALYTES = frozenset(Analyte) - {
    Analyte.ER_RESULT,
    Analyte.ER_PERCENT,
    Analyte.PGR_RESULT,
    Analyte.PGR_PERCENT,
}


def absent_her2(record: AssayRecord, trace: Trace) -> Category | None:
    """Section 4.6: no HER2 result to classify, told apart from a failed test.

    A HER2 value that could not be read makes the whole HER2 result not understood, even beside
    values that were read: the unread one (a ratio, a sub-type) may change the category.
    """
    unread = [
        u.provenance.locator
        for u in record.unused
        if u.not_understood and u.analyte in HER2_ANALYTES
    ]
    if unread:
        trace.fire(
            "HER2-NOT-UNDERSTOOD",
            f"HER2 value not understood at {', '.join(unread)}: no HER2 result until the "
            "mappings read it",
        )
        return Category.HER2_NOT_UNDERSTOOD
    if record.her2_ihc is None and record.her2_ish is None and record.lab_interpretation is None:
        trace.fire("HER2-NOT-REPORTED", "no HER2 result in this order")
        return Category.HER2_NOT_REPORTED
    return None


def non_negative_category(official: OfficialResult, trace: Trace) -> Category | None:
    """The category of a positive, equivocal or indeterminate result; ``None`` for a negative,
    whose category depends on tissue."""
    if official is OfficialResult.POSITIVE:
        trace.fire("HER2-CAT-POSITIVE", "official result positive: HER2-positive")
        return Category.HER2_POSITIVE
    if official is OfficialResult.EQUIVOCAL:
        trace.fire("HER2-CAT-EQUIVOCAL", "official result equivocal: HER2-equivocal")
        return Category.HER2_EQUIVOCAL
    if official is OfficialResult.INDETERMINATE:
        trace.fire("HER2-CAT-INDETERMINATE", "official result indeterminate: indeterminate")
        return Category.INDETERMINATE
    return None


def flag_heterogeneity(ish: IshResult | None, trace: Trace) -> None:
    """Section 5: a flag only; the status always comes from the whole-tumour count."""
    if ish is None or ish.amplified_percent is None:
        return
    percent = ish.amplified_percent
    band = place(percent, (HETEROGENEITY_LOW, HETEROGENEITY, HETEROGENEITY_HIGH))
    if band is None:
        trace.flag(
            FlagCode.UNDECIDABLE_VALUE,
            f"amplified cells {show(percent)} straddle the heterogeneity band {HETEROGENEITY.text}",
        )
    elif band is HETEROGENEITY:
        trace.fire("HER2-HETEROGENEITY", f"amplified cells {show(percent)} {HETEROGENEITY.text}")
        trace.flag(
            FlagCode.HETEROGENEITY,
            f"genetic heterogeneity: amplified cells {show(percent)} ({HETEROGENEITY.text}); "
            "status from the whole-tumour count",
        )


def flag_reading(record: AssayRecord, trace: Trace) -> None:
    """What ingest read from words a reviewer should check: results read from report text, and
    heterogeneity the lab noted in words (section 5: a flag only)."""
    ihc, ish = record.her2_ihc, record.her2_ish
    if (ish is not None and ish.heterogeneity_noted and ish.amplified_percent is None) or (
        ihc is not None and ihc.heterogeneity_noted
    ):
        trace.flag(
            FlagCode.HETEROGENEITY,
            "the lab notes heterogeneity (no amplified-cell percentage to place): review; "
            "status from the whole-tumour result",
        )
    sources = (record.her2_ihc, record.her2_ish, record.er, record.pgr, record.lab_interpretation)
    from_text = [p.locator for s in sources if s is not None for p in s.provenance if p.from_text]
    if from_text:
        trace.flag(
            FlagCode.READ_FROM_TEXT,
            "results read from report text, not from coded results: "
            + ", ".join(dict.fromkeys(from_text))
            + "; a reviewer checks them against the report",
        )


def flag_lab_calls(
    record: AssayRecord, official: OfficialResult, category: Category, trace: Trace
) -> None:
    """Flag a lab's own HER2 call that maps to another official result, or (overall call) names
    another category; it never changes ours."""
    _flag_lab_category(record, official, category, trace)
    calls = (
        ("the lab's overall HER2 call", record.lab_interpretation),
        ("the ISH result as stated", record.her2_ish),
    )
    for label, source in calls:
        stated = source.stated if source is not None else None
        if stated is None:
            continue
        mapped = STATED_OFFICIAL.get(stated)
        if mapped is None:
            trace.flag(
                FlagCode.LAB_INTERPRETATION_DIFFERS,
                f"{label} is '{stated.value}', not a HER2 result; ours is {official.value}",
            )
        elif mapped is not official:
            trace.flag(
                FlagCode.LAB_INTERPRETATION_DIFFERS,
                f"{label} is '{stated.value}' ({mapped.value}); ours is {official.value}",
            )


def _flag_lab_category(
    record: AssayRecord, official: OfficialResult, category: Category, trace: Trace
) -> None:
    lab = record.lab_interpretation
    stated = lab.stated if lab is not None else None
    if stated is None or STATED_OFFICIAL.get(stated) is not official:
        return  # no call, or one that differs in the official result (flagged below)
    named = STATED_CATEGORY.get(stated)
    if named is not None and named is not category:
        trace.flag(
            FlagCode.LAB_INTERPRETATION_DIFFERS,
            f"the lab's overall HER2 call is '{stated.value}' ({named.value}); "
            f"our category is {category.value}",
        )
