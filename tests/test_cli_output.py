"""What ``her2-adapter`` shows a user: --summary counts, --help, rich tables, log lines."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from mapping_support import example_mappings_dir
from rich.console import Console
from typer.testing import CliRunner

from adapter.cli import app
from adapter.config import DEFAULT_CODESYSTEM
from adapter.replay.collect import MessageResult, Status, Summary
from adapter.replay.report import print_summary

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
EXPECTED = FIXTURES / "expected"
CODESYSTEM = DEFAULT_CODESYSTEM


def _golden_counts(goldens: list[Path]) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Categories and HR statuses read from the golden Bundles' components; error codes."""
    categories: Counter[str] = Counter()
    hr: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for golden in goldens:
        for line in golden.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            if "error" in item:
                errors[item["error"]["code"]] += 1
                continue
            for entry in item["entry"]:
                components = {
                    c["code"]["coding"][0]["code"]: c["valueCodeableConcept"]["coding"][0]["code"]
                    for c in entry["resource"].get("component", [])
                    if c["code"]["coding"][0].get("system") == CODESYSTEM
                    and "valueCodeableConcept" in c
                }
                if "her2-category" in components:
                    categories[components["her2-category"]] += 1
                    hr[components.get("hr-status", "no ER/PgR")] += 1
    return categories, hr, errors


def _parse(line: str, label: str) -> Counter[str]:
    assert line.startswith(f"{label}: "), line
    body = line.removeprefix(f"{label}: ")
    if body == "none":
        return Counter()
    return Counter({name: int(n) for name, n in (p.rsplit(" ", 1) for p in body.split(", "))})


@pytest.mark.parametrize("kind", ["hl7v2", "fhir"])
def test_summary_counts_match_the_goldens(kind: str) -> None:
    """--summary over every fixture with a golden: the counts the golden Bundles hold.

    Each golden is one file converted on its own, and one run combines its messages into cases
    (docs/cases.md): FHIR fixtures share patients and specimens, so a run per file.
    """
    goldens = sorted((EXPECTED / kind).glob("*.ndjson"))
    inputs = [str(FIXTURES / kind / g.name.removesuffix(".ndjson")) for g in goldens]
    if kind == "fhir":
        _summary_per_file(goldens, inputs)
        return
    examples = ["--mappings", str(example_mappings_dir())]  # the goldens' exlab-* need it
    result = CliRunner().invoke(app, ["convert", "--summary", *examples, *inputs])
    categories, hr, errors = _golden_counts(goldens)
    assert result.exit_code == (1 if errors else 0)
    lines = result.stderr.splitlines()[-4:]
    messages = sum(len(g.read_text(encoding="utf-8").splitlines()) for g in goldens)
    rejected = sum(errors.values())
    assert (
        lines[0] == f"messages: {messages} ({messages - rejected} converted, {rejected} rejected)"
    )
    assert _parse(lines[1], "HER2 category") == categories
    assert _parse(lines[2], "HR status") == hr
    assert _parse(lines[3], "rejected") == errors
    assert sum(categories.values()) > 20  # the corpus was read, not an empty run
    # a value not understood is rejected (AE) and its Bundle, which says so, is still written
    with_bundle = sum(
        "bundle" in json.loads(line)
        for g in goldens
        for line in g.read_text(encoding="utf-8").splitlines()
    )
    assert len(result.stdout.splitlines()) == messages - rejected + with_bundle


def _summary_per_file(goldens: list[Path], inputs: list[str]) -> None:
    """The same check as above, one ``convert --summary`` run per fixture file, counts summed."""
    examples = ["--mappings", str(example_mappings_dir())]
    summed: list[Counter[str]] = [Counter(), Counter(), Counter()]
    for path in inputs:
        result = CliRunner().invoke(app, ["convert", "--summary", *examples, path])
        lines = result.stderr.splitlines()[-3:]
        for total, (line, label) in zip(
            summed, zip(lines, ("HER2 category", "HR status", "rejected"), strict=True), strict=True
        ):
            total.update(_parse(line, label))
    categories, hr, errors = _golden_counts(goldens)
    # A case whose every result was withdrawn has a report entered-in-error and no category in
    # its Bundle; the summary counts its record as having no HER2 result and no ER/PgR left.
    withdrawn = sum(
        entry["resource"]["resourceType"] == "DiagnosticReport"
        and entry["resource"]["status"] == "entered-in-error"
        for golden in goldens
        for line in golden.read_text(encoding="utf-8").splitlines()
        for entry in json.loads(line).get("entry", [])
    )
    categories["HER2-not-reported"] += withdrawn
    hr["no ER/PgR"] += withdrawn
    assert tuple(summed) == (categories, hr, errors)
    assert sum(summed[0].values()) > 20  # the corpus was read, not an empty run


