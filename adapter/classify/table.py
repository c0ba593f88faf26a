"""The decision table: every rule the classifier can fire, its thresholds, and its citation.

Logic modules (``her2_breast``, ``her2_gastric``, ``receptors``) only walk these tables; every
number and every clinical outcome lives here, so ``docs/rules.md`` is rendered from this module and
a reviewer reads the same table the code runs.

A reported value is placed in a band only when the whole reported interval lies inside it
(``Interval.within``): ``1-10`` is ER low positive, ``5-15`` is undecidable and never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from adapter.model import (
    Category,
    FlagCode,
    IhcScore,
    Interpretation,
    Interval,
    OfficialResult,
    ReceptorCall,
)

# --------------------------------------------------------------------------------------------
# Guidelines
# --------------------------------------------------------------------------------------------

ASCO_CAP_2018 = "ASCO/CAP 2018 HER2 (Wolff et al., J Clin Oncol 2018;36:2105-2122)"
ASCO_CAP_2023 = "ASCO/CAP 2023 HER2 update (Wolff et al., J Clin Oncol 2023;41:3867-3872)"
ASCO_CAP_2020_ER_PGR = "ASCO/CAP 2020 ER/PgR (Allison et al., J Clin Oncol 2020;38:1346-1366)"
CAP_GEA_2016 = "CAP/ASCP/ASCO 2016 GEA (Bartley et al., Arch Pathol Lab Med 2016;140:1345-1363)"
DESTINY_BREAST = (
    "DESTINY-Breast04 (Modi et al., N Engl J Med 2022;387:9-20) and "
    "DESTINY-Breast06 (Bardia et al., N Engl J Med 2024)"
)
CAP_2009_HETEROGENEITY = (
    "CAP 2009 heterogeneity panel (Vance et al., Arch Pathol Lab Med 2009;133:611-612)"
)

# Short names for Classification.guideline: the versions a result was produced under.
GUIDELINE_BREAST = "ASCO/CAP HER2 2018 (affirmed 2023)"
GUIDELINE_GASTRIC = "CAP/ASCP/ASCO GEA 2016"
GUIDELINE_RECEPTORS = "ASCO/CAP ER/PgR 2020"

RULES_DOC = "docs/rules.md"
"""Where a rule's section is explained: this repository's own rendering of this table."""

ER_LOW_POSITIVE_COMMENT = (
    "ER low positive (1-10% of cells): ASCO/CAP 2020 advises that cancers with 1-10% ER-positive "
    "cells are a heterogeneous group that may gain limited benefit from endocrine therapy, with "
    "biology often closer to ER-negative cancers."
)

# --------------------------------------------------------------------------------------------
# Bands (thresholds). Interval.text is the label used in reasons and docs.
# --------------------------------------------------------------------------------------------


def _at_least(low: str, text: str) -> Interval:
    return Interval(low=Decimal(low), text=text)


def _above(low: str, text: str) -> Interval:
    return Interval(low=Decimal(low), low_inclusive=False, text=text)


def _below(high: str, text: str) -> Interval:
    return Interval(high=Decimal(high), high_inclusive=False, text=text)


def _between(low: str, high: str, text: str, *, low_in: bool, high_in: bool) -> Interval:
    return Interval(
        low=Decimal(low),
        low_inclusive=low_in,
        high=Decimal(high),
        high_inclusive=high_in,
        text=text,
    )


RATIO_AMPLIFIED = _at_least("2.0", "≥ 2.0")
RATIO_NOT_AMPLIFIED = _below("2.0", "< 2.0")
COPIES_LT4 = _below("4.0", "< 4.0")
COPIES_GE4 = _at_least("4.0", "≥ 4.0")
COPIES_4TO6 = _between("4.0", "6.0", "≥ 4.0 and < 6.0", low_in=True, high_in=False)
COPIES_GE6 = _at_least("6.0", "≥ 6.0")
COPIES_LT6 = _below("6.0", "< 6.0")

IHC_STAINED_NULL = _between("0", "0", "0%", low_in=True, high_in=True)
IHC_STAINED_ULTRALOW = _between("0", "10", "> 0% and ≤ 10%", low_in=False, high_in=True)
IHC_STAINED_ABOVE_IHC0 = _above("10", "> 10%")
# IHC 1+, 2+ and 3+ are each defined by staining in > 10% of cells: ≤ 10% contradicts the score.
IHC_STAINED_AT_MOST_10 = Interval(high=Decimal("10"), text="≤ 10%")

ER_NEGATIVE = _below("1", "< 1%")
ER_LOW_POSITIVE = _between("1", "10", "≥ 1% and ≤ 10%", low_in=True, high_in=True)
ER_POSITIVE = _above("10", "> 10%")
PGR_NEGATIVE = _below("1", "< 1%")
PGR_POSITIVE = _at_least("1", "≥ 1%")

HETEROGENEITY = _between("5", "50", "> 5% and < 50%", low_in=False, high_in=False)
HETEROGENEITY_LOW = Interval(high=Decimal("5"), text="≤ 5%")
HETEROGENEITY_HIGH = _at_least("50", "≥ 50%")

BANDS: dict[str, Interval] = {
    "RATIO_AMPLIFIED": RATIO_AMPLIFIED,
    "RATIO_NOT_AMPLIFIED": RATIO_NOT_AMPLIFIED,
    "COPIES_LT4": COPIES_LT4,
    "COPIES_GE4": COPIES_GE4,
    "COPIES_4TO6": COPIES_4TO6,
    "COPIES_GE6": COPIES_GE6,
    "COPIES_LT6": COPIES_LT6,
    "IHC_STAINED_NULL": IHC_STAINED_NULL,
    "IHC_STAINED_ULTRALOW": IHC_STAINED_ULTRALOW,
    "IHC_STAINED_ABOVE_IHC0": IHC_STAINED_ABOVE_IHC0,
    "IHC_STAINED_AT_MOST_10": IHC_STAINED_AT_MOST_10,
    "ER_NEGATIVE": ER_NEGATIVE,
    "ER_LOW_POSITIVE": ER_LOW_POSITIVE,
    "ER_POSITIVE": ER_POSITIVE,
    "PGR_NEGATIVE": PGR_NEGATIVE,
    "PGR_POSITIVE": PGR_POSITIVE,
    "HETEROGENEITY_LOW": HETEROGENEITY_LOW,
    "HETEROGENEITY": HETEROGENEITY,
    "HETEROGENEITY_HIGH": HETEROGENEITY_HIGH,
}

# --------------------------------------------------------------------------------------------
# IHC
# --------------------------------------------------------------------------------------------

IHC_RESULT: dict[IhcScore, OfficialResult] = {
    IhcScore.THREE: OfficialResult.POSITIVE,
    IhcScore.TWO: OfficialResult.EQUIVOCAL,
    IhcScore.ONE: OfficialResult.NEGATIVE,
    IhcScore.ZERO: OfficialResult.NEGATIVE,
}

BREAST_IHC_RULE: dict[IhcScore, str] = {
    IhcScore.THREE: "HER2-IHC-3",
    IhcScore.TWO: "HER2-IHC-2",
    IhcScore.ONE: "HER2-IHC-1",
    IhcScore.ZERO: "HER2-IHC-0",
}

GASTRIC_IHC_RULE: dict[IhcScore, str] = {
    IhcScore.THREE: "GEA-IHC-3",
    IhcScore.TWO: "GEA-IHC-2",
    IhcScore.ONE: "GEA-IHC-01",
    IhcScore.ZERO: "GEA-IHC-01",
}

# The words a lab may print beside a score without contradicting it ("Negative (1+)").
COMPATIBLE_STATED: dict[IhcScore, frozenset[Interpretation]] = {
    IhcScore.THREE: frozenset({Interpretation.POSITIVE}),
    IhcScore.TWO: frozenset({Interpretation.EQUIVOCAL, Interpretation.HER2_LOW}),
    IhcScore.ONE: frozenset({Interpretation.NEGATIVE, Interpretation.HER2_LOW}),
    IhcScore.ZERO: frozenset(
        {Interpretation.NEGATIVE, Interpretation.HER2_ULTRALOW, Interpretation.HER2_NULL}
    ),
}

# A word alone that still gives an IHC result (sections 4.5, 8): the lab's own call is a result;
# "Negative" is negative with the score unknown (0 or 1+ decides HER2-low). ASCO/CAP define an
# IHC "positive" as 3+ and "equivocal" as 2+, so those words alone read as those buckets.
STATED_WITHOUT_SCORE: dict[Interpretation, OfficialResult] = {
    Interpretation.POSITIVE: OfficialResult.POSITIVE,
    Interpretation.EQUIVOCAL: OfficialResult.EQUIVOCAL,
    Interpretation.NEGATIVE: OfficialResult.NEGATIVE,
    Interpretation.HER2_LOW: OfficialResult.NEGATIVE,
    Interpretation.HER2_ULTRALOW: OfficialResult.NEGATIVE,
    Interpretation.HER2_NULL: OfficialResult.NEGATIVE,
}

# How a lab's own HER2 wording maps to an official result (for lab-interpretation-differs).
STATED_OFFICIAL: dict[Interpretation, OfficialResult] = {
    Interpretation.POSITIVE: OfficialResult.POSITIVE,
    Interpretation.NEGATIVE: OfficialResult.NEGATIVE,
    Interpretation.EQUIVOCAL: OfficialResult.EQUIVOCAL,
    Interpretation.INDETERMINATE: OfficialResult.INDETERMINATE,
    Interpretation.HER2_LOW: OfficialResult.NEGATIVE,
    Interpretation.HER2_ULTRALOW: OfficialResult.NEGATIVE,
    Interpretation.HER2_NULL: OfficialResult.NEGATIVE,
}

# The lab's own HER2 call that decides when nothing else does (section 4.5): an ISH result word
# without a count, or the overall interpretation (48676-1) when the case holds no IHC or ISH.
STATED_CALL: dict[Interpretation, OfficialResult] = {
    Interpretation.POSITIVE: OfficialResult.POSITIVE,
    Interpretation.NEGATIVE: OfficialResult.NEGATIVE,
    Interpretation.EQUIVOCAL: OfficialResult.EQUIVOCAL,
    Interpretation.HER2_LOW: OfficialResult.NEGATIVE,
    Interpretation.HER2_ULTRALOW: OfficialResult.NEGATIVE,
    Interpretation.HER2_NULL: OfficialResult.NEGATIVE,
}

LAB_STATED_NOT_ASSIGNABLE = (
    "HER2-low, HER2-ultralow and HER2-null cannot be assigned without the IHC score"
)

# The category a lab's own overall call names, when it names one (for lab-interpretation-differs).
STATED_CATEGORY: dict[Interpretation, Category] = {
    Interpretation.HER2_LOW: Category.HER2_LOW,
    Interpretation.HER2_ULTRALOW: Category.HER2_ULTRALOW,
    Interpretation.HER2_NULL: Category.HER2_NULL,
}

# --------------------------------------------------------------------------------------------
# ISH: groups (section 2), the group x IHC work-up, single probe (section 3)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRow:
    group: int
    ratio: Interval
    copies: Interval
    rule_id: str


# Group 1 takes copies ≥ 4.0 as one band so that "5-7" with an amplified ratio is still group 1.
ISH_GROUPS: tuple[GroupRow, ...] = (
    GroupRow(1, RATIO_AMPLIFIED, COPIES_GE4, "HER2-ISH-G1"),
    GroupRow(2, RATIO_AMPLIFIED, COPIES_LT4, "HER2-ISH-G2"),
    GroupRow(3, RATIO_NOT_AMPLIFIED, COPIES_GE6, "HER2-ISH-G3"),
    GroupRow(4, RATIO_NOT_AMPLIFIED, COPIES_4TO6, "HER2-ISH-G4"),
    GroupRow(5, RATIO_NOT_AMPLIFIED, COPIES_LT4, "HER2-ISH-G5"),
)


class IhcBucket(StrEnum):
    """The concomitant IHC as the work-up tables read it."""

    IHC3 = "IHC 3+"
    IHC2_RECOUNT = "IHC 2+, recount done"
    IHC2_PENDING = "IHC 2+, no recount yet"
    IHC01 = "IHC 0 or 1+ (or stated negative)"
    # "HER2-low" covers IHC 1+ and IHC 2+ with ISH negative: it is not the "0 or 1+" column.
    IHC_LOW_UNSCORED = "stated HER2-low, no score (1+ or 2+)"
    NONE = "no usable IHC"


PENDING_RECOUNT = "blinded recount of ≥20 cells by an additional observer"
RECOUNT_MIN_CELLS = Interval(low=Decimal(20), text="≥ 20 cells")
"""A recount counts at least 20 cells (ASCO/CAP 2018, groups 2-4 work-up)."""
PENDING_IHC = "concomitant IHC on the same tissue"
PENDING_REFLEX_ISH = "reflex ISH"
PENDING_DUAL_PROBE = "dual-probe ISH"
PENDING_COMPLETE_ISH = "a complete ISH count (ratio and HER2 copies)"
PENDING_IHC_SCORE = "IHC score"
PENDING_ADJUDICATION = "adjudication of the ISH counts"
PENDING_ISH_ADJUDICATION = "the lab's adjudication of the conflicting ISH results"
PENDING_LAB_REVIEW = "the lab's review of HER2 results that could not be used"
PENDING_TISSUE = "the tissue (breast or gastroesophageal), which decides the rule set"

# The comment ASCO/CAP 2018 asks to report with a negative in groups 2-4 (paraphrased). It goes
# into DiagnosticReport.conclusion, not only into the rule's reason.
GROUP_NEGATIVE_COMMENT: dict[int, str] = {
    2: "Evidence is limited on the efficacy of HER2-targeted therapy when the HER2/CEP17 ratio is "
    "≥ 2.0 with an average HER2 copy number < 4.0 signals per cell; without IHC 3+ the specimen "
    "is considered HER2 negative (ASCO/CAP 2018, ISH group 2).",
    3: "There are insufficient data on the efficacy of HER2-targeted therapy when the ratio is "
    "< 2.0 with ≥ 6.0 HER2 signals per cell without protein overexpression (IHC 3+); the "
    "specimen is considered HER2 negative (ASCO/CAP 2018, ISH group 3).",
    4: "It is uncertain whether patients with ≥ 4.0 and < 6.0 HER2 signals per cell and a "
    "HER2/CEP17 ratio < 2.0 benefit from HER2-targeted therapy without protein overexpression "
    "(IHC 3+); the specimen is considered HER2 negative without additional testing on the same "
    "specimen (ASCO/CAP 2018, ISH group 4).",
}

# Outcome of one work-up cell: official result, rule id, and what is still pending (if anything).
WorkupCell = tuple[OfficialResult, str, str | None]

_POS = OfficialResult.POSITIVE
_NEG = OfficialResult.NEGATIVE
_EQV = OfficialResult.EQUIVOCAL


def _groups_2_to_4(group: int, ihc2_after_recount: OfficialResult) -> dict[IhcBucket, WorkupCell]:
    g = f"HER2-ISH-G{group}"
    return {
        IhcBucket.IHC3: (_POS, f"{g}-IHC3", None),
        IhcBucket.IHC2_RECOUNT: (ihc2_after_recount, f"{g}-IHC2-RECOUNT", None),
        IhcBucket.IHC2_PENDING: (_EQV, f"{g}-IHC2-PENDING", PENDING_RECOUNT),
        IhcBucket.IHC01: (_NEG, f"{g}-IHC01", None),
        IhcBucket.IHC_LOW_UNSCORED: (_EQV, f"{g}-IHC-LOW-UNSCORED", PENDING_IHC_SCORE),
        IhcBucket.NONE: (_EQV, f"{g}-NO-IHC", PENDING_IHC),
    }


def _every_bucket(cell: WorkupCell) -> dict[IhcBucket, WorkupCell]:
    return dict.fromkeys(IhcBucket, cell)


# Section 2 final result: {(group, IHC bucket): (official result, rule id, pending)}.
GROUP_WORKUP: dict[tuple[int, IhcBucket], WorkupCell] = {
    (group, bucket): cell
    for group, row in {
        1: _every_bucket((_POS, "HER2-ISH-G1-POSITIVE", None)),
        2: _groups_2_to_4(2, _NEG),
        3: _groups_2_to_4(3, _POS),
        4: _groups_2_to_4(4, _NEG),
        5: {
            **_every_bucket((_NEG, "HER2-ISH-G5-NEGATIVE", None)),
            IhcBucket.IHC3: (_POS, "HER2-ISH-G5-IHC3", None),
        },
    }.items()
    for bucket, cell in row.items()
}

# Section 3: {(copies band, IHC bucket): cell}. Below 4.0 with IHC 3+ is positive by the same
# "one positive test suffices" reading as group 5 with IHC 3+ (section 4.2, section 5).
_SP_4TO6_IHC2 = (_EQV, "HER2-ISH-SP-4TO6-IHC2", PENDING_DUAL_PROBE)
SINGLE_PROBE_BANDS: tuple[Interval, ...] = (COPIES_LT4, COPIES_4TO6, COPIES_GE6)
SINGLE_PROBE_WORKUP: dict[tuple[Interval, IhcBucket], WorkupCell] = {
    (band, bucket): cell
    for band, row in {
        COPIES_GE6: _every_bucket((_POS, "HER2-ISH-SP-GE6", None)),
        COPIES_LT4: {
            **_every_bucket((_NEG, "HER2-ISH-SP-LT4", None)),
            IhcBucket.IHC3: (_POS, "HER2-ISH-SP-LT4-IHC3", None),
        },
        COPIES_4TO6: {
            IhcBucket.IHC3: (_POS, "HER2-ISH-SP-4TO6-IHC3", None),
            IhcBucket.IHC2_RECOUNT: _SP_4TO6_IHC2,
            IhcBucket.IHC2_PENDING: _SP_4TO6_IHC2,
            IhcBucket.IHC01: (_NEG, "HER2-ISH-SP-4TO6-IHC01", None),
            IhcBucket.IHC_LOW_UNSCORED: (
                _EQV,
                "HER2-ISH-SP-4TO6-IHC-LOW-UNSCORED",
                PENDING_IHC_SCORE,
            ),
            IhcBucket.NONE: (_EQV, "HER2-ISH-SP-4TO6-NO-IHC", PENDING_DUAL_PROBE),
        },
    }.items()
    for bucket, cell in row.items()
}

# Section 4.4: incomplete ISH, IHC decides where it can. IHC 0/1+ decides negative only when the
# partial ISH rules out an ISH-positive count (group 1, single probe ≥ 6.0, gastric ratio ≥ 2.0),
# because that count is positive whatever the IHC (ASCO/CAP 2018; Bartley 2016).
_INCOMPLETE_IHC2 = (_EQV, "HER2-ISH-INCOMPLETE-IHC2", PENDING_COMPLETE_ISH)
INCOMPLETE_ISH_WORKUP: dict[IhcBucket, WorkupCell] = {
    IhcBucket.IHC3: (_POS, "HER2-ISH-INCOMPLETE-IHC-DECIDES", None),
    IhcBucket.IHC01: (_NEG, "HER2-ISH-INCOMPLETE-IHC-DECIDES", None),
    IhcBucket.IHC2_RECOUNT: _INCOMPLETE_IHC2,
    IhcBucket.IHC2_PENDING: _INCOMPLETE_IHC2,
    IhcBucket.IHC_LOW_UNSCORED: _INCOMPLETE_IHC2,
    # An incomplete count is not a failed test (section 4.6): work-up is pending, not failed.
    IhcBucket.NONE: (_EQV, "HER2-ISH-INCOMPLETE-NO-IHC", PENDING_COMPLETE_ISH),
}
# IHC 0/1+ when the partial ISH could still be ISH-positive: {gastric?: cell}.
INCOMPLETE_ISH_IHC01_OPEN: dict[bool, WorkupCell] = {
    False: (_EQV, "HER2-ISH-INCOMPLETE-IHC01-OPEN", PENDING_COMPLETE_ISH),
    True: (_EQV, "GEA-ISH-INCOMPLETE-IHC01-OPEN", PENDING_COMPLETE_ISH),
}

# Several counts in different groups (gastric: on both sides of ratio 2.0): {(gastric?, IHC 3+?):
# cell}. IHC 3+ stays positive: every group, and any gastric ratio, is positive with IHC 3+
# (sections 2, 4.2, 7).
COUNTS_DISAGREE: dict[tuple[bool, bool], WorkupCell] = {
    (False, False): (_EQV, "HER2-ISH-COUNTS-DISAGREE", PENDING_ADJUDICATION),
    (False, True): (_POS, "HER2-ISH-COUNTS-DISAGREE-IHC3", None),
    (True, False): (_EQV, "GEA-ISH-COUNTS-DISAGREE", PENDING_ADJUDICATION),
    (True, True): (_POS, "GEA-ISH-COUNTS-DISAGREE-IHC3", None),
}

# ISH results of one order that disagree ("amplified" and "not amplified"): {IHC 3+?: cell}.
# Not a failed test and not a pick: IHC 3+ is positive whatever the ISH (sections 2, 4.2, 7).
ISH_CONFLICTING: dict[bool, WorkupCell] = {
    False: (_EQV, "HER2-ISH-CONFLICTING", PENDING_ISH_ADJUDICATION),
    True: (_POS, "HER2-ISH-CONFLICTING-IHC3", None),
}

# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    id: str
    section: str
    condition: str
    result: str
    citation: str


def _rule(rule_id: str, section: str, condition: str, result: str, guideline: str) -> Rule:
    return Rule(rule_id, section, condition, result, f"{guideline}; {RULES_DOC} §{section}")


def _workup_rules(group: int, ihc2_after_recount: str) -> tuple[Rule, ...]:
    g = f"HER2-ISH-G{group}"
    where = f"group {group}"
    return (
        _rule(f"{g}-IHC3", "2", f"{where}, IHC 3+", "positive", ASCO_CAP_2018),
        _rule(
            f"{g}-IHC2-RECOUNT",
            "2",
            f"{where}, IHC 2+, blinded recount done (same group)",
            ihc2_after_recount,
            ASCO_CAP_2018,
        ),
        _rule(
            f"{g}-IHC2-PENDING",
            "2",
            f"{where}, IHC 2+, no recount reported",
            f"equivocal; pending-workup flag ({PENDING_RECOUNT})",
            ASCO_CAP_2018,
        ),
        _rule(
            f"{g}-IHC01",
            "2",
            f"{where}, IHC 0 or 1+ (or stated negative)",
            "negative (with comment)",
            ASCO_CAP_2018,
        ),
        _rule(
            f"{g}-IHC-LOW-UNSCORED",
            "2, 8",
            f"{where}, IHC stated HER2-low without a score (1+ or 2+ changes the result)",
            f"equivocal; pending-workup flag ({PENDING_IHC_SCORE})",
            ASCO_CAP_2018,
        ),
        _rule(
            f"{g}-NO-IHC",
            "2",
            f"{where}, no usable IHC",
            f"equivocal; pending-workup flag ({PENDING_IHC})",
            ASCO_CAP_2018,
        ),
    )


_IHC_RULES = (
    _rule("HER2-IHC-3", "1", "breast IHC score 3+", "IHC positive", ASCO_CAP_2018),
    _rule(
        "HER2-IHC-2",
        "1",
        "breast IHC score 2+",
        "IHC equivocal; reflex ISH needed (pending-workup flag when no ISH)",
        ASCO_CAP_2018,
    ),
    _rule("HER2-IHC-1", "1", "breast IHC score 1+", "IHC negative", ASCO_CAP_2018),
    _rule("HER2-IHC-0", "1", "breast IHC score 0", "IHC negative", ASCO_CAP_2018),
    _rule(
        "HER2-IHC-STATED-NO-SCORE",
        "4.5, 8",
        "IHC stated positive, equivocal or negative (or HER2-low/ultralow/null) with no score",
        "that IHC result (positive reads as 3+, equivocal as 2+, the others as 0 or 1+), "
        "score unknown; score-missing flag",
        ASCO_CAP_2023,
    ),
    _rule(
        "HER2-IHC-SCORE-MISSING-UNUSABLE",
        "8",
        "IHC stated with a word that is not a HER2 result (e.g. 'low positive') and no score",
        "IHC not used; score-missing flag",
        ASCO_CAP_2023,
    ),
    _rule(
        "HER2-IHC-SCORE-CONTRADICTS-STAINED",
        "1",
        f"breast IHC score 1+, 2+ or 3+ with stained cells {IHC_STAINED_AT_MOST_10.text} "
        f"(each score is defined by staining in {IHC_STAINED_ABOVE_IHC0.text})",
        "discordance flag; the result still follows the score",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-IHC0-SUBTYPE-CONTRADICTS-STAINED",
        "1, 5",
        "IHC 0 sub-type stated null or ultralow, stained percentage outside that sub-type's band "
        f"(null {IHC_STAINED_NULL.text}, ultralow {IHC_STAINED_ULTRALOW.text}) or straddling it",
        "sub-type unknown (HER2-negative when negative); discordance flag naming both",
        DESTINY_BREAST,
    ),
    _rule(
        "HER2-IHC-TEXT-CONTRADICTS-SCORE",
        "5",
        "IHC text contradicts its score, e.g. 'Negative (3+)'",
        "IHC not used; discordance flag",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-IHC-CONFLICTING",
        "5, 4.6",
        "one order carries HER2 IHC results that disagree (two scores, two result words, two "
        "IHC 0 sub-types, or a sub-type beside a score other than 0)",
        "IHC not used (none of the results is picked; not a failed test); discordance flag "
        "naming their positions",
        ASCO_CAP_2018,
    ),
)

_ISH_RULES = (
    _rule(
        "HER2-ISH-RATIO-DERIVED",
        "2",
        "no ratio reported, HER2 and CEP17 copies per cell both reported",
        "ratio = HER2 copies / CEP17 copies (exact decimal division)",
        ASCO_CAP_2018,
    ),
    *(
        _rule(
            row.rule_id,
            "2",
            f"dual-probe ratio {row.ratio.text} and HER2 copies {row.copies.text}",
            f"ISH group {row.group}",
            ASCO_CAP_2018,
        )
        for row in ISH_GROUPS
    ),
    _rule("HER2-ISH-G1-POSITIVE", "4.2", "group 1, any IHC", "positive", ASCO_CAP_2018),
    *_workup_rules(2, "negative (with comment)"),
    *_workup_rules(3, "positive"),
    *_workup_rules(4, "negative (with comment)"),
    _rule(
        "HER2-ISH-COUNTS-DISAGREE",
        "2, 5",
        "several ISH counts (a count and a recount) fall in different groups (single probe: "
        "copy-number bands; a count that cannot be placed counts as different); IHC not 3+",
        f"equivocal; discordance and pending-workup flags ({PENDING_ADJUDICATION})",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-ISH-COUNTS-DISAGREE-IHC3",
        "2, 4.2, 5",
        "several ISH counts fall in different groups; IHC 3+",
        "positive (IHC 3+ is positive with every group); discordance flag",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-ISH-CONFLICTING",
        "5, 4.6",
        "one order carries ISH results that disagree (e.g. 'amplified' and 'not amplified'); "
        "IHC not 3+",
        "equivocal, not indeterminate (no test failed), the ISH not used; discordance and "
        f"pending-workup flags ({PENDING_ISH_ADJUDICATION})",
        f"{ASCO_CAP_2018}; {CAP_GEA_2016}",
    ),
    _rule(
        "HER2-ISH-CONFLICTING-IHC3",
        "5, 4.2, 7",
        "one order carries ISH results that disagree; IHC 3+",
        "positive (IHC 3+ is positive with every ISH result); discordance flag",
        f"{ASCO_CAP_2018}; {CAP_GEA_2016}",
    ),
    _rule("HER2-ISH-G5-NEGATIVE", "4.2", "group 5, IHC not 3+", "negative", ASCO_CAP_2018),
    _rule(
        "HER2-ISH-G5-IHC3",
        "4.2",
        "group 5, IHC 3+",
        "positive (one positive test suffices); discordance flag",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-ISH-SP-GE6",
        "3",
        f"single probe, HER2 copies {COPIES_GE6.text}",
        "positive",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-ISH-SP-LT4",
        "3",
        f"single probe, HER2 copies {COPIES_LT4.text}, IHC not 3+",
        "negative",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-ISH-SP-LT4-IHC3",
        "3, 5",
        f"single probe, HER2 copies {COPIES_LT4.text}, IHC 3+",
        "positive (one positive test suffices, as group 5 with IHC 3+); discordance flag",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-ISH-SP-4TO6-IHC3",
        "3",
        f"single probe, HER2 copies {COPIES_4TO6.text}, IHC 3+",
        "positive",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-ISH-SP-4TO6-IHC01",
        "3",
        f"single probe, HER2 copies {COPIES_4TO6.text}, IHC 0 or 1+ (or stated negative)",
        "negative",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-ISH-SP-4TO6-IHC2",
        "3",
        f"single probe, HER2 copies {COPIES_4TO6.text}, IHC 2+",
        f"equivocal; pending-workup flag ({PENDING_DUAL_PROBE})",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-ISH-SP-4TO6-IHC-LOW-UNSCORED",
        "3, 8",
        f"single probe, HER2 copies {COPIES_4TO6.text}, IHC stated HER2-low without a score",
        f"equivocal; pending-workup flag ({PENDING_IHC_SCORE})",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-ISH-SP-4TO6-NO-IHC",
        "3",
        f"single probe, HER2 copies {COPIES_4TO6.text}, no usable IHC",
        f"equivocal; pending-workup flag ({PENDING_DUAL_PROBE})",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-ISH-INCOMPLETE-IHC-DECIDES",
        "4.4",
        "ISH incomplete (a count missing, a value straddling a threshold, or words only); "
        "IHC 3+; or IHC 0, 1+ or stated negative when the known values rule out an "
        f"ISH-positive count (ratio entirely {RATIO_NOT_AMPLIFIED.text} or HER2 copies entirely "
        f"{COPIES_LT4.text}; single probe: copies entirely {COPIES_LT6.text})",
        "the IHC result; incomplete-ish flag",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-ISH-INCOMPLETE-IHC01-OPEN",
        "4.4, 2",
        "ISH incomplete and the known values leave group 1 (single probe: copies ≥ 6.0) "
        "possible, e.g. ratio alone ≥ 2.0, copies alone ≥ 4.0, or words only; IHC 0, 1+ or "
        "stated negative. Deviates from a literal §4.4 ('decide on IHC alone'): group 1 is "
        "positive whatever the IHC",
        f"equivocal; incomplete-ish and pending-workup flags ({PENDING_COMPLETE_ISH})",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-ISH-INCOMPLETE-IHC2",
        "4.4",
        "ISH incomplete; IHC 2+, or IHC stated HER2-low without a score",
        f"equivocal; incomplete-ish and pending-workup flags ({PENDING_COMPLETE_ISH})",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-ISH-INCOMPLETE-NO-IHC",
        "4.4",
        "ISH incomplete (a count reported, not complete); no usable IHC",
        "equivocal, not indeterminate (the test did not fail); incomplete-ish and pending-workup "
        f"flags ({PENDING_COMPLETE_ISH})",
        ASCO_CAP_2018,
    ),
)

_STATUS_RULES = (
    _rule(
        "HER2-ISH-STATED-ONLY",
        "4.5",
        "ISH stated positive, negative or equivocal with no ratio or copies, and no usable IHC",
        "the lab's ISH call; lab-stated-only flag (finer category not assignable)",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-LAB-STATED-ONLY",
        "4.5",
        "the lab's overall HER2 interpretation (LOINC 48676-1) positive, negative or equivocal, "
        "and the case holds no IHC or ISH result",
        "the lab's call; lab-stated-only flag (finer category not assignable)",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-STATED-ONLY",
        "4.5",
        "the HER2 result rests on the lab's words only (no IHC score, no ISH count)",
        f"lab-stated-only flag; negative: category HER2-negative ({LAB_STATED_NOT_ASSIGNABLE})",
        ASCO_CAP_2023,
    ),
    _rule(
        "HER2-NOT-REPORTED",
        "4.6",
        "no HER2 result at all in the case (an ER/PgR-only order)",
        "no official HER2 result; category HER2-not-reported (not a failed test)",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-NOT-UNDERSTOOD",
        "4.6",
        "a HER2 result whose value could not be read (its position is named, never its text)",
        "no official HER2 result; category HER2-not-understood (not a failed test); the "
        "message is answered AE and kept for reprocessing",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-NO-USABLE-RESULT",
        "4.6, 5",
        "HER2 reported, but no usable IHC or ISH result, and not every test reported failed: an "
        "IHC that conflicts, contradicts its own text, or is a word that is no HER2 result",
        "equivocal, not indeterminate (no failed test); pending-workup flag "
        f"({PENDING_LAB_REVIEW}); the reasons are flagged where the results were set aside",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-INDETERMINATE-LAB",
        "4.1",
        "no usable IHC or ISH, and every HER2 test reported is one the lab said could not be "
        "done or assessed (OBX-11 X, dataAbsentReason, 'inadequate', 'indeterminate')",
        "indeterminate",
        ASCO_CAP_2018,
    ),
    _rule("HER2-CAT-POSITIVE", "4", "official result positive", "HER2-positive", ASCO_CAP_2018),
    _rule("HER2-CAT-EQUIVOCAL", "4", "official result equivocal", "HER2-equivocal", ASCO_CAP_2018),
    _rule(
        "HER2-CAT-INDETERMINATE",
        "4",
        "official result indeterminate",
        "indeterminate",
        ASCO_CAP_2018,
    ),
    _rule("HER2-CAT-LOW-IHC1", "4", "breast negative, IHC 1+", "HER2-low", DESTINY_BREAST),
    _rule(
        "HER2-CAT-LOW-IHC2-ISH-NEG",
        "4",
        "breast negative, IHC 2+ (ISH negative after work-up)",
        "HER2-low",
        DESTINY_BREAST,
    ),
    _rule(
        "HER2-CAT-ULTRALOW",
        "4",
        "breast negative, IHC 0, sub-type ultralow "
        f"(stated, or stained {IHC_STAINED_ULTRALOW.text})",
        "HER2-ultralow",
        DESTINY_BREAST,
    ),
    _rule(
        "HER2-CAT-NULL",
        "4",
        f"breast negative, IHC 0, sub-type null (stated, or stained {IHC_STAINED_NULL.text})",
        "HER2-null",
        DESTINY_BREAST,
    ),
    _rule(
        "HER2-CAT-NEGATIVE-NO-SUBTYPE",
        "4",
        "breast negative, IHC 0 without a known sub-type, or no usable IHC score",
        "HER2-negative",
        ASCO_CAP_2023,
    ),
    _rule(
        "HER2-2023-WORDING",
        "4",
        "category HER2-low, HER2-ultralow or HER2-null",
        "report says the category is not an official ASCO/CAP result (official result negative)",
        ASCO_CAP_2023,
    ),
    _rule(
        "HER2-DISCORDANCE-IHC3-G5",
        "5",
        "IHC 3+ with ISH group 5",
        "discordance flag (status stays positive)",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-DISCORDANCE-IHC0-G1",
        "5",
        "IHC 0 with ISH group 1",
        "discordance flag (status stays positive)",
        ASCO_CAP_2018,
    ),
    _rule(
        "HER2-HETEROGENEITY",
        "5",
        f"amplified cells {HETEROGENEITY.text}",
        "heterogeneity flag (status from the whole-tumour count)",
        CAP_2009_HETEROGENEITY,
    ),
)

_RECEPTOR_RULES = (
    _rule(
        "ER-NEGATIVE",
        "6",
        f"ER {ER_NEGATIVE.text}, or stated negative",
        "ER negative",
        ASCO_CAP_2020_ER_PGR,
    ),
    _rule(
        "ER-LOW-POSITIVE",
        "6",
        f"ER {ER_LOW_POSITIVE.text}, or stated low positive",
        "ER low positive; er-low-positive flag with the guideline comment",
        ASCO_CAP_2020_ER_PGR,
    ),
    _rule("ER-POSITIVE", "6", f"ER {ER_POSITIVE.text}", "ER positive", ASCO_CAP_2020_ER_PGR),
    _rule(
        "ER-POSITIVE-NO-PERCENT",
        "6",
        "ER stated positive without a percentage",
        "ER positive (≥ 1%), low positive not excluded; er-percent-missing flag",
        ASCO_CAP_2020_ER_PGR,
    ),
    _rule(
        "ER-UNDETERMINED",
        "6",
        "ER reported but not placeable: lab could not determine, value straddles a band, "
        "or text contradicting the percentage",
        "ER not reported as a call; receptor-undetermined flag",
        ASCO_CAP_2020_ER_PGR,
    ),
    _rule(
        "PGR-NEGATIVE",
        "6",
        f"PgR {PGR_NEGATIVE.text}, or stated negative",
        "PgR negative",
        ASCO_CAP_2020_ER_PGR,
    ),
    _rule(
        "PGR-POSITIVE",
        "6",
        f"PgR {PGR_POSITIVE.text}, or stated positive / low positive",
        "PgR positive",
        ASCO_CAP_2020_ER_PGR,
    ),
    _rule(
        "PGR-UNDETERMINED",
        "6",
        "PgR reported but not placeable: lab could not determine, value straddles 1%, "
        "or text contradicting the percentage",
        "PgR not reported as a call; receptor-undetermined flag",
        ASCO_CAP_2020_ER_PGR,
    ),
    _rule(
        "HR-POSITIVE",
        "6",
        f"ER {ER_POSITIVE.text} or PgR {PGR_POSITIVE.text}",
        "HR-positive",
        ASCO_CAP_2020_ER_PGR,
    ),
    _rule(
        "HR-LOW-POSITIVE",
        "6",
        f"ER {ER_LOW_POSITIVE.text} and PgR {PGR_NEGATIVE.text} or not reported",
        "HR-low-positive",
        ASCO_CAP_2020_ER_PGR,
    ),
    _rule(
        "HR-NEGATIVE",
        "6",
        f"ER {ER_NEGATIVE.text} and PgR {PGR_NEGATIVE.text}",
        "HR-negative",
        ASCO_CAP_2020_ER_PGR,
    ),
    _rule(
        "HR-UNDETERMINED",
        "6",
        "a combination section 6 leaves open (e.g. ER negative and PgR not reported)",
        "no HR status; receptor-undetermined flag",
        ASCO_CAP_2020_ER_PGR,
    ),
)

_GASTRIC_RULES = (
    _rule("GEA-IHC-3", "7", "gastroesophageal IHC 3+", "positive (whatever ISH)", CAP_GEA_2016),
    _rule(
        "GEA-IHC-2",
        "7",
        "gastroesophageal IHC 2+",
        "equivocal; ISH decides (pending-workup flag when no ISH)",
        CAP_GEA_2016,
    ),
    _rule("GEA-IHC-01", "7", "gastroesophageal IHC 0 or 1+", "IHC negative", CAP_GEA_2016),
    _rule(
        "GEA-ISH-POSITIVE",
        "7",
        f"gastroesophageal ISH ratio {RATIO_AMPLIFIED.text}",
        "positive (breast groups not assigned)",
        CAP_GEA_2016,
    ),
    _rule(
        "GEA-ISH-NEGATIVE",
        "7",
        f"gastroesophageal ISH ratio {RATIO_NOT_AMPLIFIED.text}",
        "ISH negative; negative unless IHC 3+",
        CAP_GEA_2016,
    ),
    _rule(
        "GEA-ISH-INCOMPLETE-IHC01-OPEN",
        "7, 4.4",
        "gastroesophageal ISH without a ratio placeable against 2.0 (missing, straddling, or "
        "words only); IHC 0 or 1+. Deviates from a literal §4.4: ratio ≥ 2.0 is positive "
        "whatever the IHC",
        f"equivocal; incomplete-ish and pending-workup flags ({PENDING_COMPLETE_ISH})",
        CAP_GEA_2016,
    ),
    _rule(
        "GEA-ISH-COUNTS-DISAGREE",
        "7, 5",
        f"several gastroesophageal ISH counts on different sides of ratio {RATIO_AMPLIFIED.text} "
        "(a count without a placeable ratio counts as different); IHC not 3+",
        f"equivocal; discordance and pending-workup flags ({PENDING_ADJUDICATION})",
        CAP_GEA_2016,
    ),
    _rule(
        "GEA-ISH-COUNTS-DISAGREE-IHC3",
        "7, 5",
        f"several gastroesophageal ISH counts on different sides of ratio {RATIO_AMPLIFIED.text}; "
        "IHC 3+",
        "positive (IHC 3+); discordance flag",
        CAP_GEA_2016,
    ),
    _rule(
        "GEA-CAT-NEGATIVE",
        "7",
        "gastroesophageal negative",
        "HER2-negative (low/ultralow/null are breast concepts)",
        CAP_GEA_2016,
    ),
)

_TISSUE_RULES = (
    _rule(
        "TISSUE-UNKNOWN",
        "7",
        "tissue unknown and breast and gastroesophageal rules give different official results",
        "equivocal, not indeterminate (no test failed); tissue-unknown flag naming both, "
        f"pending-workup flag ({PENDING_TISSUE})",
        f"{ASCO_CAP_2018}; {CAP_GEA_2016}",
    ),
    _rule(
        "TISSUE-UNKNOWN-AGREE",
        "7",
        "tissue unknown and breast and gastroesophageal rules give the same official result",
        "that result; a negative is HER2-negative; tissue-unknown flag",
        f"{ASCO_CAP_2018}; {CAP_GEA_2016}",
    ),
)

# Section 10: a therapy is named only as its label names it. {rule id: the conclusion's words}.
THERAPY_WORDS: dict[str, str] = {
    "THERAPY-DB04": (
        "HER2-low identifies candidates for trastuzumab deruxtecan in unresectable or metastatic "
        "breast cancer after prior chemotherapy, whatever the hormone receptor status "
        "(DESTINY-Breast04)."
    ),
    "THERAPY-DB06": (
        "With HR-positive disease, HER2-low and HER2-ultralow identify candidates for "
        "trastuzumab deruxtecan in unresectable or metastatic breast cancer that has progressed "
        "on endocrine therapy (DESTINY-Breast06)."
    ),
    "THERAPY-NONE-ULTRALOW-HR-NEGATIVE": (
        "No therapy is named: the trastuzumab deruxtecan indication for HER2-ultralow "
        "(DESTINY-Breast06) covers HR-positive disease only, and this case is HR-negative."
    ),
    "THERAPY-NONE-ULTRALOW-HR-UNKNOWN": (
        "No therapy is named: the trastuzumab deruxtecan indication for HER2-ultralow "
        "(DESTINY-Breast06) covers HR-positive disease only, and this report does not establish "
        "the hormone receptor status."
    ),
}

_THERAPY_RULES = (
    _rule(
        "THERAPY-DB04",
        "10",
        "breast, category HER2-low (any HR status)",
        "conclusion names trastuzumab deruxtecan (DESTINY-Breast04)",
        DESTINY_BREAST,
    ),
    _rule(
        "THERAPY-DB06",
        "10",
        "breast, category HER2-low or HER2-ultralow, HR-positive or HR-low-positive",
        "conclusion names trastuzumab deruxtecan after endocrine therapy (DESTINY-Breast06)",
        DESTINY_BREAST,
    ),
    _rule(
        "THERAPY-NONE-ULTRALOW-HR-NEGATIVE",
        "10",
        "breast, category HER2-ultralow, HR-negative",
        "conclusion names no therapy (DESTINY-Breast06 covers HR-positive disease only)",
        DESTINY_BREAST,
    ),
    _rule(
        "THERAPY-NONE-ULTRALOW-HR-UNKNOWN",
        "10",
        "breast, category HER2-ultralow, HR status not determined",
        "conclusion names no therapy and says the HR status decides",
        DESTINY_BREAST,
    ),
)

RULES: tuple[Rule, ...] = (
    *_IHC_RULES,
    *_ISH_RULES,
    *_STATUS_RULES,
    *_RECEPTOR_RULES,
    *_GASTRIC_RULES,
    *_TISSUE_RULES,
    *_THERAPY_RULES,
)

RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}

# --------------------------------------------------------------------------------------------
# ER and PgR (section 6)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatedReceptor:
    """What a receptor word means without a percentage, and what it leaves open."""

    call: ReceptorCall
    rule_id: str
    open_question: tuple[FlagCode, str] | None = None  # flagged whenever the word decides


ER_PERCENT_MISSING_REASON = (
    "ER stated positive without a percentage: counted as ≥ 1% (positive); ER low positive "
    "(1-10%) is not excluded"
)


@dataclass(frozen=True)
class ReceptorTable:
    """How one receptor's percentage or wording becomes a call."""

    name: str
    bands: tuple[tuple[Interval, ReceptorCall], ...]
    rule_for: dict[ReceptorCall, str]
    stated_alone: dict[Interpretation, StatedReceptor]  # a word deciding without a percentage
    compatible: dict[Interpretation, frozenset[ReceptorCall]]  # a word beside a percentage
    undetermined_rule: str


