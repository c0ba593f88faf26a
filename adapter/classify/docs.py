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
    INCOMPLETE_ISH_IHC01_OPEN,
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
HER2-low; 1+ negative or HER2-low; 0 negative or HER2-ultralow. `Negative` (or HER2-low / ultralow)
with no score is an IHC negative with unknown score: category `HER2-negative`, flag `score-missing`
(section 8). `Positive` or `Equivocal` with no score is that IHC result (ASCO/CAP define IHC
positive as 3+ and equivocal as 2+, so the work-up tables read them as those columns), flag
`score-missing`; a word that is not a HER2 result is not used. A lab's "could not be scored"
(`indeterminate_reason`, or stated indeterminate) makes that test unusable; if every test reported
failed the result is indeterminate (`HER2-INDETERMINATE-LAB`). IHC results of one order that
disagree (two scores, two words, a sub-type beside 1+) are none of them used, and are not a failed
test either: `discordance` names their positions (`HER2-IHC-CONFLICTING`). When HER2 was reported
but nothing usable is left and not every test failed (conflicting results, a text contradicting
its score, a word that is no HER2 result), the result is equivocal pending the lab's review
(`HER2-NO-USABLE-RESULT`, flag `pending-workup`), never indeterminate. IHC 0 sub-type: the stated
sub-type, unless the stained percentage contradicts it or straddles its band (null with stained
> 0%, ultralow with 0% or > 10%): then the sub-type is unknown and `discordance` names both
(`HER2-IHC0-SUBTYPE-CONTRADICTS-STAINED`); else the percentage of stained cells (0% null, >0% and
≤10% ultralow, a straddling value `undecidable-value`, a value above 10% `discordance`); else none.
A sub-type without a score does not make a score. A breast score 1+, 2+ or 3+ with stained cells ≤
10% raises `discordance` (each score needs staining in > 10% of cells) and the result still follows
the score (`HER2-IHC-SCORE-CONTRADICTS-STAINED`).

**Dual-probe ISH** needs the ratio (reported, or HER2 / CEP17 copies when both are single values,
`HER2-ISH-RATIO-DERIVED`) and the HER2 copies, each inside one band of the group table; group 1
uses copies ≥ 4.0 as one band. A missing or straddling value, or an ISH stated only in words (no
group can be assigned), is incomplete ISH (section 4.4, flag `incomplete-ish`): IHC decides where
it can. A count is single probe (section 3) when the lab says so (a single-probe code, the method,
a note) or when the case holds HER2 copies and no CEP17 count and no ratio at all (flag
`probe-inferred`); a CEP17 count or ratio reported, even one reported as failed, makes it dual
probe, and copies alone are then incomplete ISH. When the lab states both single and dual probe
(a single-probe method beside a ratio, say), neither statement is taken: the counts decide as
above, and flag `probe-conflicting` asks for the method to be checked. A ratio then makes the
count dual probe, the reading a copies-only threshold would make less cautious (copies 6.2 with
ratio 1.5 and IHC 2+: group 3, equivocal pending the recount, where single probe says positive).

**Incomplete ISH with IHC 0/1+ (a deliberate departure from a literal section 4.4).** Section 4.4
says to decide on IHC alone where it can; but ASCO/CAP 2018 makes group 1 positive whatever the
IHC, so IHC 0/1+ (or a stated negative) decides negative only when the known values rule group 1
out: ratio entirely < 2.0, or HER2 copies entirely < 4.0 (single probe: copies entirely < 6.0;
gastroesophageal, Bartley 2016: a ratio placed entirely < 2.0, which is never incomplete). Any
other partial count (ratio 4.5 alone, copies 12.0 alone, a ratio straddling 2.0 with copies 5, an
ISH stated "amplified" or "negative" in words only) is equivocal with flags `incomplete-ish` and
`pending-workup` (a complete ISH count): `HER2-ISH-INCOMPLETE-IHC01-OPEN`,
`GEA-ISH-INCOMPLETE-IHC01-OPEN`. A word is not a count: a stated ISH result without numbers never
rules group 1 out. IHC 3+ still decides positive; IHC 2+ is equivocal; with no usable IHC the result
is equivocal pending a complete count: an incomplete count is not a failed test, so never
indeterminate (section 4.6).

