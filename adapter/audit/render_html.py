"""The audit as one self-contained HTML page: server-side SVG charts, each with its table and a
CSV download of its data (a ``data:`` link), no script, no external file, nothing fetched.

The same page is ``her2-adapter audit --html`` and the service's ``/audit``. Chart elements
carry ``data-*`` attributes with the figure they draw, so a test (or a reader's tool) can check a
bar against its table.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from adapter.audit.figures import ALL_PERIODS

Row = Sequence[object]

# Category order in model.Category: positive red, low orange, ultralow yellow, null light blue,
# negative blue, equivocal purple, indeterminate grey; later members take the colours after.
_PALETTE = (
    "#b2182b", "#f1a340", "#fee08b", "#91bfdb", "#4575b4", "#8e6bbf", "#999999",
    "#1b7837", "#a6611a", "#e7298a", "#66c2a5", "#543005", "#c7eae5", "#762a83",
)  # fmt: skip
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
figure{margin:1em 0;padding:.5em;border:1px solid #e4e4e4;border-radius:4px}
.charts{display:flex;flex-wrap:wrap;gap:0 1em}.charts figure{flex:1 1 420px;margin:.5em 0}
figcaption{font-weight:600;margin-bottom:.3em}
table{border-collapse:collapse;font-size:12px;margin:.4em 0}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:right}
th:first-child,td:first-child{text-align:left}
.legend span{display:inline-block;margin-right:1em;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
.note{color:#555;font-size:12px}.flagged{background:#fde0dd}
svg text{font-size:10px;fill:#333}
"""


def render_html(audit: dict[str, Any], *, title: str = "HER2 lab QA audit") -> str:
    vocabulary = audit["vocabulary"]
    options = audit["options"]
    colours = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(vocabulary["categories"])}
    ihc_colours = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(vocabulary["ihc"])}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _intro(audit),
        "<h2>Category mix over time</h2>",
        '<div class="charts">',
        *(
            _category_chart(audit, sender, tissue, colours)
            for sender in audit["senders"]
            for tissue in vocabulary["tissues"]
            if _has(audit, sender, "categories", tissue)
        ),
        "</div>",
        "<h2>IHC score distribution</h2>",
        '<div class="charts">',
        *(
            _ihc_chart(audit, sender, tissue, ihc_colours)
            for sender in audit["senders"]
            for tissue in vocabulary["tissues"]
            if _has(audit, sender, "ihc", tissue)
        ),
        "</div>",
        _drift_table(audit),
        "<h2>Work-up</h2>",
        _funnel_chart(audit),
        "<h2>Disagreements: lab-stated call against the guideline result</h2>",
        _disagreement_chart(audit),
        "<h2>Data quality</h2>",
        _quality_tables(audit),
        f'<p class="note">Figures: counts and rates only. Shares are shown for a sender and '
        f"period with at least {options['min_reports']} reports.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------


def _intro(audit: dict[str, Any]) -> str:
    options = audit["options"]
    total = sum(c["reports"] for c in _totals(audit))
    not_indexed = sum(c["not_indexed"] for c in _totals(audit))
    window = ", ".join(
        f"{name} {options[name]}" for name in ("sender", "since", "until") if options[name]
    )
    text = (
        f'<p id="summary" data-reports="{total}">{total} reports from '
        f"{len(audit['senders'])} senders, by {escape(options['period'])}"
        f"{' (' + escape(window) + ')' if window else ''}; source: {escape(audit['source'])}.</p>"
    )
    if not_indexed:
        text += (
            f'<p class="note">{not_indexed} reports were indexed before the store kept audit '
            "facts and are counted only: run <code>her2-adapter reprocess --status processed"
            "</code> to include them.</p>"
        )
    return text + _download("Download the whole audit (JSON)", "her2-audit.json", None, audit)


def _cells(audit: dict[str, Any], sender: str) -> list[dict[str, Any]]:
    return [c for c in audit["cells"] if c["sender"] == sender and c["period"] != ALL_PERIODS]


def _totals(audit: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in audit["cells"] if c["period"] == ALL_PERIODS]


def _has(audit: dict[str, Any], sender: str, part: str, tissue: str) -> bool:
    return any(tissue in c[part] for c in _cells(audit, sender))


def _legend(colours: dict[str, str], names: Sequence[str]) -> str:
    items = "".join(
        f'<span><i style="background:{colours[name]}"></i>{escape(name)}</span>' for name in names
    )
    return f'<div class="legend">{items}</div>'


