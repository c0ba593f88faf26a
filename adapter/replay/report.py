"""Replay reports: the summary table, JUnit XML, JSON and one self-contained HTML page."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from adapter.replay.collect import MessageResult, Status, Summary

_STYLES = {
    Status.SAME: "green",
    Status.CHANGED: "yellow",
    Status.NEW: "cyan",
    Status.MISSING: "magenta",
    Status.ERROR: "red",
}
_FAILURES = (Status.CHANGED, Status.MISSING, Status.ERROR)
_SHOWN_IN_CONSOLE = 50


def print_summary(summary: Summary, console: Console) -> None:
    """Counts per status, then each message that is not the same (the first 50)."""
    counts = Table(title="Replay", show_lines=False)
    counts.add_column("status")
    counts.add_column("messages", justify="right")
    for status, count in summary.counts.items():
        counts.add_row(Text(status.value, style=_STYLES[status]), str(count))
    counts.add_row("total", str(len(summary.results)), style="bold")
    if summary.record:
        counts.add_row("recorded", str(summary.recorded), style="bold")
    console.print(counts)
    # when recording, new messages are the point of the run: list only what needs a look
    quiet = (Status.SAME, Status.NEW) if summary.record else (Status.SAME,)
    different = [r for r in summary.results if r.status not in quiet]
    if not different:
        return
    table = Table(show_lines=True)
    for column in ("key", "status", "what", "source"):
        table.add_column(column, overflow="fold")
    for result in different[:_SHOWN_IN_CONSOLE]:
        what = "\n".join([*result.details, *([result.note] if result.note else [])])
        shown = result.status.value + (" (recorded)" if result.recorded else "")
        # Keys, details and paths are data: Text() keeps rich from reading "[flag]" as markup.
        table.add_row(
            Text(result.key),
            Text(shown, style=_STYLES[result.status]),
            Text(what),
            Text(result.origin),
        )
    console.print(table)
    if len(different) > _SHOWN_IN_CONSOLE:
        console.print(f"... and {len(different) - _SHOWN_IN_CONSOLE} more (see --json / --html)")


def write_junit(summary: Summary, path: Path) -> None:
    """One testcase per message; a failure for each changed, missing or error message."""
    counts = summary.counts
    suite = ElementTree.Element(
        "testsuite",
        name="her2-adapter replay",
        tests=str(len(summary.results)),
        failures=str(sum(counts[s] for s in _FAILURES)),
        errors="0",
        skipped=str(counts[Status.NEW]),
    )
    for result in summary.results:
        case = ElementTree.SubElement(
            suite, "testcase", classname=_classname(result), name=result.key
        )
        text = "\n".join([*result.details, *([result.note] if result.note else [])])
        if result.status in _FAILURES:
            failure = ElementTree.SubElement(
                case, "failure", type=result.status.value, message=_first_line(result)
            )
            failure.text = text
        elif result.status is Status.NEW:
            ElementTree.SubElement(case, "skipped", message=f"new: no expected file. {text}")
    tree = ElementTree.ElementTree(suite)
    ElementTree.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _classname(result: MessageResult) -> str:
    return "replay." + result.origin.split("#", 1)[0].replace("/", ".").lstrip(".")


def _first_line(result: MessageResult) -> str:
    first = result.details[0] if result.details else "no message with this key was replayed"
    return f"{result.status.value}: {first}"


def as_json(summary: Summary) -> dict[str, Any]:
    return {
        "counts": {status.value: count for status, count in summary.counts.items()},
        "total": len(summary.results),
        "recorded": summary.recorded,
        "exit_code": summary.exit_code,
        "messages": [
            {
                "key": r.key,
                "status": r.status.value,
                "origin": r.origin,
                "details": list(r.details),
                "recorded": r.recorded,
                **({"note": r.note} if r.note else {}),
            }
            for r in summary.results
        ],
    }


def write_json(summary: Summary, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(as_json(summary), option=orjson.OPT_INDENT_2) + b"\n")


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top;text-align:left}
td.n{text-align:right}
.same{color:#176117}.changed{color:#8a5a00}.new{color:#005f73}.missing{color:#7b1fa2}
.error{color:#b00020}
pre{margin:0;white-space:pre-wrap;font-size:.9em}
"""


def write_html(summary: Summary, path: Path) -> None:
    """One file, no external assets; every value from a message or file is escaped."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(_html(summary)), encoding="utf-8")


def _html(summary: Summary) -> Iterator[str]:
    e = html.escape
    yield "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
    yield f"<title>her2-adapter replay</title><style>{_CSS}</style></head><body>"
    yield "<h1>her2-adapter replay</h1><table><tr><th>status</th><th>messages</th></tr>"
    for status, count in summary.counts.items():
        yield f"<tr><td class='{status.value}'>{status.value}</td><td class='n'>{count}</td></tr>"
    yield f"<tr><th>total</th><td class='n'>{len(summary.results)}</td></tr></table>"
    different = [r for r in summary.results if r.status is not Status.SAME]
    if not different:
        yield "<p>Every message is the same.</p></body></html>\n"
        return
    yield "<table><tr><th>key</th><th>status</th><th>what</th><th>source</th></tr>"
    for r in different:
        lines = [*r.details, *([r.note] if r.note else [])]
        shown = r.status.value + (" (recorded)" if r.recorded else "")
        yield (
            f"<tr><td>{e(r.key)}</td><td class='{r.status.value}'>{e(shown)}</td>"
            f"<td><pre>{e(chr(10).join(lines))}</pre></td><td>{e(r.origin)}</td></tr>"
        )
    yield "</table></body></html>\n"


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} msg/s")


def progress_bar(console: Console, *, shown: bool = True) -> Progress:
    """Messages done, rate and (when the expected count gives a total) time remaining.

    Not shown, it writes nothing at all (a hidden task would still leave a blank line).
    """
    return Progress(
        SpinnerColumn(),
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not shown,
    )