**Several counts.** When the record carries counts reported before the last one
(`earlier_counts`, filled by ingest only when their values differ), each count is placed in its
group (single probe: its copy-number band; gastroesophageal: its side of ratio 2.0). A count that
cannot be placed differs from every other, as it cannot confirm them. Counts that differ give
equivocal with flags `discordance` ("ISH counts fall in different groups: 4, 5; adjudication
needed") and `pending-workup` (`HER2-ISH-COUNTS-DISAGREE`, `GEA-ISH-COUNTS-DISAGREE`), with any
IHC except 3+, which stays positive with the discordance flag (every group and any gastric ratio
is positive with IHC 3+: `HER2-ISH-COUNTS-DISAGREE-IHC3`, `GEA-ISH-COUNTS-DISAGREE-IHC3`). No ISH
group is reported then. ISH results of one order that disagree in their result word
("amplified" and "not amplified") are read the same way, none of the ISH is used:
`HER2-ISH-CONFLICTING` (equivocal, `discordance`, `pending-workup`: the lab's adjudication), or
positive with IHC 3+ (`HER2-ISH-CONFLICTING-IHC3`). Counts that agree are read from the last count
as usual; the section 2 recount ("same group") is still the recount the message reports.

**Work-up.** Groups 2-4 with IHC 2+ and no recount reported, or with no usable IHC, are equivocal
with flag `pending-workup` naming what is pending. A stated IHC negative (or ultralow / null)
without a score counts as "IHC 0 or 1+" in the work-up tables. A stated HER2-low without a score
may be IHC 1+ or 2+, which changes the result of groups 2-4 and single-probe 4.0 to < 6.0: those
cells are equivocal, pending the IHC score; with incomplete ISH it reads as IHC 2+.
Single probe below 4.0 with IHC 3+ is positive with a discordance flag, by the same "one positive
test suffices" reading as group 5 with IHC 3+.
IHC 2+ without usable ISH is equivocal with flag `pending-workup` (reflex ISH).

**Category.** Negative with IHC 1+, or IHC 2+ (ISH negative after work-up), is `HER2-low`; IHC 0
ultralow `HER2-ultralow`; IHC 0 null `HER2-null`; IHC 0 without a known sub-type, or no usable IHC
score, `HER2-negative`. Whenever the category is low, ultralow or null, `HER2-2023-WORDING` fires:
those are not official ASCO/CAP results.

**Flags that never change the result.** Discordance (IHC 3+ with group 5, IHC 0 with group 1);
heterogeneity (amplified cells > 5% and < 50%, breast and gastroesophageal alike); the lab's own
call (overall interpretation, or the word on the ISH result) mapping to another official result
than ours raises `lab-interpretation-differs` naming both (HER2-low / ultralow map to negative;
a word that is not a HER2 result, such as "low positive", is always flagged). The lab's overall
call HER2-low, HER2-ultralow or HER2-null also raises `lab-interpretation-differs` when the
official results agree but our category differs (e.g. lab HER2-low, ours HER2-ultralow or
HER2-negative).

**Tissue.** Breast uses sections 1-5. Gastroesophageal uses Bartley 2016: IHC 3+ positive, 2+
equivocal, 0/1+ negative; ISH ratio ≥ 2.0 positive, else negative (positive still when IHC is 3+);
no ISH group is assigned; every negative is `HER2-negative`; incomplete ISH and indeterminate use
the same section 4 rules. Unknown tissue: both rule sets run; when their official results agree
that result is kept (`TISSUE-UNKNOWN-AGREE`, category `HER2-negative` for a negative) with flag
`tissue-unknown`; otherwise the result is equivocal (`TISSUE-UNKNOWN`), the flag naming both and
`pending-workup` naming the tissue: no test failed, and neither rule set is picked. No ISH group
is reported for an unknown tissue.

**The lab's own call (section 4.5).** A HER2 result that rests on words only, with no IHC score
and no ISH count, is still a result, flagged `lab-stated-only` (`HER2-STATED-ONLY`): an IHC word
as above; an ISH word (`amplified`, `not amplified`, `equivocal`) without any count and with no
usable IHC (`HER2-ISH-STATED-ONLY`); or the lab's overall interpretation (LOINC 48676-1) when the
case holds no IHC and no ISH result at all (`HER2-LAB-STATED-ONLY`). Positive gives
`HER2-positive`, equivocal `HER2-equivocal` (with `pending-workup`), negative `HER2-negative`:
HER2-low, HER2-ultralow and HER2-null cannot be assigned without the IHC score, and the flag says
so. An ISH word beside an IHC result is read by the incomplete-ISH rules below.

**No HER2 result is not a failed test (section 4.6).** `indeterminate` is kept for the ASCO/CAP
result: the test failed or could not be assessed. A case with no HER2 result at all (an ER/PgR-only
order) has no official result and category `HER2-not-reported` (`HER2-NOT-REPORTED`). A HER2 value
the mappings could not read gives no official result and category `HER2-not-understood`
(`HER2-NOT-UNDERSTOOD`), naming the value's position (`OBX[4]`, `Observation/x`), never its text;
this holds even beside values that were read, since the unread one (a ratio, a sub-type) may
change the category. The message is answered AE and kept, so `reprocess` gives the result once
the mapping reads it. ER and PgR are classified in both cases.

**ER and PgR.** The percentage decides when reported; else the word. ER stated negative or low
positive is accepted; ER stated positive without a percentage counts as ≥ 1%: ER positive, low
positive not excluded, flag `er-percent-missing` (`ER-POSITIVE-NO-PERCENT`); HR status is
positive. PgR stated positive, low positive (≥ 1%) or
negative is accepted. A word that contradicts the percentage raises `discordance` and gives no
call. ER low positive adds flag `er-low-positive` with the guideline's comment. HR status follows
section 6; ER or PgR results of one order that disagree are not used (`discordance`, the receptor
undetermined); combinations it leaves open (ER negative and PgR missing, ER missing and PgR
negative, an undetermined receptor that could change the answer) give no HR status and flag
`receptor-undetermined`; with neither reported there is no HR status and no flag.

**Therapy (section 10).** The conclusion names a therapy only as its label does:
`THERAPY-DB04` (HER2-low, any HR status: DESTINY-Breast04), `THERAPY-DB06` (HER2-low or
HER2-ultralow with HR-positive or HR-low-positive disease: DESTINY-Breast06); a HER2-ultralow case
that is HR-negative, or whose HR status is not determined, names no therapy and says why.
Negative results of ISH groups 2, 3 and 4 carry the ASCO/CAP 2018 comment in
`DiagnosticReport.conclusion`.

**Sections.** The `§` column numbers the topics of the clinical specification this table
implements: 1 breast IHC, 2 dual-probe ISH groups, 3 single-probe ISH, 4 status and category
(4.1 indeterminate, 4.2 ISH present, 4.4 incomplete ISH, 4.5 the lab's own call, 4.6 no HER2
result), 5 discordance and heterogeneity, 6 ER and PgR, 7 gastroesophageal, 8 lab wordings,
10 therapy wording. A rule's citation names its guideline and this document.

**Output.** `guideline` names the versions used (`ASCO/CAP HER2 2018 (affirmed 2023)`,
`CAP/ASCP/ASCO GEA 2016`, and `ASCO/CAP ER/PgR 2020` when ER or PgR is reported). Every
classification names at least one rule. The classifier is a pure, total function.
"""

_BUCKET_ORDER = (
    IhcBucket.IHC3,
    IhcBucket.IHC2_RECOUNT,
    IhcBucket.IHC2_PENDING,
    IhcBucket.IHC01,
    IhcBucket.IHC_LOW_UNSCORED,
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
    rows[_BUCKET_ORDER.index(IhcBucket.IHC01)] = (
        f"{IhcBucket.IHC01.value}, known values rule out an ISH-positive count",
        _cell(INCOMPLETE_ISH_WORKUP[IhcBucket.IHC01]),
    )
    rows.insert(
        _BUCKET_ORDER.index(IhcBucket.IHC01) + 1,
        (
            f"{IhcBucket.IHC01.value}, an ISH-positive count still possible",
            f"breast {_cell(INCOMPLETE_ISH_IHC01_OPEN[False])}; "
            f"gastroesophageal {_cell(INCOMPLETE_ISH_IHC01_OPEN[True])}",
        ),
    )
    return "## Incomplete ISH: IHC decides where it can (section 4.4)\n\n" + _table(
        ("IHC", "result"), rows
    )


def _rules_table() -> str:
    rows = [(f"`{r.id}`", r.section, r.condition, r.result, r.citation) for r in RULES]
    return "## Rules\n\n" + _table(("rule", "§", "condition", "result", "citation"), rows)


if __name__ == "__main__":
    sys.stdout.write(render_rules_markdown())