def test_summary_of_a_rejection_only_run() -> None:
    bad = str(FIXTURES / "hl7v2" / "bad-glucose-only.hl7")
    result = CliRunner().invoke(app, ["convert", "--summary", bad])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[1:] == [
        "messages: 1 (0 converted, 1 rejected)",
        "HER2 category: none",
        "HR status: none",
        "rejected: NO-HER2-RESULT 1",
    ]


def _commands() -> list[list[str]]:
    return [["--help"], *([name, "--help"] for name in _names()), ["mappings", "check", "--help"]]


def _names() -> list[str]:
    from typer.main import get_command

    return [n for n in get_command(app).commands if n != "mappings"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("argv", _commands(), ids=lambda argv: " ".join(argv[:-1]) or "app")
def test_help_shows_readable_metavars(argv: list[str]) -> None:
    """No typer type labels (<bool>, <list[str]>, <path>) in any command's help."""
    result = CliRunner().invoke(app, argv, terminal_width=140)
    assert result.exit_code == 0
    assert not re.search(r"<(bool|int|float|str|path|list\[\w+\])>", result.stdout), result.stdout


def test_convert_help_names_its_values() -> None:
    out = CliRunner().invoke(app, ["convert", "--help"], terminal_width=140).stdout
    assert re.search(r"--out\s+DIR", out)
    assert re.search(r"--log-level\s+LEVEL", out)
    assert "INPUT..." in out


def test_replay_table_shows_brackets_as_written() -> None:
    """Rich markup never swallows data: [flag], [rule], [her2-category] stay in the table."""
    result = MessageResult(
        key="msg-[rule]",
        status=Status.CHANGED,
        origin="inbox/[her2-category].hl7#1",
        details=("[flag] heterogeneity added", "[bold]not bold[/bold]"),
    )
    console = Console(record=True, width=200, color_system=None)
    print_summary(Summary(results=[result], record=False), console)
    text = console.export_text()
    for shown in ("msg-[rule]", "[her2-category].hl7", "[flag] heterogeneity", "[bold]not bold"):
        assert shown in text, text


def test_json_logs_one_event_a_line_without_patient_data(tmp_path: Path) -> None:
    """--log-format json --log-level info: the rejection is an event with its id and code."""
    bad = FIXTURES / "hl7v2" / "bad-glucose-only.hl7"
    result = CliRunner().invoke(
        app, ["convert", "--log-level", "info", "--log-format", "json", str(bad)]
    )
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (event,) = events
    assert event["event"] == "message rejected"
    assert event["level"] == "info"
    assert event["message_id"] == "bad-glucose-only"
    assert event["code"] == "NO-HER2-RESULT"
    assert set(event) == {"time", "level", "logger", "event", "message_id", "code"}


def test_default_convert_logs_nothing_at_info() -> None:
    bad = FIXTURES / "hl7v2" / "bad-glucose-only.hl7"
    result = CliRunner().invoke(app, ["convert", str(bad)])
    assert len(result.stderr.splitlines()) == 1  # the rejection line, no log event


def test_log_level_from_the_environment() -> None:
    bad = FIXTURES / "hl7v2" / "bad-glucose-only.hl7"
    result = CliRunner().invoke(app, ["convert", str(bad)], env={"HER2_LOG_LEVEL": "info"})
    (log_line,) = [line for line in result.stderr.splitlines() if "message rejected" in line]
    assert re.fullmatch(
        r"\S+ INFO her2_adapter\.pipeline message rejected message_id=bad-glucose-only "
        r"code=NO-HER2-RESULT",
        log_line,
    )


def test_progress_bar_on_a_long_run_keeps_every_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """--progress on a run past the threshold: the bar starts, lines print above it, unmangled."""
    from adapter import cli_progress

    monkeypatch.setattr(cli_progress, "SHOW_AFTER_SECONDS", 0.0)
    started: list[int] = []
    real_start = cli_progress.Reporter._start

    def start(self: cli_progress.Reporter) -> None:
        started.append(self.files)
        real_start(self)

    monkeypatch.setattr(cli_progress.Reporter, "_start", start)
    bad = str(FIXTURES / "hl7v2" / "bad-glucose-only.hl7")
    good = str(FIXTURES / "hl7v2" / "batch-3.hl7")
    result = CliRunner().invoke(app, ["convert", "--progress", "--summary", bad, good])
    assert started == [2]
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"{bad}: bad-glucose-only: NO-HER2-RESULT: ") for line in lines)
    assert "messages: 4 (3 converted, 1 rejected)" in lines
    assert len(result.stdout.splitlines()) == 3


def test_no_progress_bar_unless_asked_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapter import cli_progress

    monkeypatch.setattr(cli_progress, "SHOW_AFTER_SECONDS", 0.0)
    monkeypatch.setattr(cli_progress.Reporter, "_start", lambda self: pytest.fail("bar shown"))
    result = CliRunner().invoke(app, ["convert", str(FIXTURES / "hl7v2" / "batch-3.hl7")])
    assert result.exit_code == 0
