"""Render ``docs/rules.md`` from the decision table, so the document cannot drift from the code.

Regenerate with ``python -m adapter.classify.docs > docs/rules.md``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from adapter.classify.table import (
    ASCO_CAP_2018,
    ASCO_CAP_2020_ER_PGR,
    ASCO_CAP_2023,
    BANDS,
    CAP_2009_HETEROGENEITY,
    CAP_GEA_2016,
    DESTINY_BREAST,
    GROUP_WORKUP,
    INCOMPLETE_ISH_WORKUP,
    ISH_GROUPS,
    RULES,
    SINGLE_PROBE_BANDS,
    SINGLE_PROBE_WORKUP,
    IhcBucket,
    WorkupCell,
)

REGENERATE = "python -m adapter.classify.docs > docs/rules.md"

_SEMANTICS = """\
## How the classifier reads a record

**Values.** A reported value (a point `10.5`, a bound `<1`, a range `1-10`) is placed in a band
only when the whole reported interval lies inside it: `1-10` is ER low positive, `<1` is negative,
`10.5` is positive, `5-15` is undecidable. An undecidable value is never guessed: it raises the
flag `undecidable-value` with the reason and the value is treated as not reported (an ISH count
becomes incomplete ISH, a receptor becomes undetermined). Numbers are compared exactly as
reported (Decimal, no rounding). Reasons quote values as the lab sent them.

**IHC.** A score with a contradicting word beside it (`Negative (3+)`, `Positive (1+)`) raises
`discordance` and the IHC result is not used. Compatible words: 3+ positive; 2+ equivocal or
HER2-low; 1+ negative or HER2-low; 0 negative or HER2-ultralow. `Negative` (or HER2-low /
ultralow) with no score is an IHC negative with unknown score: category `HER2-negative`, flag
`score-missing` (section 8). Positive or equivocal with no score is not used (flag
`score-missing`). A lab's "could not be scored" (`indeterminate_reason`, or stated indeterminate)
makes that test unusable; if no test is usable the result is indeterminate
(`HER2-INDETERMINATE-LAB`). IHC 0 sub-type: the stated sub-type wins; else the percentage of
stained cells (0% null, >0% and ≤10% ultralow, a straddling value `undecidable-value`, a value
above 10% `discordance`); else none. A sub-type without a score does not make a score.

**Dual-probe ISH** needs the ratio (reported, or HER2 / CEP17 copies when both are single values,
`HER2-ISH-RATIO-DERIVED`) and the HER2 copies, each inside one band of the group table; group 1
uses copies ≥ 4.0 as one band. A missing or straddling value, or an ISH stated only in words (no
group can be assigned), is incomplete ISH (section 4.4, flag `incomplete-ish`): IHC decides where
it can. A probe not stated is read as dual probe; copies alone then count as incomplete ISH (only
a stated single probe uses section 3).

**Work-up.** Groups 2-4 with IHC 2+ and no recount reported, or with no usable IHC, are equivocal
with flag `pending-workup` naming what is pending. A stated IHC negative without a score counts as
"IHC 0 or 1+" in the work-up tables. Single probe below 4.0 with IHC 3+ is positive with a
discordance flag, by the same "one positive test suffices" reading as group 5 with IHC 3+.
IHC 2+ without usable ISH is equivocal with flag `pending-workup` (reflex ISH).

**Category.** Negative with IHC 1+, or IHC 2+ (ISH negative after work-up), is `HER2-low`; IHC 0
ultralow `HER2-ultralow`; IHC 0 null `HER2-null`; IHC 0 without a known sub-type, or no usable IHC
score, `HER2-negative`. Whenever the category is low, ultralow or null, `HER2-2023-WORDING` fires:
those are not official ASCO/CAP results.

**Flags that never change the result.** Discordance (IHC 3+ with group 5, IHC 0 with group 1);
heterogeneity (amplified cells > 5% and < 50%, breast and gastroesophageal alike); the lab's own
call (overall interpretation, or the word on the ISH result) mapping to another official result
than ours raises `lab-interpretation-differs` naming both (HER2-low / ultralow map to negative;
a word that is not a HER2 result, such as "low positive", is always flagged).

