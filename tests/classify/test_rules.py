"""The decision table, case by case, with expected results written by hand from her2-rules.md.

Every case names the rule it exercises; ``test_every_rule_fires`` checks that the cases together
fire every rule in ``RULES`` and nothing outside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from adapter.classify import classify
from adapter.classify.table import RULES
from adapter.model import (
    Analyte,
    AssayRecord,
    Category,
    Classification,
    FlagCode,
    HrStatus,
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
    Provenance,
    ReceptorCall,
    ReceptorResult,
    SourceFormat,
    Specimen,
    Tissue,
    UnusedResult,
)

POS, EQV, NEG, IND = (
    OfficialResult.POSITIVE,
    OfficialResult.EQUIVOCAL,
    OfficialResult.NEGATIVE,
    OfficialResult.INDETERMINATE,
)
C_POS, C_EQV, C_IND = Category.HER2_POSITIVE, Category.HER2_EQUIVOCAL, Category.INDETERMINATE
C_LOW, C_ULTRA, C_NULL, C_NEG = (
    Category.HER2_LOW,
    Category.HER2_ULTRALOW,
    Category.HER2_NULL,
    Category.HER2_NEGATIVE,
)

# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def num(text: str) -> Interval:
    """A reported value as a lab writes it: ``2.0``, ``<1``, ``>=4``, ``1-10``."""
    for prefix, bound in ((">=", "low"), ("<=", "high")):
        if text.startswith(prefix):
            return Interval(**{bound: Decimal(text[2:])}, text=text)
    if text.startswith(">"):
        return Interval(low=Decimal(text[1:]), low_inclusive=False, text=text)
    if text.startswith("<"):
        return Interval(high=Decimal(text[1:]), high_inclusive=False, text=text)
    if "-" in text[1:]:
        low, high = text.split("-")
        return Interval(low=Decimal(low), high=Decimal(high), text=text)
    return Interval.point(Decimal(text), text=text)


def record(
    tissue: Tissue = Tissue.BREAST,
    *,
    ihc: IhcResult | None = None,
    ish: IshResult | None = None,
    er: ReceptorResult | None = None,
    pgr: ReceptorResult | None = None,
    lab: Interpretation | None = None,
    unread: tuple[tuple[Analyte, str], ...] = (),
) -> AssayRecord:
    """``unread``: (analyte, position) of results whose value the mappings could not read."""
    return AssayRecord(
        origin=Origin(format=SourceFormat.HL7V2, message_id="T1"),
        specimen=Specimen(tissue=tissue),
        her2_ihc=ihc,
        her2_ish=ish,
        er=er,
        pgr=pgr,
        lab_interpretation=None if lab is None else LabInterpretation(stated=lab),
        unused=tuple(
            UnusedResult(
                provenance=Provenance(locator=where),
                reason=f"value not understood for {analyte}",
                analyte=analyte,
                not_understood=True,
            )
            for analyte, where in unread
        ),
    )


def ihc(
    score: str | None,
    *,
    stated: Interpretation | None = None,
    subtype: Ihc0Subtype | None = None,
    stained: str | None = None,
    failed: str | None = None,
) -> IhcResult:
    return IhcResult(
        score=None if score is None else IhcScore(score),
        stated=stated,
        ihc0_subtype=subtype,
        stained_percent=None if stained is None else num(stained),
        indeterminate_reason=failed,
    )


def _opt(text: str | None) -> Interval | None:
    return None if text is None else num(text)


def counts(*pairs: tuple[str | None, str | None]) -> tuple[IshCount, ...]:
    """Earlier counts as (ratio, HER2 copies) pairs, in reporting order."""
    return tuple(IshCount(ratio=_opt(ratio), her2_copies=_opt(copies)) for ratio, copies in pairs)


def dual(
    ratio: str | None,
    copies: str | None,
    *,
    earlier: tuple[tuple[str | None, str | None], ...] = (),
    recount: bool = False,
    cep17: str | None = None,
    amplified: str | None = None,
    stated: Interpretation | None = None,
    failed: str | None = None,
) -> IshResult:
    # Dual probe as stated by the assay (a CEP17 count or ratio reported, even one that failed):
    # copies without a ratio are then an incomplete dual-probe count, not a single probe.
    return IshResult(
        probe=IshProbe.DUAL,
        ratio=None if ratio is None else num(ratio),
        her2_copies=None if copies is None else num(copies),
        cep17_copies=None if cep17 is None else num(cep17),
        recount_done=recount,
        earlier_counts=counts(*earlier),
        amplified_percent=None if amplified is None else num(amplified),
        stated=stated,
        indeterminate_reason=failed,
    )


def inferred_single(copies: str) -> IshResult:
    """HER2 copies and nothing else: no probe stated, no CEP17, no ratio (section 3)."""
    return IshResult(her2_copies=num(copies))


def single(copies: str | None, *, earlier: tuple[str, ...] = ()) -> IshResult:
    return IshResult(
        probe=IshProbe.SINGLE,
        her2_copies=_opt(copies),
        earlier_counts=counts(*((None, value) for value in earlier)),
    )


def pct(text: str, stated: Interpretation | None = None) -> ReceptorResult:
    return ReceptorResult(percent=num(text), stated=stated)


def said(stated: Interpretation) -> ReceptorResult:
    return ReceptorResult(stated=stated)


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

_UNCHECKED = object()


@dataclass(frozen=True)
class Case:
    name: str
    record: AssayRecord
    fires: tuple[str, ...]
    expect: dict[str, object] = field(default_factory=dict)
    flags: tuple[FlagCode, ...] = ()
    no_flags: tuple[FlagCode, ...] = ()


def her2(
    name: str,
    rec: AssayRecord,
    official: OfficialResult,
    category: Category,
    fires: tuple[str, ...],
    *,
    group: object = _UNCHECKED,
    flags: tuple[FlagCode, ...] = (),
    no_flags: tuple[FlagCode, ...] = (),
) -> Case:
    expect: dict[str, object] = {"official_result": official, "category": category}
    if group is not _UNCHECKED:
        expect["ish_group"] = group
    return Case(name, rec, fires, expect, flags, no_flags)


def receptors(
    name: str,
    rec: AssayRecord,
    fires: tuple[str, ...],
    *,
    er: object = _UNCHECKED,
    pgr: object = _UNCHECKED,
    hr: object = _UNCHECKED,
    flags: tuple[FlagCode, ...] = (),
    no_flags: tuple[FlagCode, ...] = (),
) -> Case:
    expect = {
        key: value
        for key, value in (("er_result", er), ("pgr_result", pgr), ("hr_status", hr))
        if value is not _UNCHECKED
    }
    return Case(name, rec, fires, expect, flags, no_flags)


F = FlagCode

IHC_ONLY = [
    her2("3+ positive", record(ihc=ihc("3+")), POS, C_POS, ("HER2-IHC-3", "HER2-CAT-POSITIVE")),
    her2(
        "2+ equivocal, reflex ISH pending",
        record(ihc=ihc("2+")),
        EQV,
        C_EQV,
        ("HER2-IHC-2", "HER2-CAT-EQUIVOCAL"),
        flags=(F.PENDING_WORKUP,),
    ),
    her2(
        "1+ negative, HER2-low",
        record(ihc=ihc("1+")),
        NEG,
        C_LOW,
        ("HER2-IHC-1", "HER2-CAT-LOW-IHC1", "HER2-2023-WORDING"),
    ),
    her2(
        "0 without sub-type, HER2-negative",
        record(ihc=ihc("0")),
        NEG,
        C_NEG,
        ("HER2-IHC-0", "HER2-CAT-NEGATIVE-NO-SUBTYPE"),
    ),
    her2(
        "0 stated ultralow",
        record(ihc=ihc("0", subtype=Ihc0Subtype.ULTRALOW)),
        NEG,
        C_ULTRA,
        ("HER2-CAT-ULTRALOW", "HER2-2023-WORDING"),
    ),
    her2(
        "0 stated null",
        record(ihc=ihc("0", subtype=Ihc0Subtype.NULL)),
        NEG,
        C_NULL,
        ("HER2-CAT-NULL", "HER2-2023-WORDING"),
    ),
    her2(
        "0 sub-type stated unknown",
        record(ihc=ihc("0", subtype=Ihc0Subtype.UNKNOWN)),
        NEG,
        C_NEG,
        ("HER2-CAT-NEGATIVE-NO-SUBTYPE",),
    ),
    her2(
        "0 stained 0% is null", record(ihc=ihc("0", stained="0")), NEG, C_NULL, ("HER2-CAT-NULL",)
    ),
    her2(
        "0 stained 0.1% is ultralow",
        record(ihc=ihc("0", stained="0.1")),
        NEG,
        C_ULTRA,
        ("HER2-CAT-ULTRALOW",),
    ),
    her2(
        "0 stained 10% is ultralow",
        record(ihc=ihc("0", stained="10")),
        NEG,
        C_ULTRA,
        ("HER2-CAT-ULTRALOW",),
    ),
    her2(
        "0 stained 10.5% is not IHC 0: discordance, no sub-type",
        record(ihc=ihc("0", stained="10.5")),
        NEG,
        C_NEG,
        ("HER2-CAT-NEGATIVE-NO-SUBTYPE",),
        flags=(F.DISCORDANCE,),
    ),
    her2(
        "0 stained 0-5% straddles null and ultralow",
        record(ihc=ihc("0", stained="0-5")),
        NEG,
        C_NEG,
        ("HER2-CAT-NEGATIVE-NO-SUBTYPE",),
        flags=(F.UNDECIDABLE_VALUE,),
    ),
    her2(
        "0 stained <1% straddles null and ultralow",
        record(ihc=ihc("0", stained="<1")),
        NEG,
        C_NEG,
        ("HER2-CAT-NEGATIVE-NO-SUBTYPE",),
        flags=(F.UNDECIDABLE_VALUE,),
    ),
    her2(
        "stated null agrees with stained 0%",
        record(ihc=ihc("0", subtype=Ihc0Subtype.NULL, stained="0")),
        NEG,
        C_NULL,
        ("HER2-CAT-NULL",),
        no_flags=(F.DISCORDANCE,),
    ),
    her2(
        "stated ultralow agrees with stained 10%",
        record(ihc=ihc("0", subtype=Ihc0Subtype.ULTRALOW, stained="10")),
        NEG,
        C_ULTRA,
        ("HER2-CAT-ULTRALOW",),
        no_flags=(F.DISCORDANCE,),
    ),
    her2(
        "'Negative' without a score: HER2-negative, score missing",
        record(ihc=ihc(None, stated=Interpretation.NEGATIVE)),
        NEG,
        C_NEG,
        ("HER2-IHC-STATED-NO-SCORE", "HER2-CAT-NEGATIVE-NO-SUBTYPE"),
        flags=(F.SCORE_MISSING,),
    ),
    her2(
        "'low positive' (not a HER2 result) without a score is not used: equivocal, not failed",
        record(ihc=ihc(None, stated=Interpretation.LOW_POSITIVE)),
        EQV,
        C_EQV,
        ("HER2-IHC-SCORE-MISSING-UNUSABLE", "HER2-NO-USABLE-RESULT", "HER2-CAT-EQUIVOCAL"),
        flags=(F.SCORE_MISSING, F.PENDING_WORKUP),
    ),
    her2(
        "'Negative (3+)' contradicts: IHC not used, equivocal pending review (no test failed)",
        record(ihc=ihc("3+", stated=Interpretation.NEGATIVE)),
        EQV,
        C_EQV,
        (
            "HER2-IHC-TEXT-CONTRADICTS-SCORE",
            "HER2-NO-USABLE-RESULT",
            "HER2-CAT-EQUIVOCAL",
        ),
        flags=(F.DISCORDANCE, F.PENDING_WORKUP),
    ),
    her2(
        "'Positive (1+)' contradicts: IHC not used, ISH group 5 decides",
        record(ihc=ihc("1+", stated=Interpretation.POSITIVE), ish=dual("1.2", "2.0")),
        NEG,
        C_NEG,
        ("HER2-IHC-TEXT-CONTRADICTS-SCORE", "HER2-ISH-G5-NEGATIVE"),
        group=5,
        flags=(F.DISCORDANCE,),
    ),
    her2(
        "'Negative (1+)' agrees",
        record(ihc=ihc("1+", stated=Interpretation.NEGATIVE)),
        NEG,
        C_LOW,
        ("HER2-IHC-1",),
        no_flags=(F.DISCORDANCE,),
    ),
    her2(
        "'Equivocal (2+)' agrees",
        record(ihc=ihc("2+", stated=Interpretation.EQUIVOCAL)),
        EQV,
        C_EQV,
        ("HER2-IHC-2",),
        no_flags=(F.DISCORDANCE,),
    ),
    her2(
        "an IHC result with nothing in it: equivocal pending review, not indeterminate",
        record(ihc=IhcResult()),
        EQV,
        C_EQV,
        ("HER2-NO-USABLE-RESULT",),
        flags=(F.PENDING_WORKUP,),
        no_flags=(F.DISCORDANCE,),
    ),
    her2(
        "IHC could not be scored",
        record(ihc=ihc(None, failed="failed controls")),
        IND,
        C_IND,
        ("HER2-INDETERMINATE-LAB", "HER2-CAT-INDETERMINATE"),
    ),
    her2(
        "ISH failed and no IHC",
        record(ish=dual(None, None, failed="no signals")),
        IND,
        C_IND,
        ("HER2-INDETERMINATE-LAB",),
    ),
    her2(
        "lab's overall call indeterminate, no test",
        record(lab=Interpretation.INDETERMINATE),
        IND,
        C_IND,
        ("HER2-INDETERMINATE-LAB",),
    ),
    her2(
        "ISH failed, IHC 3+ decides",
        record(ihc=ihc("3+"), ish=dual(None, None, failed="no signals")),
        POS,
        C_POS,
        ("HER2-IHC-3",),
        group=None,
    ),
]

# Section 2, written out by hand: (group, ratio, copies), then per IHC cell:
# (IHC score, recount done, official, category, rule).
GROUP_NUMBERS = {
    1: ("2.0", "4.0"),
    2: ("2.0", "3.99"),
    3: ("1.99", "6.0"),
    4: ("1.99", "4.0"),
    5: ("1.99", "3.99"),
}
GROUP_CELLS: dict[int, list[tuple[str | None, bool, OfficialResult, Category, str]]] = {
    1: [
        ("3+", False, POS, C_POS, "HER2-ISH-G1-POSITIVE"),
        ("2+", True, POS, C_POS, "HER2-ISH-G1-POSITIVE"),
        ("2+", False, POS, C_POS, "HER2-ISH-G1-POSITIVE"),
        ("1+", False, POS, C_POS, "HER2-ISH-G1-POSITIVE"),
        ("0", False, POS, C_POS, "HER2-DISCORDANCE-IHC0-G1"),
        (None, False, POS, C_POS, "HER2-ISH-G1-POSITIVE"),
    ],
    2: [
        ("3+", False, POS, C_POS, "HER2-ISH-G2-IHC3"),
        ("2+", True, NEG, C_LOW, "HER2-ISH-G2-IHC2-RECOUNT"),
        ("2+", False, EQV, C_EQV, "HER2-ISH-G2-IHC2-PENDING"),
        ("1+", False, NEG, C_LOW, "HER2-ISH-G2-IHC01"),
        ("0", False, NEG, C_NEG, "HER2-ISH-G2-IHC01"),
        (None, False, EQV, C_EQV, "HER2-ISH-G2-NO-IHC"),
    ],
    3: [
        ("3+", False, POS, C_POS, "HER2-ISH-G3-IHC3"),
        ("2+", True, POS, C_POS, "HER2-ISH-G3-IHC2-RECOUNT"),
        ("2+", False, EQV, C_EQV, "HER2-ISH-G3-IHC2-PENDING"),
        ("1+", False, NEG, C_LOW, "HER2-ISH-G3-IHC01"),
        ("0", False, NEG, C_NEG, "HER2-ISH-G3-IHC01"),
        (None, False, EQV, C_EQV, "HER2-ISH-G3-NO-IHC"),
    ],
    4: [
        ("3+", False, POS, C_POS, "HER2-ISH-G4-IHC3"),
        ("2+", True, NEG, C_LOW, "HER2-ISH-G4-IHC2-RECOUNT"),
        ("2+", False, EQV, C_EQV, "HER2-ISH-G4-IHC2-PENDING"),
        ("1+", False, NEG, C_LOW, "HER2-ISH-G4-IHC01"),
        ("0", False, NEG, C_NEG, "HER2-ISH-G4-IHC01"),
        (None, False, EQV, C_EQV, "HER2-ISH-G4-NO-IHC"),
    ],
    5: [
        ("3+", False, POS, C_POS, "HER2-DISCORDANCE-IHC3-G5"),
        ("2+", True, NEG, C_LOW, "HER2-ISH-G5-NEGATIVE"),
        ("2+", False, NEG, C_LOW, "HER2-ISH-G5-NEGATIVE"),
        ("1+", False, NEG, C_LOW, "HER2-ISH-G5-NEGATIVE"),
        ("0", False, NEG, C_NEG, "HER2-ISH-G5-NEGATIVE"),
        (None, False, NEG, C_NEG, "HER2-ISH-G5-NEGATIVE"),
    ],
}
PENDING_RULES = {f"HER2-ISH-G{g}-{end}" for g in (2, 3, 4) for end in ("IHC2-PENDING", "NO-IHC")}
DISCORDANT = {"HER2-DISCORDANCE-IHC0-G1", "HER2-DISCORDANCE-IHC3-G5"}

GROUP_MATRIX = [
    her2(
        f"group {group} ratio {ratio} copies {copies}, "
        f"{'no IHC' if score is None else 'IHC ' + score}{', recount' if recount else ''}",
        record(ihc=None if score is None else ihc(score), ish=dual(ratio, copies, recount=recount)),
        official,
        category,
        (f"HER2-ISH-G{group}", rule),
        group=group,
        flags=((F.PENDING_WORKUP,) if rule in PENDING_RULES else ())
        + ((F.DISCORDANCE,) if rule in DISCORDANT else ()),
        no_flags=(() if rule in PENDING_RULES else (F.PENDING_WORKUP,))
        + (() if rule in DISCORDANT else (F.DISCORDANCE,)),
    )
    for group, cells in GROUP_CELLS.items()
    for ratio, copies in [GROUP_NUMBERS[group]]
    for score, recount, official, category, rule in cells
]

ISH_BOUNDARIES = [
    her2(
        "ratio 1.99, copies 4.0: group 4",
        record(ish=dual("1.99", "4.0")),
        EQV,
        C_EQV,
        ("HER2-ISH-G4",),
        group=4,
    ),
    her2(
        "ratio 2.0, copies 4.0: group 1",
        record(ish=dual("2.0", "4.0")),
        POS,
        C_POS,
        ("HER2-ISH-G1",),
        group=1,
    ),
    her2(
        "ratio 2.0, copies 3.99: group 2",
        record(ish=dual("2.0", "3.99")),
        EQV,
        C_EQV,
        ("HER2-ISH-G2",),
        group=2,
    ),
    her2(
        "ratio 1.5, copies 5.99: group 4",
        record(ish=dual("1.5", "5.99")),
        EQV,
        C_EQV,
        ("HER2-ISH-G4",),
        group=4,
    ),
    her2(
        "ratio 1.5, copies 6.0: group 3",
        record(ish=dual("1.5", "6.0")),
        EQV,
        C_EQV,
        ("HER2-ISH-G3",),
        group=3,
    ),
    her2(
        "ratio 1.5, copies 3.99: group 5",
        record(ish=dual("1.5", "3.99")),
        NEG,
        C_NEG,
        ("HER2-ISH-G5",),
        group=5,
    ),
    her2(
        "ratio 1.5, copies >6: group 3",
        record(ish=dual("1.5", ">6")),
        EQV,
        C_EQV,
        ("HER2-ISH-G3",),
        group=3,
    ),
    her2(
        "ratio 2.5, copies 5-7: group 1",
        record(ish=dual("2.5", "5-7")),
        POS,
        C_POS,
        ("HER2-ISH-G1",),
        group=1,
    ),
    her2(
        "ratio 1.5, copies 5-7 straddles 6.0: incomplete, IHC 1+ decides",
        record(ihc=ihc("1+"), ish=dual("1.5", "5-7")),
        NEG,
        C_LOW,
        ("HER2-ISH-INCOMPLETE-IHC-DECIDES",),
        group=None,
        flags=(F.UNDECIDABLE_VALUE, F.INCOMPLETE_ISH),
    ),
    her2(
        "ratio 1.9-2.1 straddles 2.0: incomplete, IHC 2+ equivocal",
        record(ihc=ihc("2+"), ish=dual("1.9-2.1", "5")),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC2",),
        group=None,
        flags=(F.UNDECIDABLE_VALUE, F.INCOMPLETE_ISH, F.PENDING_WORKUP),
    ),
    her2(
        "ratio derived 8.0/4.0 = 2.0: group 1",
        record(ish=dual(None, "8.0", cep17="4.0")),
        POS,
        C_POS,
        ("HER2-ISH-RATIO-DERIVED", "HER2-ISH-G1"),
        group=1,
    ),
    her2(
        "ratio derived 7.98/4.0 = 1.995: group 3",
        record(ish=dual(None, "7.98", cep17="4.0")),
        EQV,
        C_EQV,
        ("HER2-ISH-RATIO-DERIVED", "HER2-ISH-G3"),
        group=3,
    ),
    her2(
        "ratio derived 3.0/2.0 = 1.5: group 5, IHC 1+ HER2-low",
        record(ihc=ihc("1+"), ish=dual(None, "3.0", cep17="2.0")),
        NEG,
        C_LOW,
        ("HER2-ISH-RATIO-DERIVED", "HER2-ISH-G5"),
        group=5,
    ),
    her2(
        "CEP17 0 cannot derive a ratio: incomplete",
        record(ihc=ihc("3+"), ish=dual(None, "3.0", cep17="0")),
        POS,
        C_POS,
        ("HER2-ISH-INCOMPLETE-IHC-DECIDES",),
        group=None,
        flags=(F.INCOMPLETE_ISH,),
    ),
]

INCOMPLETE = [
    her2(
        "ratio without copies, IHC 3+",
        record(ihc=ihc("3+"), ish=dual("2.5", None)),
        POS,
        C_POS,
        ("HER2-ISH-INCOMPLETE-IHC-DECIDES",),
        flags=(F.INCOMPLETE_ISH,),
    ),
    her2(
        "copies 5.0 without ratio, IHC 0: group 1 possible, equivocal",
        record(ihc=ihc("0"), ish=dual(None, "5.0")),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC01-OPEN",),
        flags=(F.INCOMPLETE_ISH, F.PENDING_WORKUP),
    ),
    her2(
        "ratio without copies, IHC 2+",
        record(ihc=ihc("2+"), ish=dual("2.5", None)),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC2",),
        flags=(F.INCOMPLETE_ISH, F.PENDING_WORKUP),
    ),
    her2(
        "ratio without copies, no IHC: equivocal pending a complete count, not indeterminate",
        record(ish=dual("2.5", None)),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-NO-IHC",),
        flags=(F.INCOMPLETE_ISH, F.PENDING_WORKUP),
    ),
    her2(
        "ISH stated positive only, IHC 1+: not overridden, equivocal",
        record(ihc=ihc("1+"), ish=dual(None, None, stated=Interpretation.POSITIVE)),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC01-OPEN",),
        group=None,
        flags=(F.INCOMPLETE_ISH, F.PENDING_WORKUP, F.LAB_INTERPRETATION_DIFFERS),
    ),
    her2(
        "single probe without copies, IHC 2+",
        record(ihc=ihc("2+"), ish=single(None)),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC2",),
        flags=(F.INCOMPLETE_ISH,),
    ),
]

SINGLE_PROBE = [
    # Section 3: HER2 copies with no CEP17 and no ratio anywhere are single probe, flagged.
    her2(
        "inferred single probe: copies 6.0, no IHC",
        record(ish=inferred_single("6.0")),
        POS,
        C_POS,
        ("HER2-ISH-SP-GE6",),
        flags=(F.PROBE_INFERRED,),
        group=None,
    ),
    her2(
        "inferred single probe: copies 5.99, IHC 0",
        record(ihc=ihc("0"), ish=inferred_single("5.99")),
        NEG,
        C_NEG,
        ("HER2-ISH-SP-4TO6-IHC01",),
        flags=(F.PROBE_INFERRED,),
    ),
    her2(
        "inferred single probe: copies 4.0, IHC 2+: dual probe pending",
        record(ihc=ihc("2+"), ish=inferred_single("4.0")),
        EQV,
        C_EQV,
        ("HER2-ISH-SP-4TO6-IHC2",),
        flags=(F.PROBE_INFERRED, F.PENDING_WORKUP),
    ),
    her2(
        "inferred single probe: copies 3.99, IHC 1+",
        record(ihc=ihc("1+"), ish=inferred_single("3.99")),
        NEG,
        C_LOW,
        ("HER2-ISH-SP-LT4",),
        flags=(F.PROBE_INFERRED,),
    ),
    her2(
        "stated dual probe, copies 5.0 without ratio: not inferred single",
        record(ihc=ihc("2+"), ish=dual(None, "5.0")),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC2",),
        no_flags=(F.PROBE_INFERRED,),
    ),
    her2(
        "copies 6.0, no IHC",
        record(ish=single("6.0")),
        POS,
        C_POS,
        ("HER2-ISH-SP-GE6",),
        group=None,
    ),
    her2(
        "copies 5.99, IHC 1+",
        record(ihc=ihc("1+"), ish=single("5.99")),
        NEG,
        C_LOW,
        ("HER2-ISH-SP-4TO6-IHC01",),
    ),
    her2(
        "copies 4.0, IHC 3+",
        record(ihc=ihc("3+"), ish=single("4.0")),
        POS,
        C_POS,
        ("HER2-ISH-SP-4TO6-IHC3",),
    ),
    her2(
        "copies 4.0, IHC 2+: dual probe pending",
        record(ihc=ihc("2+"), ish=single("4.0")),
        EQV,
        C_EQV,
        ("HER2-ISH-SP-4TO6-IHC2",),
        flags=(F.PENDING_WORKUP,),
    ),
    her2(
        "copies 5.0, no IHC: dual probe pending",
        record(ish=single("5.0")),
        EQV,
        C_EQV,
        ("HER2-ISH-SP-4TO6-NO-IHC",),
        flags=(F.PENDING_WORKUP,),
    ),
    her2(
        "copies 3.99, IHC 2+: negative, HER2-low",
        record(ihc=ihc("2+"), ish=single("3.99")),
        NEG,
        C_LOW,
        ("HER2-ISH-SP-LT4", "HER2-CAT-LOW-IHC2-ISH-NEG"),
    ),
    her2(
        "copies 3.99, IHC 3+: positive with discordance",
        record(ihc=ihc("3+"), ish=single("3.99")),
        POS,
        C_POS,
        ("HER2-ISH-SP-LT4-IHC3",),
        flags=(F.DISCORDANCE,),
    ),
    her2(
        "copies 3-5 straddles 4.0: incomplete, no IHC",
        record(ish=single("3-5")),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-NO-IHC",),
        flags=(F.UNDECIDABLE_VALUE, F.INCOMPLETE_ISH, F.PENDING_WORKUP),
    ),
]

HETEROGENEITY = [
    her2(
        "amplified 5%: no flag",
        record(ish=dual("2.5", "5", amplified="5")),
        POS,
        C_POS,
        ("HER2-ISH-G1",),
        no_flags=(F.HETEROGENEITY,),
    ),
    her2(
        "amplified 5.1%: flag",
        record(ish=dual("2.5", "5", amplified="5.1")),
        POS,
        C_POS,
        ("HER2-HETEROGENEITY",),
        flags=(F.HETEROGENEITY,),
    ),
    her2(
        "amplified 49.9%: flag, status from whole count",
        record(ihc=ihc("1+"), ish=dual("1.5", "2.0", amplified="49.9")),
        NEG,
        C_LOW,
        ("HER2-HETEROGENEITY", "HER2-ISH-G5"),
        flags=(F.HETEROGENEITY,),
    ),
    her2(
        "amplified 50%: no flag",
        record(ish=dual("2.5", "5", amplified="50")),
        POS,
        C_POS,
        ("HER2-ISH-G1",),
        no_flags=(F.HETEROGENEITY,),
    ),
    her2(
        "amplified 3-10% straddles 5%",
        record(ish=dual("2.5", "5", amplified="3-10")),
        POS,
        C_POS,
        ("HER2-ISH-G1",),
        flags=(F.UNDECIDABLE_VALUE,),
        no_flags=(F.HETEROGENEITY,),
    ),
]

GEA = Tissue.GASTROESOPHAGEAL
GASTRIC = [
    her2("IHC 3+", record(GEA, ihc=ihc("3+")), POS, C_POS, ("GEA-IHC-3",), group=None),
    her2(
        "IHC 2+ without ISH",
        record(GEA, ihc=ihc("2+")),
        EQV,
        C_EQV,
        ("GEA-IHC-2",),
        flags=(F.PENDING_WORKUP,),
    ),
    her2("IHC 1+", record(GEA, ihc=ihc("1+")), NEG, C_NEG, ("GEA-IHC-01", "GEA-CAT-NEGATIVE")),
    her2(
        "IHC 0 ultralow is still HER2-negative",
        record(GEA, ihc=ihc("0", subtype=Ihc0Subtype.ULTRALOW)),
        NEG,
        C_NEG,
        ("GEA-IHC-01", "GEA-CAT-NEGATIVE"),
    ),
    her2(
        "IHC 2+, ratio 2.0: positive, no group",
        record(GEA, ihc=ihc("2+"), ish=dual("2.0", "3.0")),
        POS,
        C_POS,
        ("GEA-ISH-POSITIVE",),
        group=None,
    ),
    her2(
        "IHC 2+, ratio 1.99: negative",
        record(GEA, ihc=ihc("2+"), ish=dual("1.99", "7.0")),
        NEG,
        C_NEG,
        ("GEA-ISH-NEGATIVE", "GEA-CAT-NEGATIVE"),
        group=None,
    ),
    her2(
        "IHC 3+, ratio 1.5: positive",
        record(GEA, ihc=ihc("3+"), ish=dual("1.5", "2.0")),
        POS,
        C_POS,
        ("GEA-IHC-3", "GEA-ISH-NEGATIVE"),
    ),
    her2(
        "ratio derived 9/3 = 3: positive",
        record(GEA, ish=dual(None, "9", cep17="3")),
        POS,
        C_POS,
        ("HER2-ISH-RATIO-DERIVED", "GEA-ISH-POSITIVE"),
    ),
    her2(
        "ratio 1.8-2.2 straddles, IHC 1+: ratio ≥ 2.0 possible, equivocal",
        record(GEA, ihc=ihc("1+"), ish=dual("1.8-2.2", None)),
        EQV,
        C_EQV,
        ("GEA-ISH-INCOMPLETE-IHC01-OPEN",),
        flags=(F.UNDECIDABLE_VALUE, F.INCOMPLETE_ISH, F.PENDING_WORKUP),
    ),
    her2(
        "copies 12.0 without ratio, IHC 0: equivocal",
        record(GEA, ihc=ihc("0"), ish=dual(None, "12.0")),
        EQV,
        C_EQV,
        ("GEA-ISH-INCOMPLETE-IHC01-OPEN",),
        flags=(F.INCOMPLETE_ISH, F.PENDING_WORKUP),
    ),
    her2(
        "ISH 'not amplified' in words only, IHC 1+: nothing suggests ISH-positive, IHC decides",
        record(GEA, ihc=ihc("1+"), ish=dual(None, None, stated=Interpretation.NEGATIVE)),
        NEG,
        C_NEG,
        ("HER2-ISH-INCOMPLETE-IHC-DECIDES",),
        flags=(F.INCOMPLETE_ISH,),
        no_flags=(F.PENDING_WORKUP,),
    ),
    her2(
        "ISH without numbers, IHC 3+: positive",
        record(GEA, ihc=ihc("3+"), ish=dual(None, None)),
        POS,
        C_POS,
        ("HER2-ISH-INCOMPLETE-IHC-DECIDES",),
    ),
    her2(
        "counts 2.2 then 1.8, IHC 1+: different sides of 2.0, equivocal",
        record(GEA, ihc=ihc("1+"), ish=dual("1.8", "3.0", earlier=(("2.2", "4.4"),))),
        EQV,
        C_EQV,
        ("GEA-ISH-COUNTS-DISAGREE",),
        flags=(F.DISCORDANCE, F.PENDING_WORKUP),
    ),
    her2(
        "counts 2.2 then 1.8, IHC 3+: positive, discordance",
        record(GEA, ihc=ihc("3+"), ish=dual("1.8", "3.0", earlier=(("2.2", "4.4"),))),
        POS,
        C_POS,
        ("GEA-ISH-COUNTS-DISAGREE-IHC3",),
        flags=(F.DISCORDANCE,),
        no_flags=(F.PENDING_WORKUP,),
    ),
    her2(
        "counts 2.2 then 2.0, IHC 1+: both ≥ 2.0, positive",
        record(GEA, ihc=ihc("1+"), ish=dual("2.0", "3.0", earlier=(("2.2", "4.4"),))),
        POS,
        C_POS,
        ("GEA-ISH-POSITIVE",),
        no_flags=(F.DISCORDANCE,),
    ),
    her2(
        "counts 1.5 then 1.99, IHC 1+: both < 2.0, negative",
        record(GEA, ihc=ihc("1+"), ish=dual("1.99", "3.0", earlier=(("1.5", "3.0"),))),
        NEG,
        C_NEG,
        ("GEA-ISH-NEGATIVE",),
        no_flags=(F.DISCORDANCE,),
    ),
    her2(
        "group-2 numbers, IHC 1+: gastric positive (breast would be negative)",
        record(GEA, ihc=ihc("1+"), ish=dual("2.5", "3.0")),
        POS,
        C_POS,
        ("GEA-ISH-POSITIVE",),
    ),
    her2(
        "group-2 numbers, IHC 1+: breast negative with comment (gastric would be positive)",
        record(ihc=ihc("1+"), ish=dual("2.5", "3.0")),
        NEG,
        C_LOW,
        ("HER2-ISH-G2-IHC01",),
        group=2,
    ),
    her2(
        "group-3 numbers, IHC 2+ recount: breast positive (gastric would be negative)",
        record(ihc=ihc("2+"), ish=dual("1.5", "6.5", recount=True)),
        POS,
        C_POS,
        ("HER2-ISH-G3-IHC2-RECOUNT",),
        group=3,
    ),
    her2(
        "group-3 numbers, IHC 2+ recount: gastric negative (breast would be positive)",
        record(GEA, ihc=ihc("2+"), ish=dual("1.5", "6.5", recount=True)),
        NEG,
        C_NEG,
        ("GEA-ISH-NEGATIVE",),
        group=None,
    ),
    her2(
        "heterogeneity flagged for gastric too",
        record(GEA, ish=dual("2.5", None, amplified="30")),
        POS,
        C_POS,
        ("HER2-HETEROGENEITY", "GEA-ISH-POSITIVE"),
        flags=(F.HETEROGENEITY,),
    ),
]

UNK = Tissue.UNKNOWN
UNKNOWN_TISSUE = [
    her2(
        "both rule sets positive",
        record(UNK, ihc=ihc("3+")),
        POS,
        C_POS,
        ("TISSUE-UNKNOWN-AGREE", "HER2-IHC-3", "GEA-IHC-3", "HER2-CAT-POSITIVE"),
        group=None,
        flags=(F.TISSUE_UNKNOWN,),
    ),
    her2(
        "both negative: HER2-negative, not HER2-low",
        record(UNK, ihc=ihc("1+")),
        NEG,
        C_NEG,
        ("TISSUE-UNKNOWN-AGREE",),
        flags=(F.TISSUE_UNKNOWN,),
    ),
    her2(
        "breast negative, gastric positive: equivocal pending the tissue, not indeterminate",
        record(UNK, ihc=ihc("1+"), ish=dual("2.5", "3.0")),
        EQV,
        C_EQV,
        ("TISSUE-UNKNOWN", "HER2-CAT-EQUIVOCAL"),
        group=None,
        flags=(F.TISSUE_UNKNOWN, F.PENDING_WORKUP),
    ),
    her2(
        "breast positive (group 3, IHC 2+ recounted), gastric ratio < 2.0 negative: equivocal",
        record(UNK, ihc=ihc("2+"), ish=dual("1.5", "7.0", recount=True)),
        EQV,
        C_EQV,
        ("TISSUE-UNKNOWN", "HER2-ISH-G3-IHC2-RECOUNT", "GEA-ISH-NEGATIVE"),
        group=None,
        flags=(F.TISSUE_UNKNOWN, F.PENDING_WORKUP),
    ),
    her2(
        "both rule sets fail alike: indeterminate stays for the failed test",
        record(UNK, ihc=ihc(None, failed="failed controls")),
        IND,
        C_IND,
        ("TISSUE-UNKNOWN-AGREE", "HER2-INDETERMINATE-LAB"),
        flags=(F.TISSUE_UNKNOWN,),
    ),
]

CONFLICT = "conflicting HER2 IHC results in one order: OBX[2], OBX[3]"
ISH_CONFLICT = "conflicting qualitative ISH results in one order: OBX[4], OBX[5]"


def conflicting_ish(ratio: str | None = None, copies: str | None = None) -> IshResult:
    return IshResult(
        probe=IshProbe.DUAL,
        ratio=_opt(ratio),
        her2_copies=_opt(copies),
        conflict=ISH_CONFLICT,
    )


CONFLICTING = [
    her2(
        "IHC 1+ and 3+ in one order, no ISH: equivocal pending review, not indeterminate",
        record(ihc=IhcResult(conflict=CONFLICT)),
        EQV,
        C_EQV,
        ("HER2-IHC-CONFLICTING", "HER2-NO-USABLE-RESULT", "HER2-CAT-EQUIVOCAL"),
        flags=(F.DISCORDANCE, F.PENDING_WORKUP),
    ),
    her2(
        "conflicting IHC, ISH group 1: positive whatever the IHC",
        record(ihc=IhcResult(conflict=CONFLICT), ish=dual("2.5", "5.0")),
        POS,
        C_POS,
        ("HER2-IHC-CONFLICTING", "HER2-ISH-G1-POSITIVE"),
        group=1,
        flags=(F.DISCORDANCE,),
    ),
    her2(
        "conflicting IHC, ISH group 5: negative, no IHC score so HER2-negative (not HER2-low)",
        record(ihc=IhcResult(conflict=CONFLICT), ish=dual("1.2", "2.0")),
        NEG,
        C_NEG,
        ("HER2-IHC-CONFLICTING", "HER2-ISH-G5-NEGATIVE", "HER2-CAT-NEGATIVE-NO-SUBTYPE"),
        group=5,
        flags=(F.DISCORDANCE,),
    ),
    her2(
        "conflicting IHC, ISH group 4: equivocal pending IHC",
        record(ihc=IhcResult(conflict=CONFLICT), ish=dual("1.5", "5.0")),
        EQV,
        C_EQV,
        ("HER2-IHC-CONFLICTING", "HER2-ISH-G4-NO-IHC"),
        flags=(F.DISCORDANCE, F.PENDING_WORKUP),
    ),
    her2(
        "conflicting IHC beside a failed ISH: equivocal (one test failed, the other conflicts)",
        record(ihc=IhcResult(conflict=CONFLICT), ish=dual(None, None, failed="no signals")),
        EQV,
        C_EQV,
        ("HER2-IHC-CONFLICTING", "HER2-NO-USABLE-RESULT"),
        flags=(F.DISCORDANCE, F.PENDING_WORKUP),
    ),
    her2(
        "failed IHC and failed ISH: indeterminate",
        record(ihc=ihc(None, failed="failed controls"), ish=dual(None, None, failed="no signals")),
        IND,
        C_IND,
        ("HER2-INDETERMINATE-LAB", "HER2-CAT-INDETERMINATE"),
        no_flags=(F.DISCORDANCE, F.PENDING_WORKUP),
    ),
    her2(
        "'amplified' and 'not amplified' in one order, no IHC: equivocal pending adjudication",
        record(ish=conflicting_ish()),
        EQV,
        C_EQV,
        ("HER2-ISH-CONFLICTING", "HER2-CAT-EQUIVOCAL"),
        group=None,
        flags=(F.DISCORDANCE, F.PENDING_WORKUP),
    ),
    her2(
        "conflicting ISH with counts and IHC 1+: equivocal, never negative on IHC alone",
        record(ihc=ihc("1+"), ish=conflicting_ish("1.2", "2.0")),
        EQV,
        C_EQV,
        ("HER2-IHC-1", "HER2-ISH-CONFLICTING"),
        group=None,
        flags=(F.DISCORDANCE, F.PENDING_WORKUP),
    ),
    her2(
        "conflicting ISH, IHC 3+: positive",
        record(ihc=ihc("3+"), ish=conflicting_ish()),
        POS,
        C_POS,
        ("HER2-ISH-CONFLICTING-IHC3", "HER2-CAT-POSITIVE"),
        flags=(F.DISCORDANCE,),
        no_flags=(F.PENDING_WORKUP,),
    ),
    her2(
        "gastroesophageal conflicting ISH, IHC 1+: equivocal",
        record(Tissue.GASTROESOPHAGEAL, ihc=ihc("1+"), ish=conflicting_ish("2.5")),
        EQV,
        C_EQV,
        ("GEA-IHC-01", "HER2-ISH-CONFLICTING"),
        flags=(F.DISCORDANCE, F.PENDING_WORKUP),
    ),
    receptors(
        "ER 'positive' and 'negative' in one order: ER undetermined, PgR decides HR",
        record(er=ReceptorResult(conflict="conflicting ER results in one order"), pgr=pct("40")),
        ("ER-UNDETERMINED", "PGR-POSITIVE", "HR-POSITIVE"),
        er=None,
        hr=HrStatus.POSITIVE,
        flags=(F.DISCORDANCE, F.RECEPTOR_UNDETERMINED),
    ),
]

LAB_CALLS = [
    her2(
        "lab says positive, rules say negative",
        record(ihc=ihc("1+"), lab=Interpretation.POSITIVE),
        NEG,
        C_LOW,
        ("HER2-IHC-1",),
        flags=(F.LAB_INTERPRETATION_DIFFERS,),
    ),
    her2(
        "lab says HER2-low, rules say negative: no flag",
        record(ihc=ihc("1+"), lab=Interpretation.HER2_LOW),
        NEG,
        C_LOW,
        ("HER2-IHC-1",),
        no_flags=(F.LAB_INTERPRETATION_DIFFERS,),
    ),
    her2(
        "lab says 'low positive', not a HER2 result",
        record(ihc=ihc("3+"), lab=Interpretation.LOW_POSITIVE),
        POS,
        C_POS,
        ("HER2-IHC-3",),
        flags=(F.LAB_INTERPRETATION_DIFFERS,),
    ),
    her2(
        "ISH stated negative, group 2 with IHC 3+ positive",
        record(ihc=ihc("3+"), ish=dual("2.2", "3.0", stated=Interpretation.NEGATIVE)),
        POS,
        C_POS,
        ("HER2-ISH-G2-IHC3",),
        flags=(F.LAB_INTERPRETATION_DIFFERS,),
    ),
]

# Review fix A: IHC 0/1+ decides an incomplete ISH only when the known values rule out group 1.
INCOMPLETE_IHC01 = [
    her2(
        "ratio 4.5 alone, IHC 1+: group 1 possible",
        record(ihc=ihc("1+"), ish=dual("4.5", None)),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC01-OPEN", "HER2-CAT-EQUIVOCAL"),
        group=None,
        flags=(F.INCOMPLETE_ISH, F.PENDING_WORKUP),
    ),
    her2(
        "HER2 copies 12.0 alone, IHC 0: group 1 possible",
        record(ihc=ihc("0"), ish=dual(None, "12.0")),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC01-OPEN",),
        flags=(F.INCOMPLETE_ISH, F.PENDING_WORKUP),
    ),
    her2(
        "ratio 1.9-2.1 straddles 2.0 with copies 5, IHC 1+: group 1 possible",
        record(ihc=ihc("1+"), ish=dual("1.9-2.1", "5")),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC01-OPEN",),
        flags=(F.UNDECIDABLE_VALUE, F.INCOMPLETE_ISH, F.PENDING_WORKUP),
    ),
    her2(
        "ISH stated amplified in words only, IHC 0: equivocal, lab call differs",
        record(ihc=ihc("0"), ish=dual(None, None, stated=Interpretation.POSITIVE)),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC01-OPEN",),
        flags=(F.INCOMPLETE_ISH, F.PENDING_WORKUP, F.LAB_INTERPRETATION_DIFFERS),
    ),
    her2(
        "ISH 'not amplified' in words only, IHC 1+: nothing suggests group 1, IHC decides",
        record(ihc=ihc("1+"), ish=dual(None, None, stated=Interpretation.NEGATIVE)),
        NEG,
        C_LOW,
        ("HER2-ISH-INCOMPLETE-IHC-DECIDES", "HER2-CAT-LOW-IHC1"),
        flags=(F.INCOMPLETE_ISH,),
        no_flags=(F.PENDING_WORKUP,),
    ),
    her2(
        "ratio 2.0 alone (boundary), IHC 1+: group 1 possible",
        record(ihc=ihc("1+"), ish=dual("2.0", None)),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC01-OPEN",),
    ),
    her2(
        "ratio 1.99 alone (boundary), IHC 1+: group 1 ruled out, negative",
        record(ihc=ihc("1+"), ish=dual("1.99", None)),
        NEG,
        C_LOW,
        ("HER2-ISH-INCOMPLETE-IHC-DECIDES", "HER2-CAT-LOW-IHC1"),
        flags=(F.INCOMPLETE_ISH,),
        no_flags=(F.PENDING_WORKUP,),
    ),
    her2(
        "HER2 copies 4.0 alone (boundary), IHC 0: group 1 possible",
        record(ihc=ihc("0"), ish=dual(None, "4.0")),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC01-OPEN",),
    ),
    her2(
        "HER2 copies 3.99 alone (boundary), IHC 0: group 1 ruled out, negative",
        record(ihc=ihc("0"), ish=dual(None, "3.99")),
        NEG,
        C_NEG,
        ("HER2-ISH-INCOMPLETE-IHC-DECIDES",),
        no_flags=(F.PENDING_WORKUP,),
    ),
    her2(
        "ratio 1.9-2.1 straddles, copies 3.0: group 1 ruled out, IHC 1+ negative",
        record(ihc=ihc("1+"), ish=dual("1.9-2.1", "3.0")),
        NEG,
        C_LOW,
        ("HER2-ISH-INCOMPLETE-IHC-DECIDES",),
        flags=(F.UNDECIDABLE_VALUE, F.INCOMPLETE_ISH),
    ),
    her2(
        "ratio 2.5, copies 3-5 straddles 4.0, IHC 1+: group 1 possible",
        record(ihc=ihc("1+"), ish=dual("2.5", "3-5")),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC01-OPEN",),
    ),
    her2(
        "stated negative without score, ratio 4.5 alone: equivocal",
        record(ihc=ihc(None, stated=Interpretation.NEGATIVE), ish=dual("4.5", None)),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC01-OPEN",),
    ),
    her2(
        "ratio 4.5 alone, IHC 3+: positive",
        record(ihc=ihc("3+"), ish=dual("4.5", None)),
        POS,
        C_POS,
        ("HER2-ISH-INCOMPLETE-IHC-DECIDES",),
    ),
    her2(
        "single probe copies 5-7 straddles 6.0, IHC 1+: positive band possible",
        record(ihc=ihc("1+"), ish=single("5-7")),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC01-OPEN",),
        flags=(F.UNDECIDABLE_VALUE, F.INCOMPLETE_ISH, F.PENDING_WORKUP),
    ),
    her2(
        "single probe copies 3-5 straddles 4.0 (below 6.0), IHC 1+: negative",
        record(ihc=ihc("1+"), ish=single("3-5")),
        NEG,
        C_LOW,
        ("HER2-ISH-INCOMPLETE-IHC-DECIDES",),
    ),
    her2(
        "single probe without copies, IHC 0: equivocal",
        record(ihc=ihc("0"), ish=single(None)),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC01-OPEN",),
    ),
]

# Review fix B: a count and a recount in different groups need adjudication.
SEVERAL_COUNTS = [
    her2(
        "group 4 then group 5, IHC 1+: equivocal, discordance",
        record(ihc=ihc("1+"), ish=dual("1.8", "3.5", earlier=(("1.8", "4.5"),))),
        EQV,
        C_EQV,
        ("HER2-ISH-COUNTS-DISAGREE", "HER2-CAT-EQUIVOCAL"),
        group=None,
        flags=(F.DISCORDANCE, F.PENDING_WORKUP),
    ),
    her2(
        "group 1 then group 4 (ratio 2.0 then 1.99), IHC 0: equivocal",
        record(ihc=ihc("0"), ish=dual("1.99", "4.0", earlier=(("2.0", "4.0"),))),
        EQV,
        C_EQV,
        ("HER2-ISH-COUNTS-DISAGREE",),
        group=None,
        flags=(F.DISCORDANCE, F.PENDING_WORKUP),
    ),
    her2(
        "group 2 then group 1, no IHC: equivocal",
        record(ish=dual("2.5", "4.5", earlier=(("2.5", "3.5"),))),
        EQV,
        C_EQV,
        ("HER2-ISH-COUNTS-DISAGREE",),
        group=None,
    ),
    her2(
        "group 4 then group 5, IHC 3+: positive, discordance",
        record(ihc=ihc("3+"), ish=dual("1.8", "3.5", earlier=(("1.8", "4.5"),))),
        POS,
        C_POS,
        ("HER2-ISH-COUNTS-DISAGREE-IHC3",),
        group=None,
        flags=(F.DISCORDANCE,),
        no_flags=(F.PENDING_WORKUP,),
    ),
    her2(
        "earlier count ratio alone, last group 1: cannot confirm, equivocal",
        record(ihc=ihc("1+"), ish=dual("2.5", "5.0", earlier=(("2.5", None),))),
        EQV,
        C_EQV,
        ("HER2-ISH-COUNTS-DISAGREE",),
        flags=(F.DISCORDANCE,),
    ),
    her2(
        "group 4 twice, IHC 2+ recount: same group, negative",
        record(ihc=ihc("2+"), ish=dual("1.6", "5.0", recount=True, earlier=(("1.5", "4.5"),))),
        NEG,
        C_LOW,
        ("HER2-ISH-G4-IHC2-RECOUNT",),
        group=4,
        no_flags=(F.DISCORDANCE,),
    ),
    her2(
        "group 1 twice, IHC 1+: positive",
        record(ihc=ihc("1+"), ish=dual("2.3", "4.5", earlier=(("2.1", "4.2"),))),
        POS,
        C_POS,
        ("HER2-ISH-G1-POSITIVE",),
        group=1,
        no_flags=(F.DISCORDANCE,),
    ),
    her2(
        "single probe 6.5 then 5.0, no IHC: different bands, equivocal",
        record(ish=single("5.0", earlier=("6.5",))),
        EQV,
        C_EQV,
        ("HER2-ISH-COUNTS-DISAGREE",),
        flags=(F.DISCORDANCE, F.PENDING_WORKUP),
    ),
    her2(
        "single probe 6.5 then 7.0, IHC 1+: same band, positive",
        record(ihc=ihc("1+"), ish=single("7.0", earlier=("6.5",))),
        POS,
        C_POS,
        ("HER2-ISH-SP-GE6",),
        no_flags=(F.DISCORDANCE,),
    ),
]

# Review fix C: "HER2-low" without a score may be IHC 2+; it is not the "0 or 1+" column.
_LOW = Interpretation.HER2_LOW
HER2_LOW_UNSCORED = [
    *(
        her2(
            f"group {group}, IHC stated HER2-low without score: pending IHC score",
            record(ihc=ihc(None, stated=_LOW), ish=dual(*GROUP_NUMBERS[group])),
            EQV,
            C_EQV,
            (f"HER2-ISH-G{group}-IHC-LOW-UNSCORED",),
            group=group,
            flags=(F.PENDING_WORKUP, F.SCORE_MISSING),
        )
        for group in (2, 3, 4)
    ),
    her2(
        "group 1, IHC stated HER2-low without score: positive",
        record(ihc=ihc(None, stated=_LOW), ish=dual(*GROUP_NUMBERS[1])),
        POS,
        C_POS,
        ("HER2-ISH-G1-POSITIVE",),
        group=1,
    ),
    her2(
        "group 5, IHC stated HER2-low without score: negative",
        record(ihc=ihc(None, stated=_LOW), ish=dual(*GROUP_NUMBERS[5])),
        NEG,
        C_NEG,
        ("HER2-ISH-G5-NEGATIVE",),
        group=5,
    ),
    her2(
        "group 4, IHC stated negative without score: still 0 or 1+, negative",
        record(ihc=ihc(None, stated=Interpretation.NEGATIVE), ish=dual(*GROUP_NUMBERS[4])),
        NEG,
        C_NEG,
        ("HER2-ISH-G4-IHC01",),
        group=4,
    ),
    her2(
        "single probe 5.0, IHC stated HER2-low without score: pending IHC score",
        record(ihc=ihc(None, stated=_LOW), ish=single("5.0")),
        EQV,
        C_EQV,
        ("HER2-ISH-SP-4TO6-IHC-LOW-UNSCORED",),
        flags=(F.PENDING_WORKUP,),
    ),
    her2(
        "ratio 1.5 alone, IHC stated HER2-low without score: read as 2+, equivocal",
        record(ihc=ihc(None, stated=_LOW), ish=dual("1.5", None)),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC2",),
        flags=(F.INCOMPLETE_ISH, F.PENDING_WORKUP),
    ),
]

# Review fix D: IHC score, sub-type and stained percentage that contradict one another.
_NULL, _ULTRA = Ihc0Subtype.NULL, Ihc0Subtype.ULTRALOW
IHC_CONTRADICTIONS = [
    her2(
        "0 stated null, stained 5%: sub-type unknown, discordance",
        record(ihc=ihc("0", subtype=_NULL, stained="5")),
        NEG,
        C_NEG,
        ("HER2-IHC0-SUBTYPE-CONTRADICTS-STAINED", "HER2-CAT-NEGATIVE-NO-SUBTYPE"),
        flags=(F.DISCORDANCE,),
    ),
    her2(
        "0 stated ultralow, stained 0%: sub-type unknown, discordance",
        record(ihc=ihc("0", subtype=_ULTRA, stained="0")),
        NEG,
        C_NEG,
        ("HER2-IHC0-SUBTYPE-CONTRADICTS-STAINED",),
        flags=(F.DISCORDANCE,),
    ),
    her2(
        "0 stated null, stained 0-5% straddles: sub-type unknown, discordance",
        record(ihc=ihc("0", subtype=_NULL, stained="0-5")),
        NEG,
        C_NEG,
        ("HER2-IHC0-SUBTYPE-CONTRADICTS-STAINED",),
        flags=(F.DISCORDANCE,),
    ),
    her2(
        "0 stated ultralow, stained 10.5%: sub-type unknown, discordance",
        record(ihc=ihc("0", subtype=_ULTRA, stained="10.5")),
        NEG,
        C_NEG,
        ("HER2-IHC0-SUBTYPE-CONTRADICTS-STAINED",),
        flags=(F.DISCORDANCE,),
    ),
    her2(
        "1+ with stained 10%: discordance, still HER2-low",
        record(ihc=ihc("1+", stained="10")),
        NEG,
        C_LOW,
        ("HER2-IHC-SCORE-CONTRADICTS-STAINED", "HER2-CAT-LOW-IHC1"),
        flags=(F.DISCORDANCE,),
    ),
    her2(
        "1+ with stained 10.5%: agrees",
        record(ihc=ihc("1+", stained="10.5")),
        NEG,
        C_LOW,
        ("HER2-IHC-1",),
        no_flags=(F.DISCORDANCE,),
    ),
    her2(
        "3+ with stained 5%: discordance, still positive",
        record(ihc=ihc("3+", stained="5")),
        POS,
        C_POS,
        ("HER2-IHC-SCORE-CONTRADICTS-STAINED", "HER2-IHC-3"),
        flags=(F.DISCORDANCE,),
    ),
    her2(
        "2+ with stained 0%: discordance, still equivocal",
        record(ihc=ihc("2+", stained="0")),
        EQV,
        C_EQV,
        ("HER2-IHC-SCORE-CONTRADICTS-STAINED",),
        flags=(F.DISCORDANCE, F.PENDING_WORKUP),
    ),
    her2(
        "2+ with stained 5-15% straddling 10%: no discordance",
        record(ihc=ihc("2+", stained="5-15")),
        EQV,
        C_EQV,
        ("HER2-IHC-2",),
        no_flags=(F.DISCORDANCE,),
    ),
    her2(
        "'HER2-null (0)' agrees",
        record(ihc=ihc("0", stated=Interpretation.HER2_NULL)),
        NEG,
        C_NEG,
        ("HER2-IHC-0",),
        no_flags=(F.DISCORDANCE,),
    ),
]

LAB_CATEGORY = [
    her2(
        "lab says HER2-ultralow, ours HER2-low",
        record(ihc=ihc("1+"), lab=Interpretation.HER2_ULTRALOW),
        NEG,
        C_LOW,
        ("HER2-CAT-LOW-IHC1",),
        flags=(F.LAB_INTERPRETATION_DIFFERS,),
    ),
    her2(
        "lab says HER2-null, ours HER2-ultralow",
        record(ihc=ihc("0", stained="5"), lab=Interpretation.HER2_NULL),
        NEG,
        C_ULTRA,
        ("HER2-CAT-ULTRALOW",),
        flags=(F.LAB_INTERPRETATION_DIFFERS,),
    ),
    her2(
        "lab says HER2-null, ours HER2-null: no flag",
        record(ihc=ihc("0", stained="0"), lab=Interpretation.HER2_NULL),
        NEG,
        C_NULL,
        ("HER2-CAT-NULL",),
        no_flags=(F.LAB_INTERPRETATION_DIFFERS,),
    ),
    her2(
        "lab says HER2-low, ours HER2-negative (IHC 0, no sub-type)",
        record(ihc=ihc("0"), lab=Interpretation.HER2_LOW),
        NEG,
        C_NEG,
        ("HER2-CAT-NEGATIVE-NO-SUBTYPE",),
        flags=(F.LAB_INTERPRETATION_DIFFERS,),
    ),
    her2(
        "gastric, lab says HER2-low, ours HER2-negative",
        record(GEA, ihc=ihc("1+"), lab=Interpretation.HER2_LOW),
        NEG,
        C_NEG,
        ("GEA-CAT-NEGATIVE",),
        flags=(F.LAB_INTERPRETATION_DIFFERS,),
    ),
]

R = ReceptorCall
ER_PGR = [
    receptors("ER 0.9%", record(er=pct("0.9")), ("ER-NEGATIVE",), er=R.NEGATIVE),
    receptors(
        "ER 1%",
        record(er=pct("1")),
        ("ER-LOW-POSITIVE",),
        er=R.LOW_POSITIVE,
        flags=(F.ER_LOW_POSITIVE,),
    ),
    receptors("ER 10%", record(er=pct("10")), ("ER-LOW-POSITIVE",), er=R.LOW_POSITIVE),
    receptors(
        "ER 10.5%",
        record(er=pct("10.5")),
        ("ER-POSITIVE",),
        er=R.POSITIVE,
        no_flags=(F.ER_LOW_POSITIVE,),
    ),
    receptors("ER 1-10", record(er=pct("1-10")), ("ER-LOW-POSITIVE",), er=R.LOW_POSITIVE),
    receptors("ER <1", record(er=pct("<1")), ("ER-NEGATIVE",), er=R.NEGATIVE),
    receptors(
        "ER 5-15 undecidable",
        record(er=pct("5-15")),
        ("ER-UNDETERMINED",),
        er=None,
        flags=(F.UNDECIDABLE_VALUE, F.RECEPTOR_UNDETERMINED),
    ),
    receptors(
        "ER stated negative",
        record(er=said(Interpretation.NEGATIVE)),
        ("ER-NEGATIVE",),
        er=R.NEGATIVE,
    ),
    receptors(
        "ER stated low positive",
        record(er=said(Interpretation.LOW_POSITIVE)),
        ("ER-LOW-POSITIVE",),
        er=R.LOW_POSITIVE,
        flags=(F.ER_LOW_POSITIVE,),
    ),
    receptors(
        "ER stated positive without %: positive, low positive not excluded",
        record(er=said(Interpretation.POSITIVE)),
        ("ER-POSITIVE-NO-PERCENT", "HR-POSITIVE"),
        er=R.POSITIVE,
        hr=HrStatus.POSITIVE,
        flags=(F.ER_PERCENT_MISSING,),
        no_flags=(F.RECEPTOR_UNDETERMINED, F.ER_LOW_POSITIVE),
    ),
    receptors(
        "ER stated low positive without %: low positive, no percent flag",
        record(er=said(Interpretation.LOW_POSITIVE)),
        ("ER-LOW-POSITIVE", "HR-LOW-POSITIVE"),
        er=R.LOW_POSITIVE,
        hr=HrStatus.LOW_POSITIVE,
        no_flags=(F.ER_PERCENT_MISSING,),
    ),
    receptors(
        "ER stated positive (mCODE), PgR stated negative: HR-positive, flagged",
        record(er=said(Interpretation.POSITIVE), pgr=said(Interpretation.NEGATIVE)),
        ("ER-POSITIVE-NO-PERCENT", "PGR-NEGATIVE", "HR-POSITIVE"),
        er=R.POSITIVE,
        pgr=R.NEGATIVE,
        hr=HrStatus.POSITIVE,
        flags=(F.ER_PERCENT_MISSING,),
    ),
    receptors(
        "ER 'positive' beside 5%: compatible, low positive",
        record(er=pct("5", Interpretation.POSITIVE)),
        ("ER-LOW-POSITIVE",),
        er=R.LOW_POSITIVE,
        no_flags=(F.DISCORDANCE,),
    ),
    receptors(
        "ER 'negative' beside 50%: contradiction",
        record(er=pct("50", Interpretation.NEGATIVE)),
        ("ER-UNDETERMINED",),
        er=None,
        flags=(F.DISCORDANCE, F.RECEPTOR_UNDETERMINED),
    ),
    receptors(
        "ER could not be determined",
        record(er=ReceptorResult(indeterminate_reason="no tumour")),
        ("ER-UNDETERMINED",),
        er=None,
        flags=(F.RECEPTOR_UNDETERMINED,),
    ),
    receptors("PgR 0.9%", record(pgr=pct("0.9")), ("PGR-NEGATIVE",), pgr=R.NEGATIVE),
    receptors("PgR 1%", record(pgr=pct("1")), ("PGR-POSITIVE",), pgr=R.POSITIVE),
    receptors(
        "PgR stated positive",
        record(pgr=said(Interpretation.POSITIVE)),
        ("PGR-POSITIVE",),
        pgr=R.POSITIVE,
    ),
    receptors(
        "PgR stated negative",
        record(pgr=said(Interpretation.NEGATIVE)),
        ("PGR-NEGATIVE",),
        pgr=R.NEGATIVE,
    ),
    receptors(
        "PgR 0-5 undecidable",
        record(pgr=pct("0-5")),
        ("PGR-UNDETERMINED",),
        pgr=None,
        flags=(F.UNDECIDABLE_VALUE, F.RECEPTOR_UNDETERMINED),
    ),
    receptors(
        "ER 95, PgR 0: HR-positive",
        record(er=pct("95"), pgr=pct("0")),
        ("HR-POSITIVE",),
        hr=HrStatus.POSITIVE,
    ),
    receptors(
        "ER 0, PgR 1: HR-positive",
        record(er=pct("0"), pgr=pct("1")),
        ("HR-POSITIVE",),
        hr=HrStatus.POSITIVE,
    ),
    receptors(
        "PgR 20 alone: HR-positive", record(pgr=pct("20")), ("HR-POSITIVE",), hr=HrStatus.POSITIVE
    ),
    receptors(
        "ER 5, PgR 0.9: HR-low-positive",
        record(er=pct("5"), pgr=pct("0.9")),
        ("HR-LOW-POSITIVE",),
        hr=HrStatus.LOW_POSITIVE,
    ),
    receptors(
        "ER 5, PgR missing: HR-low-positive",
        record(er=pct("5")),
        ("HR-LOW-POSITIVE",),
        hr=HrStatus.LOW_POSITIVE,
    ),
    receptors(
        "ER 0.9, PgR 0.9: HR-negative",
        record(er=pct("0.9"), pgr=pct("0.9")),
        ("HR-NEGATIVE",),
        hr=HrStatus.NEGATIVE,
    ),
    receptors(
        "ER negative, PgR missing: open",
        record(er=pct("0")),
        ("HR-UNDETERMINED",),
        hr=None,
        flags=(F.RECEPTOR_UNDETERMINED,),
    ),
    receptors(
        "ER missing, PgR negative: open",
        record(pgr=pct("0")),
        ("HR-UNDETERMINED",),
        hr=None,
        flags=(F.RECEPTOR_UNDETERMINED,),
    ),
    receptors(
        "ER undetermined, PgR negative: open",
        record(er=pct("5-15"), pgr=pct("0")),
        ("HR-UNDETERMINED",),
        hr=None,
        flags=(F.RECEPTOR_UNDETERMINED,),
    ),
    receptors(
        "ER undetermined, PgR positive: HR-positive",
        record(er=pct("5-15"), pgr=pct("30")),
        ("HR-POSITIVE",),
        hr=HrStatus.POSITIVE,
    ),
    receptors(
        "neither reported: no HR status, no flag",
        record(ihc=ihc("3+")),
        (),
        er=None,
        pgr=None,
        hr=None,
        no_flags=(F.RECEPTOR_UNDETERMINED,),
    ),
]

C_NOT_REPORTED, C_NOT_UNDERSTOOD = Category.HER2_NOT_REPORTED, Category.HER2_NOT_UNDERSTOOD

LAB_STATED_ONLY = [
    her2(
        "IHC 'Positive' without a score: positive, stated only",
        record(ihc=ihc(None, stated=Interpretation.POSITIVE)),
        POS,
        C_POS,
        ("HER2-IHC-STATED-NO-SCORE", "HER2-STATED-ONLY", "HER2-CAT-POSITIVE"),
        flags=(F.SCORE_MISSING, F.LAB_STATED_ONLY),
    ),
    her2(
        "IHC 'Equivocal' without a score: equivocal, reflex ISH pending",
        record(ihc=ihc(None, stated=Interpretation.EQUIVOCAL)),
        EQV,
        C_EQV,
        ("HER2-IHC-STATED-NO-SCORE", "HER2-STATED-ONLY"),
        flags=(F.LAB_STATED_ONLY, F.PENDING_WORKUP),
    ),
    her2(
        "IHC 'Negative' without a score: HER2-negative, finer category not assignable",
        record(ihc=ihc(None, stated=Interpretation.NEGATIVE)),
        NEG,
        C_NEG,
        ("HER2-IHC-STATED-NO-SCORE", "HER2-STATED-ONLY", "HER2-CAT-NEGATIVE-NO-SUBTYPE"),
        flags=(F.SCORE_MISSING, F.LAB_STATED_ONLY),
    ),
    her2(
        "IHC 'Positive' without a score, group 2: read as IHC 3+, not stated only",
        record(ihc=ihc(None, stated=Interpretation.POSITIVE), ish=dual("2.5", "3.0")),
        POS,
        C_POS,
        ("HER2-ISH-G2", "HER2-ISH-G2-IHC3"),
        group=2,
        no_flags=(F.LAB_STATED_ONLY,),
    ),
    her2(
        "IHC 'Equivocal' without a score, group 4, no recount: pending the recount",
        record(ihc=ihc(None, stated=Interpretation.EQUIVOCAL), ish=dual("1.5", "5.0")),
        EQV,
        C_EQV,
        ("HER2-ISH-G4-IHC2-PENDING",),
        group=4,
    ),
    her2(
        "ISH 'Positive' without a count and no IHC: positive, stated only",
        record(ish=dual(None, None, stated=Interpretation.POSITIVE)),
        POS,
        C_POS,
        ("HER2-ISH-STATED-ONLY", "HER2-STATED-ONLY"),
        flags=(F.LAB_STATED_ONLY,),
        no_flags=(F.INCOMPLETE_ISH,),
    ),
    her2(
        "ISH 'Negative' without a count and no IHC: HER2-negative, stated only",
        record(ish=dual(None, None, stated=Interpretation.NEGATIVE)),
        NEG,
        C_NEG,
        ("HER2-ISH-STATED-ONLY", "HER2-CAT-NEGATIVE-NO-SUBTYPE"),
        flags=(F.LAB_STATED_ONLY,),
    ),
    her2(
        "ISH 'Equivocal' without a count and no IHC: equivocal, work-up pending",
        record(ish=dual(None, None, stated=Interpretation.EQUIVOCAL)),
        EQV,
        C_EQV,
        ("HER2-ISH-STATED-ONLY",),
        flags=(F.LAB_STATED_ONLY, F.PENDING_WORKUP),
    ),
    her2(
        "ISH 'Positive' without a count beside IHC 1+: the incomplete-ISH rules decide",
        record(ihc=ihc("1+"), ish=dual(None, None, stated=Interpretation.POSITIVE)),
        EQV,
        C_EQV,
        ("HER2-ISH-INCOMPLETE-IHC01-OPEN",),
        no_flags=(F.LAB_STATED_ONLY,),
    ),
    her2(
        "overall 'Negative' (48676-1) alone: HER2-negative, stated only (mCODE example)",
        record(lab=Interpretation.NEGATIVE),
        NEG,
        C_NEG,
        ("HER2-LAB-STATED-ONLY", "HER2-STATED-ONLY", "HER2-CAT-NEGATIVE-NO-SUBTYPE"),
        flags=(F.LAB_STATED_ONLY,),
        no_flags=(F.LAB_INTERPRETATION_DIFFERS,),
    ),
    her2(
        "overall 'Positive' alone: HER2-positive",
        record(lab=Interpretation.POSITIVE),
        POS,
        C_POS,
        ("HER2-LAB-STATED-ONLY",),
        flags=(F.LAB_STATED_ONLY,),
    ),
    her2(
        "overall 'Equivocal' alone: HER2-equivocal, pending",
        record(lab=Interpretation.EQUIVOCAL),
        EQV,
        C_EQV,
        ("HER2-LAB-STATED-ONLY",),
        flags=(F.LAB_STATED_ONLY, F.PENDING_WORKUP),
    ),
    her2(
        "overall 'HER2-low' alone: negative, HER2-low not assigned without a score",
        record(lab=Interpretation.HER2_LOW),
        NEG,
        C_NEG,
        ("HER2-LAB-STATED-ONLY",),
        flags=(F.LAB_STATED_ONLY, F.LAB_INTERPRETATION_DIFFERS),
    ),
    her2(
        "overall 'Negative' beside an IHC that could not be scored: indeterminate",
        record(ihc=ihc(None, failed="failed controls"), lab=Interpretation.NEGATIVE),
        IND,
        C_IND,
        ("HER2-INDETERMINATE-LAB",),
        flags=(F.LAB_INTERPRETATION_DIFFERS,),
        no_flags=(F.LAB_STATED_ONLY,),
    ),
    her2(
        "overall 'Negative' alone, gastroesophageal: HER2-negative",
        record(Tissue.GASTROESOPHAGEAL, lab=Interpretation.NEGATIVE),
        NEG,
        C_NEG,
        ("HER2-LAB-STATED-ONLY", "GEA-CAT-NEGATIVE"),
        flags=(F.LAB_STATED_ONLY,),
    ),
    her2(
        "overall 'Negative' alone, tissue unknown: both rule sets agree",
        record(Tissue.UNKNOWN, lab=Interpretation.NEGATIVE),
        NEG,
        C_NEG,
        ("HER2-LAB-STATED-ONLY", "TISSUE-UNKNOWN-AGREE"),
        flags=(F.LAB_STATED_ONLY, F.TISSUE_UNKNOWN),
    ),
]

NO_HER2_RESULT = [
    her2("no HER2 test at all", record(), None, C_NOT_REPORTED, ("HER2-NOT-REPORTED",)),
    Case(
        "ER/PgR-only order: HER2 not reported, HR still classified",
        record(er=pct("95"), pgr=pct("0")),
        ("HER2-NOT-REPORTED", "ER-POSITIVE", "HR-POSITIVE"),
        {"official_result": None, "category": C_NOT_REPORTED, "hr_status": HrStatus.POSITIVE},
    ),
    Case(
        "HER2 IHC value not understood beside ER: HER2 not understood",
        record(er=pct("95"), unread=((Analyte.HER2_IHC, "OBX[2]"),)),
        ("HER2-NOT-UNDERSTOOD", "HR-POSITIVE"),
        {"official_result": None, "category": C_NOT_UNDERSTOOD, "hr_status": HrStatus.POSITIVE},
    ),
    her2(
        "an unread ratio beside IHC 0: not understood (the ratio may make it positive)",
        record(ihc=ihc("0"), unread=((Analyte.HER2_CEP17_RATIO, "OBX[4]"),)),
        None,
        C_NOT_UNDERSTOOD,
        ("HER2-NOT-UNDERSTOOD",),
    ),
    her2(
        "an unread ER value does not make HER2 not understood",
        record(ihc=ihc("3+"), unread=((Analyte.ER_PERCENT, "OBX[5]"),)),
        POS,
        C_POS,
        ("HER2-IHC-3",),
    ),
]

THERAPY = [
    Case(
        "HER2-low, HR-positive: DESTINY-Breast04 and -06",
        record(ihc=ihc("1+"), er=pct("95")),
        ("THERAPY-DB04", "THERAPY-DB06"),
    ),
    Case(
        "HER2-low, HR-negative: DESTINY-Breast04 only",
        record(ihc=ihc("1+"), er=pct("0"), pgr=pct("0")),
        ("THERAPY-DB04",),
    ),
    Case(
        "HER2-ultralow, HR-positive: DESTINY-Breast06",
        record(ihc=ihc("0", subtype=Ihc0Subtype.ULTRALOW), er=pct("95")),
        ("THERAPY-DB06",),
    ),
    Case(
        "HER2-ultralow, HR-low-positive: DESTINY-Breast06",
        record(ihc=ihc("0", subtype=Ihc0Subtype.ULTRALOW), er=pct("5"), pgr=pct("0")),
        ("THERAPY-DB06",),
    ),
    Case(
        "HER2-ultralow, HR-negative: no therapy",
        record(ihc=ihc("0", subtype=Ihc0Subtype.ULTRALOW), er=pct("0"), pgr=pct("0")),
        ("THERAPY-NONE-ULTRALOW-HR-NEGATIVE",),
    ),
    Case(
        "HER2-ultralow, no ER/PgR: no therapy, HR decides",
        record(ihc=ihc("0", subtype=Ihc0Subtype.ULTRALOW)),
        ("THERAPY-NONE-ULTRALOW-HR-UNKNOWN",),
    ),
]

CASES = (
    [("IHC", c) for c in IHC_ONLY]
    + [("ISH group", c) for c in GROUP_MATRIX]
    + [("ISH boundary", c) for c in ISH_BOUNDARIES]
    + [("ISH incomplete", c) for c in INCOMPLETE]
    + [("ISH incomplete, IHC 0/1+", c) for c in INCOMPLETE_IHC01]
    + [("several ISH counts", c) for c in SEVERAL_COUNTS]
    + [("HER2-low without score", c) for c in HER2_LOW_UNSCORED]
    + [("IHC contradictions", c) for c in IHC_CONTRADICTIONS]
    + [("lab category", c) for c in LAB_CATEGORY]
    + [("single probe", c) for c in SINGLE_PROBE]
    + [("heterogeneity", c) for c in HETEROGENEITY]
    + [("gastroesophageal", c) for c in GASTRIC]
    + [("tissue unknown", c) for c in UNKNOWN_TISSUE]
    + [("conflicting results", c) for c in CONFLICTING]
    + [("lab call", c) for c in LAB_CALLS]
    + [("ER/PgR", c) for c in ER_PGR]
    + [("lab-stated only", c) for c in LAB_STATED_ONLY]
    + [("no HER2 result", c) for c in NO_HER2_RESULT]
    + [("therapy", c) for c in THERAPY]
)


_THERAPY_IDS = {rule.id for rule in RULES if rule.id.startswith("THERAPY-")}


@pytest.mark.parametrize(
    ("rec", "expected"),
    [
        (record(ihc=ihc("0", subtype=Ihc0Subtype.NULL), er=pct("95")), set()),
        (record(ihc=ihc("3+"), er=pct("95")), set()),
        (record(Tissue.GASTROESOPHAGEAL, ihc=ihc("1+"), er=pct("95")), set()),
        (
            record(ihc=ihc("0", subtype=Ihc0Subtype.ULTRALOW), er=pct("0"), pgr=pct("0")),
            {"THERAPY-NONE-ULTRALOW-HR-NEGATIVE"},
        ),
    ],
)
def test_therapy_named_only_as_labels_do(rec: AssayRecord, expected: set[str]) -> None:
    """Section 10: no therapy for null, positive or gastric; ultralow HR-negative names none."""
    fired = {rule.rule_id for rule in classify(rec).rules}
    assert fired & _THERAPY_IDS == expected


def test_not_understood_names_the_position() -> None:
    """The reason gives where the unread value is, so the mapping can be fixed."""
    result = classify(record(unread=((Analyte.HER2_IHC, "OBX[3]"),), er=pct("95")))
    assert "OBX[3]" in _only(result, "HER2-NOT-UNDERSTOOD")


def test_stated_negative_says_finer_category_not_assignable() -> None:
    """Section 4.5: the flag says HER2-low / ultralow / null cannot be assigned."""
    result = classify(record(lab=Interpretation.NEGATIVE))
    [reason] = [f.reason for f in result.flags if f.code is F.LAB_STATED_ONLY]
    assert "HER2-low, HER2-ultralow and HER2-null cannot be assigned" in reason


def test_group_comments_reach_the_classification() -> None:
    """Groups 2-4 negatives carry the ASCO/CAP comment for the conclusion; group 5 none."""
    for ratio, copies, group in (("2.5", "3.0", 2), ("1.5", "7.0", 3), ("1.5", "5.0", 4)):
        result = classify(record(ihc=ihc("1+"), ish=dual(ratio, copies)))
        assert [f"group {group}" in c for c in result.comments] == [True]
    assert classify(record(ihc=ihc("1+"), ish=dual("1.5", "3.0"))).comments == ()


def _case_id(section: str, case: Case) -> str:
    head = case.fires[0] if case.fires else "no-rule"
    return f"{head} [{section}: {case.name}]"


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=_case_id(section, case)) for section, case in CASES]
)
def test_case(case: Case) -> None:
    """The record gives the hand-written result, fires the named rules and raises the flags."""
    result = classify(case.record)
    for name, expected in case.expect.items():
        assert getattr(result, name) == expected, name
    fired = {rule.rule_id for rule in result.rules}
    assert set(case.fires) <= fired
    raised = {flag.code for flag in result.flags}
    assert set(case.flags) <= raised
    assert not set(case.no_flags) & raised


def test_every_rule_fires() -> None:
    """Across the case table every rule in RULES fires, and nothing fires that RULES lacks."""
    fired = {rule.rule_id for _, case in CASES for rule in classify(case.record).rules}
    assert fired == {rule.id for rule in RULES}


def _only(result: Classification, rule_id: str) -> str:
    [reason] = [rule.reason for rule in result.rules if rule.rule_id == rule_id]
    return reason


def test_group_reason_names_values_as_reported() -> None:
    """The group rule's reason quotes the reported values and the thresholds they met."""
    result = classify(record(ihc=ihc("2+"), ish=dual("2.10", "3.5")))
    assert _only(result, "HER2-ISH-G2") == "ratio 2.10 ≥ 2.0 and HER2 copies 3.5 < 4.0: group 2"


