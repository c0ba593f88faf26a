"""The audit as terminal tables (rich): the same figures as the JSON and the HTML page."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from adapter.audit.figures import ALL_PERIODS


def _count(count: int, share: float | None) -> str:
    return str(count) if share is None else f"{count} ({share * 100:.1f}%)"


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


def _add_row(table: Table, *cells: str) -> None:
    """Cells as plain text: a sender name or a code is data, never rich markup."""
    table.add_row(*(Text(cell) for cell in cells))


def print_audit(audit: dict[str, Any], console: Console) -> None:
    options = audit["options"]
    vocabulary = audit["vocabulary"]
    cells = audit["cells"]
    totals = [cell for cell in cells if cell["period"] == ALL_PERIODS]
    console.print(
        f"[bold]HER2 lab QA audit[/bold]: {sum(c['reports'] for c in totals)} reports from "
        f"{len(audit['senders'])} senders, by {options['period']}; shares from "
        f"{options['min_reports']} reports in a period."
    )
    not_indexed = sum(c["not_indexed"] for c in totals)
    if not_indexed:
        console.print(
            f"{not_indexed} reports were indexed before the store kept audit facts (counted "
            "only): run `her2-adapter reprocess --status processed` to include them."
        )
    for tissue in vocabulary["tissues"]:
        _mix_table(console, cells, tissue, "categories", vocabulary["categories"], "category mix")
        _mix_table(console, cells, tissue, "ihc", vocabulary["ihc"], "IHC score distribution")
    _drift_table(console, audit["drift"])
    _workup_table(console, cells)
    _disagreement_table(console, totals)
    _quality_table(console, totals, vocabulary)


def _mix_table(
    console: Console,
    cells: list[dict[str, Any]],
    tissue: str,
    part: str,
    names: list[str],
    what: str,
) -> None:
    present = [cell for cell in cells if tissue in cell[part]]
    if not present:
        return
    used = [n for n in names if any(cell[part][tissue]["counts"][n] for cell in present)]
    table = Table(title=f"{tissue}: {what}", title_justify="left")
    for column in ("sender", "period", "n", *used):
        table.add_column(column, justify="left" if column in ("sender", "period") else "right")
    for cell in present:
        figures = cell[part][tissue]
        shares = figures["shares"] or {}
        _add_row(
            table,
            cell["sender"],
            cell["period"],
            str(figures["total"]),
            *(_count(figures["counts"][n], shares.get(n)) for n in used),
        )
    console.print(table)


def _drift_table(console: Console, drift: dict[str, Any]) -> None:
    table = Table(
        title=f"IHC drift flagged ({drift['test']}, p < {drift['alpha']}, {drift['tests']} tests)",
        title_justify="left",
    )
    for column in ("sender", "period", "tissue", "IHC", "against", "share", "reference", "z", "p"):
        table.add_column(column)
    for test in drift["flagged"]:
        _add_row(
            table,
            test["sender"],
            test["period"],
            test["tissue"],
            test["ihc"],
            test["against"],
            f"{_pct(test['share'])} ({test['count']}/{test['scored']})",
            f"{_pct(test['reference_share'])} ({test['reference_count']}/"
            f"{test['reference_scored']})",
            f"{test['z']:.2f}",
            f"{test['p_value']:.2g}",
        )
    console.print(table if drift["flagged"] else f"{table.title}: none")


def _workup_table(console: Console, cells: list[dict[str, Any]]) -> None:
    table = Table(title="Work-up", title_justify="left")
    columns = (
        "sender", "period", "IHC 2+", "with ISH", "median IHC→ISH h", "equivocal", "pending",
        "ISH grouped", "groups 2-4",
    )  # fmt: skip
    for column in columns:
        table.add_column(column)
    for cell in cells:
        work = cell["workup"]
        median = work["ihc_to_ish_median_hours"]
        _add_row(
            table,
            cell["sender"],
            cell["period"],
            str(work["ihc2"]),
            _count(work["ihc2_with_ish"], work["ihc2_with_ish_share"]),
            "-" if median is None else f"{median:g} (n={work['ihc_to_ish_timed']})",
            _count(work["equivocal"], work["equivocal_share"]),
            _count(work["pending"], work["pending_share"]),
            str(work["ish_grouped"]),
            _count(work["groups_2_4"], work["groups_2_4_share"]),
        )
    console.print(table)


def _disagreement_table(console: Console, totals: list[dict[str, Any]]) -> None:
    table = Table(title="Disagreements (lab-stated vs guideline)", title_justify="left")
    for column in ("sender", "reports", "lab call → our category", "rules fired in them"):
        table.add_column(column)
    for cell in totals:
        part = cell["disagreements"]
        calls = ", ".join(f"{call} {count}" for call, count in part["by_call"].items())
        rules = ", ".join(f"{rule} {count}" for rule, count in part["by_rule"].items())
        _add_row(
            table,
            cell["sender"],
            _count(part["reports"], part["share"]),
            calls or "-",
            rules or "-",
        )
    console.print(table)


def _quality_table(
    console: Console, totals: list[dict[str, Any]], vocabulary: dict[str, list[str]]
) -> None:
    table = Table(title="Data quality (all periods)", title_justify="left")
    for column in ("sender", "flags", "results not used, by code", "rejected or failed"):
        table.add_column(column)
    for cell in totals:
        quality = cell["quality"]
        shares = quality["flag_shares"] or {}
        flags = ", ".join(
            f"{flag} {_count(quality['flags'][flag], shares.get(flag))}"
            for flag in vocabulary["flags"]
            if quality["flags"][flag]
        )
        codes = ", ".join(
            f"{item['code']} ({item['kind']}) {item['count']}" for item in quality["unused_codes"]
        )
        unprocessed = ", ".join(f"{code} {n}" for code, n in quality["unprocessed"].items())
        _add_row(table, cell["sender"], flags or "-", codes or "-", unprocessed or "-")
    console.print(table)