**Tissue.** Breast uses sections 1-5. Gastroesophageal uses Bartley 2016: IHC 3+ positive, 2+
equivocal, 0/1+ negative; ISH ratio ≥ 2.0 positive, else negative (positive still when IHC is 3+);
no ISH group is assigned; every negative is `HER2-negative`; incomplete ISH and indeterminate use
the same section 4 rules. Unknown tissue: both rule sets run; when their official results agree
that result is kept (`TISSUE-UNKNOWN-AGREE`, category `HER2-negative` for a negative) with flag
`tissue-unknown`; otherwise the result is indeterminate (`TISSUE-UNKNOWN`) with the flag naming
both. No ISH group is reported for an unknown tissue.

**ER and PgR.** The percentage decides when reported; else the word. ER stated negative or low
positive is accepted; ER stated positive without a percentage cannot tell low positive from
positive: no ER call, flag `receptor-undetermined`. PgR stated positive, low positive (≥ 1%) or
negative is accepted. A word that contradicts the percentage raises `discordance` and gives no
call. ER low positive adds flag `er-low-positive` with the guideline's comment. HR status follows
section 6; combinations it leaves open (ER negative and PgR missing, ER missing and PgR negative,
an undetermined receptor that could change the answer) give no HR status and flag
`receptor-undetermined`; with neither reported there is no HR status and no flag.

**Output.** `guideline` names the versions used (`ASCO/CAP HER2 2018 (affirmed 2023)`,
`CAP/ASCP/ASCO GEA 2016`, and `ASCO/CAP ER/PgR 2020` when ER or PgR is reported). Every
classification names at least one rule. The classifier is a pure, total function.
"""

_BUCKET_ORDER = (
    IhcBucket.IHC3,
    IhcBucket.IHC2_RECOUNT,
    IhcBucket.IHC2_PENDING,
    IhcBucket.IHC01,
    IhcBucket.NONE,
)


def render_rules_markdown() -> str:
    parts = [
        "# HER2, ER and PgR classification rules",
        f"Generated from `adapter/classify/table.py`; do not edit by hand. Regenerate with "
        f"`{REGENERATE}`.",
        _guidelines(),
        _SEMANTICS.rstrip("\n"),
        _bands(),
        _group_table(),
        _single_probe_table(),
        _incomplete_table(),
        _rules_table(),
    ]
    return "\n\n".join(parts) + "\n"


def _guidelines() -> str:
    cited = (
        ASCO_CAP_2018,
        ASCO_CAP_2023,
        ASCO_CAP_2020_ER_PGR,
        CAP_GEA_2016,
        DESTINY_BREAST,
        CAP_2009_HETEROGENEITY,
    )
    return "## Guidelines\n\n" + "\n".join(f"- {citation}" for citation in cited)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = [_row(header), _row(tuple("---" for _ in header))]
    lines.extend(_row(row) for row in rows)
    return "\n".join(lines)


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _bands() -> str:
    rows = [(name, band.text) for name, band in BANDS.items()]
    return "## Thresholds\n\n" + _table(("band", "values"), rows)


def _cell(cell: WorkupCell) -> str:
    result, rule_id, pending = cell
    pending_text = f", pending {pending}" if pending else ""
    return f"{result.value}{pending_text} (`{rule_id}`)"


def _group_table() -> str:
    header = ("group", "ratio", "copies", *(bucket.value for bucket in _BUCKET_ORDER))
    rows = [
        (
            str(row.group),
            row.ratio.text,
            row.copies.text,
            *(_cell(GROUP_WORKUP[(row.group, bucket)]) for bucket in _BUCKET_ORDER),
        )
        for row in ISH_GROUPS
    ]
    return "## Breast dual-probe ISH: group × concomitant IHC (section 2)\n\n" + _table(
        header, rows
    )


def _single_probe_table() -> str:
    header = ("HER2 copies", *(bucket.value for bucket in _BUCKET_ORDER))
    rows = [
        (band.text, *(_cell(SINGLE_PROBE_WORKUP[(band, bucket)]) for bucket in _BUCKET_ORDER))
        for band in SINGLE_PROBE_BANDS
    ]
    return "## Breast single-probe ISH × IHC (section 3)\n\n" + _table(header, rows)


def _incomplete_table() -> str:
    rows = [(bucket.value, _cell(INCOMPLETE_ISH_WORKUP[bucket])) for bucket in _BUCKET_ORDER]
    return "## Incomplete ISH: IHC decides where it can (section 4.4)\n\n" + _table(
        ("IHC", "result"), rows
    )


def _rules_table() -> str:
    rows = [(f"`{r.id}`", r.section, r.condition, r.result, r.citation) for r in RULES]
    return "## Rules\n\n" + _table(("rule", "§", "condition", "result", "citation"), rows)


if __name__ == "__main__":
    sys.stdout.write(render_rules_markdown())