def test_pending_reason_says_what_is_pending() -> None:
    """Group 2-4 equivocals say whether a recount or a concomitant IHC is awaited."""
    recount = classify(record(ihc=ihc("2+"), ish=dual("1.5", "5.0")))
    no_ihc = classify(record(ish=dual("1.5", "5.0")))
    [pending_recount] = [f.reason for f in recount.flags if f.code is F.PENDING_WORKUP]
    [pending_ihc] = [f.reason for f in no_ihc.flags if f.code is F.PENDING_WORKUP]
    assert "recount of ≥20 cells" in pending_recount
    assert "concomitant IHC on the same tissue" in pending_ihc


def test_negative_with_comment_in_groups_2_to_4() -> None:
    """A group 2-4 negative carries the guideline's comment; a group 5 negative does not."""
    group4 = classify(record(ihc=ihc("1+"), ish=dual("1.5", "5.0")))
    group5 = classify(record(ihc=ihc("1+"), ish=dual("1.5", "3.0")))
    assert "comment:" in _only(group4, "HER2-ISH-G4-IHC01")
    assert "comment:" not in _only(group5, "HER2-ISH-G5-NEGATIVE")


def test_derived_ratio_reason_never_rounds_up() -> None:
    """A derived 1.99999… reads as 1.9999…, never as 2.0, and still falls below 2.0."""
    result = classify(record(ish=dual(None, "5.99999", cep17="3")))
    assert result.ish_group == 4
    assert "= 1.9999…" in _only(result, "HER2-ISH-RATIO-DERIVED")