def _pct(share: float | None) -> str:
    return "" if share is None else f"{share * 100:.1f}%"


def _figure(
    chart_id: str, caption: str, svg: str, header: Row, rows: Sequence[Row], extra: str = ""
) -> str:
    table = _table(header, rows)
    return (
        f'<figure id="{chart_id}"><figcaption>{escape(caption)}</figcaption>{svg}{extra}'
        f"<details><summary>Table</summary>{table}</details>"
        f"{_download('Download CSV', f'{chart_id}.csv', header, rows)}</figure>"
    )


def _table(header: Row, rows: Sequence[Row]) -> str:
    head = "".join(f"<th>{escape(str(cell))}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_cell_text(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell_text(cell: object) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float):
        return f"{cell:g}"
    return str(cell)


def _download(label: str, name: str, header: Row | None, data: Any) -> str:
    if header is None:
        import orjson

        payload = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
        media = "application/json"
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([_cell_text(cell) for cell in row] for row in data)
        payload = buffer.getvalue()
        media = "text/csv"
    href = f"data:{media};charset=utf-8,{quote(payload)}"
    return f'<p><a class="download" download="{escape(name)}" href="{href}">{escape(label)}</a></p>'


def _slug(*parts: str) -> str:
    text = "-".join(parts).lower()
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")


# --------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------


def _stacked_columns(
    chart_id: str,
    columns: Sequence[tuple[str, int, dict[str, int] | None]],
    names: Sequence[str],
    colours: dict[str, str],
    *,
    marked: set[str] | frozenset[str] = frozenset(),
) -> str:
    """One 100% column per (label, total, counts); counts None: too few reports for shares, a
    grey column with the count only. A ``marked`` label gets a triangle above its column."""
    step, width, top, height = 56, 34, 14, 160
    svg_width = 50 + step * max(len(columns), 1)
    shapes = [
        f'<line x1="44" y1="{top}" x2="44" y2="{top + height}" stroke="#999"/>',
        f'<text x="40" y="{top + 4}" text-anchor="end">100%</text>',
        f'<text x="40" y="{top + height}" text-anchor="end">0%</text>',
    ]
    for index, (label, total, counts) in enumerate(columns):
        x = 50 + index * step
        if counts is None or total == 0:
            shapes.append(
                f'<rect class="suppressed" x="{x}" y="{top}" width="{width}" height="{height}" '
                f'fill="#eee" stroke="#bbb" data-period="{escape(label)}" data-total="{total}"/>'
                f'<text x="{x + width / 2}" y="{top + height / 2}" text-anchor="middle">'
                f"n={total}</text>"
            )
        else:
            y = float(top + height)
            for name in names:
                count = counts.get(name, 0)
                if not count:
                    continue
                bar = height * count / total
                y -= bar
                shapes.append(
                    f'<rect class="bar" x="{x}" y="{y:.2f}" width="{width}" height="{bar:.2f}" '
                    f'fill="{colours[name]}" data-period="{escape(label)}" '
                    f'data-key="{escape(name)}" data-value="{count}" data-total="{total}">'
                    f"<title>{escape(label)} {escape(name)}: {count} of {total}</title></rect>"
                )
        shapes.append(
            f'<text x="{x + width / 2}" y="{top + height + 14}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
        if label in marked:
            shapes.append(
                f'<text class="drift-mark" x="{x + width / 2}" y="{top - 3}" '
                f'text-anchor="middle" fill="#b2182b" data-period="{escape(label)}">▲</text>'
            )
    return (
        f'<svg id="{chart_id}-svg" role="img" width="{svg_width}" height="{top + height + 24}" '
        f'viewBox="0 0 {svg_width} {top + height + 24}">{"".join(shapes)}</svg>'
    )


def _category_chart(
    audit: dict[str, Any], sender: str, tissue: str, colours: dict[str, str]
) -> str:
    names = audit["vocabulary"]["categories"]
    columns = []
    rows: list[Row] = []
    for cell in _cells(audit, sender):
        part = cell["categories"].get(tissue)
        if part is None:
            continue
        shown = part["shares"] is not None
        columns.append((cell["period"], part["total"], part["counts"] if shown else None))
        for name in names:
            share = part["shares"][name] if shown else None
            rows.append((cell["period"], name, part["counts"][name], _pct(share)))
    chart_id = _slug("categories", sender, tissue)
    svg = _stacked_columns(chart_id, columns, names, colours)
    return _figure(
        chart_id,
        f"{sender}: {tissue} category mix by {audit['options']['period']}",
        svg,
        ("period", "category", "reports", "share"),
        rows,
        _legend(colours, names),
    )


def _ihc_chart(audit: dict[str, Any], sender: str, tissue: str, colours: dict[str, str]) -> str:
    names = audit["vocabulary"]["ihc"]
    flagged: dict[tuple[str, str], list[str]] = {}
    for test in audit["drift"]["flagged"]:
        if test["sender"] == sender and test["tissue"] == tissue:
            flagged.setdefault((test["period"], test["ihc"]), []).append(test["against"])
    columns = []
    drifting = set()
    rows: list[Row] = []
    for cell in _cells(audit, sender):
        part = cell["ihc"].get(tissue)
        if part is None:
            continue
        shown = part["shares"] is not None
        columns.append((cell["period"], part["total"], part["counts"] if shown else None))
        for name in names:
            share = part["shares"][name] if shown else None
            against = flagged.get((cell["period"], name), [])
            if against:
                drifting.add(cell["period"])
            rows.append(
                (cell["period"], name, part["counts"][name], _pct(share), ", ".join(against))
            )
    chart_id = _slug("ihc", sender, tissue)
    svg = _stacked_columns(chart_id, columns, names, colours, marked=drifting)
    return _figure(
        chart_id,
        f"{sender}: {tissue} IHC score distribution by {audit['options']['period']}"
        + (" (▲ drift flagged)" if drifting else ""),
        svg,
        ("period", "IHC", "reports", "share", "drift flagged against"),
        rows,
        _legend(colours, names),
    )


def _drift_table(audit: dict[str, Any]) -> str:
    drift = audit["drift"]
    header = ("sender", "period", "tissue", "IHC", "against", "share", "reference", "z", "p")
    rows = [
        (
            t["sender"],
            t["period"],
            t["tissue"],
            t["ihc"],
            t["against"],
            f"{_pct(t['share'])} ({t['count']}/{t['scored']})",
            f"{_pct(t['reference_share'])} ({t['reference_count']}/{t['reference_scored']})",
            t["z"],
            t["p_value"],
        )
        for t in drift["flagged"]
    ]
    note = (
        f'<p class="note" id="drift-note" data-flagged="{len(rows)}">Drift: each IHC class\'s '
        f"share in a sender's period against the sender's own earlier periods and against the "
        f"other senders in that period, by the {escape(drift['test'])}; flagged when "
        f"p &lt; {drift['alpha']} ({drift['tests']} tests run, groups of at least "
        f"{drift['min_reports']} scored reports; no correction for multiple tests).</p>"
    )
    body = _table(header, rows) if rows else "<p>No drift flagged.</p>"
    return (
        f'<figure id="drift"><figcaption>Drift flagged</figcaption>{note}{body}'
        f"{_download('Download CSV', 'drift.csv', header, rows)}</figure>"
    )


def _horizontal_bars(
    chart_id: str, bars: Sequence[tuple[str, int, str]], *, label_width: int = 230
) -> str:
    """One bar per (label, value, group), scaled to the largest value."""
    top, step, width = 6, 18, 380
    largest = max((value for _, value, _ in bars), default=0) or 1
    shapes = []
    for index, (label, value, group) in enumerate(bars):
        y = top + index * step
        length = width * value / largest
        shapes.append(
            f'<text x="{label_width - 6}" y="{y + 11}" text-anchor="end">{escape(label)}</text>'
            f'<rect class="bar" x="{label_width}" y="{y}" width="{length:.2f}" height="13" '
            f'fill="#4a7fb5" data-key="{escape(label)}" data-group="{escape(group)}" '
            f'data-value="{value}"><title>{escape(label)}: {value}</title></rect>'
            f'<text x="{label_width + length + 4:.2f}" y="{y + 11}">{value}</text>'
        )
    total_width = label_width + width + 60
    total_height = top * 2 + step * max(len(bars), 1)
    return (
        f'<svg id="{chart_id}-svg" role="img" width="{total_width}" height="{total_height}" '
        f'viewBox="0 0 {total_width} {total_height}">{"".join(shapes)}</svg>'
    )


def _funnel_chart(audit: dict[str, Any]) -> str:
    bars: list[tuple[str, int, str]] = []
    rows: list[Row] = []
    for cell in _totals(audit):
        sender, work = cell["sender"], cell["workup"]
        steps = (
            ("reports", cell["reports"]),
            ("IHC 2+", work["ihc2"]),
            ("IHC 2+ with reflex ISH", work["ihc2_with_ish"]),
            ("ISH group 2-4", work["groups_2_4"]),
            ("equivocal", work["equivocal"]),
            ("pending work-up", work["pending"]),
        )
        bars.extend((f"{sender}: {name}", value, sender) for name, value in steps)
        rows.append(
            (
                sender,
                cell["reports"],
                work["ihc2"],
                work["ihc2_with_ish"],
                _pct(work["ihc2_with_ish_share"]),
                work["ihc_to_ish_median_hours"],
                work["ihc_to_ish_timed"],
                _pct(work["equivocal_share"]),
                _pct(work["pending_share"]),
                work["groups_2_4"],
                _pct(work["groups_2_4_share"]),
            )
        )
    header = (
        "sender", "reports", "IHC 2+", "with ISH", "with ISH share", "median IHC→ISH hours",
        "timed", "equivocal share", "pending share", "ISH groups 2-4", "groups 2-4 share",
    )  # fmt: skip
    svg = _horizontal_bars("workup", bars)
    return _figure("workup", "Work-up funnel per sender (all periods)", svg, header, rows)


def _disagreement_chart(audit: dict[str, Any]) -> str:
    rows: list[Row] = []
    by_rule: dict[str, int] = {}
    for cell in _totals(audit):
        part = cell["disagreements"]
        rows.append((cell["sender"], "(reports)", part["reports"], _pct(part["share"])))
        for call, count in part["by_call"].items():
            rows.append((cell["sender"], f"lab call: {call}", count, ""))
        for rule, count in part["by_rule"].items():
            rows.append((cell["sender"], rule, count, ""))
            by_rule[rule] = by_rule.get(rule, 0) + count
    bars = [(rule, count, "all") for rule, count in sorted(by_rule.items(), key=lambda kv: -kv[1])]
    svg = _horizontal_bars("disagreements", bars) if bars else "<p>No disagreements.</p>"
    return _figure(
        "disagreements",
        "Reports whose lab-stated call differs from the guideline result, by rule fired",
        svg,
        ("sender", "lab call → our category, or rule fired", "reports", "share of reports"),
        rows,
    )


def _quality_tables(audit: dict[str, Any]) -> str:
    vocabulary = audit["vocabulary"]
    flags: list[tuple[str, str, int, float | None]] = []
    codes: list[tuple[str, str, str, int]] = []
    others: list[tuple[str, str, str, int]] = []
    for cell in _totals(audit):
        quality, sender = cell["quality"], cell["sender"]
        shares = quality["flag_shares"] or {}
        flags.extend(
            (sender, flag, quality["flags"][flag], shares.get(flag)) for flag in vocabulary["flags"]
        )
        codes.extend(
            (sender, item["kind"], item["code"], item["count"]) for item in quality["unused_codes"]
        )
        others.extend(
            (sender, "ingest warning", code, count) for code, count in quality["warnings"].items()
        )
        others.extend(
            (sender, "message rejected or failed", code, count)
            for code, count in quality["unprocessed"].items()
        )
    flag_bars = [(f"{sender}: {flag}", n, sender) for sender, flag, n, _ in flags if n]
    return "".join(
        (
            _figure(
                "quality-flags",
                "Flags raised, per sender (all periods)",
                _horizontal_bars("quality-flags", flag_bars),
                ("sender", "flag", "reports", "share of reports"),
                [(sender, flag, n, _pct(share)) for sender, flag, n, share in flags],
            ),
            _coded_figure(
                "quality-codes", "Results not used, by result code", codes, "why", "result code"
            ),
            _coded_figure(
                "quality-other",
                "Ingest warnings, and messages rejected or failed, by code",
                others,
                "what",
                "code",
            ),
        )
    )


def _coded_figure(
    chart_id: str, caption: str, rows: list[tuple[str, str, str, int]], what: str, code: str
) -> str:
    bars = [(f"{sender}: {name}", count, kind) for sender, kind, name, count in rows]
    return _figure(
        chart_id, caption, _horizontal_bars(chart_id, bars), ("sender", what, code, "count"), rows
    )
