"""``her2-adapter audit``: over a store or over files, as tables, JSON and HTML."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from audit_traffic import (
    LAB_A,
    LAB_B,
    Case,
    audit_of,
    cell,
    known_traffic,
    message,
    store_messages,
)
from typer.testing import CliRunner

from adapter.cli import app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_json_on_stdout_is_the_stores_audit(runner: CliRunner, traffic_store_url: str) -> None:
    """`--json -` writes the store's audit, the same figures as the library call."""
    result = runner.invoke(app, ["audit", "--from-store", traffic_store_url, "--json", "-"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == audit_of(traffic_store_url)


def test_tables_html_and_json_files(
    runner: CliRunner, traffic_store_url: str, tmp_path: Path
) -> None:
    """Tables on the terminal, with --html and --json files beside them."""
    html, json_file = tmp_path / "audit.html", tmp_path / "audit.json"
    result = runner.invoke(
        app,
        ["audit", "--from-store", traffic_store_url, "--html", str(html), "--json", str(json_file)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "IHC drift flagged" in result.stdout
    assert "LAB-B^LAB-B PATHOLOGY │ 2024-04 │ breast │ 0 null" in result.stdout
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert orjson.loads(json_file.read_bytes())["senders"][0] == LAB_A


def test_files_give_the_same_figures_as_the_store(
    runner: CliRunner, traffic_store_url: str, tmp_path: Path
) -> None:
    """The known traffic as message files in a folder, audited without a store."""
    for number, case in enumerate(known_traffic(), start=1):
        (tmp_path / f"m{number}.hl7").write_bytes(message(case, number))
    result = runner.invoke(app, ["audit", str(tmp_path), "--json", "-", "--sender", LAB_B])
    assert result.exit_code == 0, result.output
    from_files = orjson.loads(result.stdout)
    from_store = audit_of(traffic_store_url, sender=LAB_B)
    assert from_files["source"] == "files"
    assert from_files["cells"] == from_store["cells"]
    assert from_files["drift"] == from_store["drift"]


CASES = Path(__file__).resolve().parents[2] / "fixtures" / "cases"
GOODHEALTH = "COPATH^GOODHEALTH PATHOLOGY"


@pytest.mark.parametrize(
    ("folder", "category"),
    [("ihc2-then-ish-g2", "HER2-equivocal"), ("two-groups-one-message", "HER2-low")],
)
def test_a_case_of_several_orders_counts_once(
    runner: CliRunner, tmp_path: Path, folder: str, category: str
) -> None:
    """An IHC 2+ and its reflex ISH (two messages, or two orders of one message) are one case:
    one report with its ISH, over files as in the store."""
    files = sorted((CASES / folder).iterdir())
    result = runner.invoke(app, ["audit", *map(str, files), "--json", "-"])
    assert result.exit_code == 0, result.output
    from_files = orjson.loads(result.stdout)
    month = cell(from_files, GOODHEALTH, "2026-03")
    assert month["reports"] == 1
    assert month["categories"]["breast"]["counts"][category] == 1
    assert (month["workup"]["ihc2"], month["workup"]["ihc2_with_ish"]) == (1, 1)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store_messages(url, [path.read_bytes() for path in files])
    assert from_files["cells"] == audit_of(url)["cells"]


def test_a_rejected_file_message_is_counted_undated(runner: CliRunner, tmp_path: Path) -> None:
    """A file message with no HER2 result counts, by error code, in the undated period."""
    path = tmp_path / "none.hl7"
    path.write_bytes(message(Case("LAB-X", known_traffic()[0].day, ihc=None), 1))
    result = runner.invoke(app, ["audit", str(path), "--json", "-"])
    assert result.exit_code == 0, result.output
    audit = orjson.loads(result.stdout)
    assert cell(audit, "LAB-X^LAB-X PATHOLOGY", "undated")["quality"]["unprocessed"] == {
        "NO-HER2-RESULT": 1
    }


@pytest.mark.parametrize(
    "arguments",
    [
        ["audit"],
        ["audit", "x.hl7", "--from-store", "sqlite:///x.db"],
        ["audit", "--from-store", "sqlite:///x.db", "--period", "year"],
        ["audit", "--from-store", "sqlite:///x.db", "--since", "March"],
        ["audit", "--from-store", "sqlite:///x.db", "--min-reports", "0"],
        ["audit", "--from-store", "mysql://x"],
        ["audit", "no-such-file.hl7"],
    ],
)
def test_usage_errors_exit_2(runner: CliRunner, arguments: list[str]) -> None:
    """Neither or both inputs, a bad period, day or threshold, an unknown store or file: exit 2."""
    result = runner.invoke(app, arguments)
    assert result.exit_code == 2
    assert result.stderr.startswith("her2-adapter: ")