def test_er_low_positive_flag_carries_guideline_comment() -> None:
    """ER 1-10% raises er-low-positive citing the limited endocrine benefit."""
    result = classify(record(er=pct("7")))
    [reason] = [f.reason for f in result.flags if f.code is F.ER_LOW_POSITIVE]
    assert "endocrine therapy" in reason


@pytest.mark.parametrize(
    ("tissue", "er", "guideline"),
    [
        pytest.param(Tissue.BREAST, None, "ASCO/CAP HER2 2018 (affirmed 2023)", id="breast"),
        pytest.param(
            Tissue.BREAST,
            pct("50"),
            "ASCO/CAP HER2 2018 (affirmed 2023); ASCO/CAP ER/PgR 2020",
            id="breast with ER",
        ),
        pytest.param(GEA, None, "CAP/ASCP/ASCO GEA 2016", id="gastroesophageal"),
        pytest.param(
            UNK, None, "ASCO/CAP HER2 2018 (affirmed 2023); CAP/ASCP/ASCO GEA 2016", id="unknown"
        ),
    ],
)
def test_guideline_names_versions_used(
    tissue: Tissue, er: ReceptorResult | None, guideline: str
) -> None:
    """The guideline string names the rule sets that produced the result."""
    assert classify(record(tissue, ihc=ihc("1+"), er=er)).guideline == guideline