ER_TABLE = ReceptorTable(
    name="ER",
    bands=(
        (ER_NEGATIVE, ReceptorCall.NEGATIVE),
        (ER_LOW_POSITIVE, ReceptorCall.LOW_POSITIVE),
        (ER_POSITIVE, ReceptorCall.POSITIVE),
    ),
    rule_for={
        ReceptorCall.NEGATIVE: "ER-NEGATIVE",
        ReceptorCall.LOW_POSITIVE: "ER-LOW-POSITIVE",
        ReceptorCall.POSITIVE: "ER-POSITIVE",
    },
    # "Positive" alone cannot tell low positive from positive: it counts as >= 1% (section 6),
    # positive for HR status, and the open question is flagged.
    stated_alone={
        Interpretation.NEGATIVE: StatedReceptor(ReceptorCall.NEGATIVE, "ER-NEGATIVE"),
        Interpretation.LOW_POSITIVE: StatedReceptor(ReceptorCall.LOW_POSITIVE, "ER-LOW-POSITIVE"),
        Interpretation.POSITIVE: StatedReceptor(
            ReceptorCall.POSITIVE,
            "ER-POSITIVE-NO-PERCENT",
            (FlagCode.ER_PERCENT_MISSING, ER_PERCENT_MISSING_REASON),
        ),
    },
    compatible={
        Interpretation.NEGATIVE: frozenset({ReceptorCall.NEGATIVE}),
        Interpretation.LOW_POSITIVE: frozenset({ReceptorCall.LOW_POSITIVE}),
        Interpretation.POSITIVE: frozenset({ReceptorCall.LOW_POSITIVE, ReceptorCall.POSITIVE}),
    },
    undetermined_rule="ER-UNDETERMINED",
)

PGR_TABLE = ReceptorTable(
    name="PgR",
    bands=((PGR_NEGATIVE, ReceptorCall.NEGATIVE), (PGR_POSITIVE, ReceptorCall.POSITIVE)),
    rule_for={ReceptorCall.NEGATIVE: "PGR-NEGATIVE", ReceptorCall.POSITIVE: "PGR-POSITIVE"},
    # PgR has no low-positive category: a "low positive" PgR is ≥ 1%, hence positive.
    stated_alone={
        Interpretation.NEGATIVE: StatedReceptor(ReceptorCall.NEGATIVE, "PGR-NEGATIVE"),
        Interpretation.POSITIVE: StatedReceptor(ReceptorCall.POSITIVE, "PGR-POSITIVE"),
        Interpretation.LOW_POSITIVE: StatedReceptor(ReceptorCall.POSITIVE, "PGR-POSITIVE"),
    },
    compatible={
        Interpretation.NEGATIVE: frozenset({ReceptorCall.NEGATIVE}),
        Interpretation.POSITIVE: frozenset({ReceptorCall.POSITIVE}),
        Interpretation.LOW_POSITIVE: frozenset({ReceptorCall.POSITIVE}),
    },
    undetermined_rule="PGR-UNDETERMINED",
)
