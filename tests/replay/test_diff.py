"""Semantic Bundle diffs and field-level HL7 v2 diffs, and ``her2-adapter diff``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from adapter.cli import app
from adapter.replay.diff import diff_json, dump_json, load_json
from adapter.replay.diff_hl7 import diff_messages, parse

CS = "http://her2-adapter.org/fhir/CodeSystem/her2-adapter"


def concept(code: str) -> dict[str, Any]:
    return {"coding": [{"system": CS, "code": code}], "text": code}


def rule(rule_id: str) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": CS, "code": "rule"}]},
        "valueCodeableConcept": {"coding": [{"system": CS, "code": rule_id}], "text": "why"},
    }


def bundle(category: str, rules: list[str], value: str = "2.30") -> dict[str, Any]:
    summary = {
        "resourceType": "Observation",
        "id": "s1",
        "code": {"coding": [{"system": "http://loinc.org", "code": "48676-1"}]},
        "component": [rule(r) for r in rules],
        "valueQuantity": {"value": load_json(value), "unit": "ratio"},
    }
    report = {
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "meta": {"lastUpdated": "2024-01-01T00:00:00Z"},
        "result": [{"reference": "urn:uuid:s1"}],
        "conclusionCode": [concept(category), concept("HR-positive")],
    }
    return {
        "resourceType": "Bundle",
        "id": "b",
        "type": "transaction",
        "entry": [{"resource": summary}, {"resource": report}],
    }


def test_key_order_whitespace_and_volatile_paths_are_ignored() -> None:
    """Reordered keys and a new meta.lastUpdated are the same Bundle."""
    before = bundle("HER2-negative", ["R1"])
    reordered = orjson.dumps(
        load_json(dump_json(before)),
        default=lambda number: orjson.Fragment(str(number)),
        option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2,
    )
    after = load_json(reordered)
    after["entry"][1]["resource"]["meta"]["lastUpdated"] = "2025-06-01T00:00:00Z"
    assert diff_json(before, after).same


def test_conclusion_code_change_is_named_with_the_rules_behind_it() -> None:
    """A category change reads DiagnosticReport.conclusionCode: old -> new, rules before/after."""
    result = diff_json(bundle("HER2-negative", ["R-NEG"]), bundle("HER2-low", ["R-LOW"]))
    assert "DiagnosticReport.conclusionCode: HER2-negative -> HER2-low" in result.lines()
    assert "Observation[48676-1].component[rule]: R-NEG -> R-LOW" in result.lines()
    assert "DiagnosticReport rules: R-NEG -> R-LOW" in result.lines()


def test_numbers_are_compared_digit_for_digit() -> None:
    """2.30 and 2.3 are different reported values."""
    result = diff_json(bundle("X", [], "2.30"), bundle("X", [], "2.3"))
    assert [str(c) for c in result.changes] == [
        "Observation[48676-1].valueQuantity: 2.30 ratio -> 2.3 ratio"
    ]


def test_added_and_removed_resources_are_named() -> None:
    """An entry only in one Bundle is reported as added or removed."""
    before = bundle("X", [])
    after = copy.deepcopy(before)
    del after["entry"][1]
    after["entry"].append({"resource": {"resourceType": "Specimen", "id": "sp"}})
    assert diff_json(before, after).lines() == ["DiagnosticReport: removed", "Specimen: added"]


def test_code_list_order_does_not_matter() -> None:
    """Lists of codes are compared as sets: the same codes in another order are the same."""
    before = bundle("X", [])
    after = copy.deepcopy(before)
    after["entry"][1]["resource"]["conclusionCode"].reverse()
    assert after != before
    assert diff_json(before, after).same


def test_ignore_list_takes_type_scoped_paths() -> None:
    """``DiagnosticReport.conclusionCode`` ignores that element of DiagnosticReports only."""
    before, after = bundle("A", ["R"]), bundle("B", ["R"])
    assert diff_json(before, after, ["DiagnosticReport.conclusionCode"]).same


MESSAGE = (
    "MSH|^~\\&|LAB|FAC|||20240101||ORU^R01|1|P|2.5\r"
    "PID|1||X^^^A||DOE^JANE\r"
    "OBX|1|ST|C^Code^LN||1+\r"
)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        pytest.param(MESSAGE.replace("DOE^JANE", "DOE^JANE||"), [], id="trailing-empty-fields"),
        pytest.param(MESSAGE.replace("DOE^JANE", "DOE^JANE^^"), [], id="trailing-components"),
        pytest.param(
            MESSAGE.replace("DOE^JANE", "DOE^JOAN"), ["PID-5.2: JANE -> JOAN"], id="component"
        ),
        pytest.param(MESSAGE.replace("||1+", "||2+"), ["OBX-5: 1+ -> 2+"], id="field"),
        pytest.param(MESSAGE + "OBX|2|ST|C^Code^LN||3+\r", ["OBX[2]: added"], id="second-segment"),
    ],
)
def test_hl7_fields_are_compared_by_name(after: str, expected: list[str]) -> None:
    """HL7 v2 differences are named SEG[n]-field.component; trailing empties are equal."""
    changes = diff_messages(parse(MESSAGE.encode()), parse(after.encode()))
    assert [str(c) for c in changes] == expected


def test_hl7_ignore_takes_field_names() -> None:
    """``MSH-7`` in the ignore list drops the message time."""
    after = MESSAGE.replace("20240101", "20250101")
    assert diff_messages(parse(MESSAGE.encode()), parse(after.encode()), ["MSH-7"]) == []


def test_diff_command_exit_codes(tmp_path: Path) -> None:
    """``diff A B`` exits 0 when equal, 1 with the differences, 2 for different kinds."""
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.hl7"
    a.write_bytes(dump_json(bundle("HER2-negative", ["R"])))
    b.write_bytes(dump_json(bundle("HER2-low", ["R"])))
    c.write_text(MESSAGE)
    runner = CliRunner()
    assert runner.invoke(app, ["diff", str(a), str(a)]).exit_code == 0
    changed = runner.invoke(app, ["diff", str(a), str(b)])
    assert changed.exit_code == 1
    assert "DiagnosticReport.conclusionCode: HER2-negative -> HER2-low" in changed.output
    assert runner.invoke(app, ["diff", str(a), str(c)]).exit_code == 2