def test_ratio_out_of_decimal_range_is_not_derived() -> None:
    """A quotient that would underflow to 0 is not used as a ratio: ISH is incomplete."""
    tiny, huge = Interval.point(Decimal("1E-999999")), Interval.point(Decimal("1E+999999"))
    result = classify(record(ish=IshResult(her2_copies=tiny, cep17_copies=huge)))
    assert result.official_result is EQV  # incomplete, pending a complete count: not failed
    assert result.ish_group is None
    assert F.INCOMPLETE_ISH in {flag.code for flag in result.flags}


def test_same_input_same_output() -> None:
    """Classification is deterministic down to every field of every nested record."""
    rec = record(UNK, ihc=ihc("2+"), ish=dual(None, "7.25", cep17="3.1", amplified="20"))
    assert repr(classify(rec)) == repr(classify(rec))


def test_counts_disagreement_names_the_groups() -> None:
    """The discordance flag lists each count's group in reporting order, asking for adjudication."""
    result = classify(record(ihc=ihc("1+"), ish=dual("1.8", "3.5", earlier=(("1.8", "4.5"),))))
    [reason] = [f.reason for f in result.flags if f.code is F.DISCORDANCE]
    assert reason == "ISH counts fall in different groups: 4, 5; adjudication needed"


def test_incomplete_ihc01_pending_a_complete_count() -> None:
    """An open incomplete ISH with IHC 0/1+ waits for a complete count (ratio and HER2 copies)."""
    result = classify(record(ihc=ihc("1+"), ish=dual("4.5", None)))
    [pending] = [f.reason for f in result.flags if f.code is F.PENDING_WORKUP]
    assert "a complete ISH count (ratio and HER2 copies)" in pending


def test_her2_low_unscored_pending_the_ihc_score() -> None:
    """Groups 2-4 with an unscored HER2-low wait for the IHC score."""
    result = classify(record(ihc=ihc(None, stated=_LOW), ish=dual("1.5", "5.0")))
    [pending] = [f.reason for f in result.flags if f.code is F.PENDING_WORKUP]
    assert pending.endswith("pending IHC score")


def test_subtype_contradiction_names_both() -> None:
    """The sub-type discordance flag names the stated sub-type and the stained percentage."""
    result = classify(record(ihc=ihc("0", subtype=_NULL, stained="5")))
    [reason] = [f.reason for f in result.flags if f.code is F.DISCORDANCE]
    assert "stated null" in reason
    assert "stained cells 5" in reason
