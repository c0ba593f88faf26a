"""The adapter's CodeSystem and ValueSets: generated from the decision table, complete, valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhir_validation import assert_valid_r4
from peers_support import errors, medplum_validate

from adapter.classify.table import RULES
from adapter.config import DEFAULT_CODESYSTEM
from adapter.emit.vocabulary import (
    REGENERATE,
    Kind,
    code_system,
    render_markdown,
    value_set_url,
    value_sets,
)
from adapter.model import Category, FlagCode

ROOT = Path(__file__).resolve().parents[2]
GOLDENS = sorted((ROOT / "fixtures" / "expected").glob("*/*.ndjson"))
CS = code_system(DEFAULT_CODESYSTEM)
CODES = {c["code"]: {p["valueCode"] for p in c["property"]} for c in CS["concept"]}


def _codings(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "system" in node and "code" in node:
            found.append(node)
        for value in node.values():
            found.extend(_codings(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_codings(value))
    return found


def test_vocabulary_md_is_up_to_date() -> None:
    """docs/vocabulary.md is the rendering of the generated resources."""
    text = (ROOT / "docs" / "vocabulary.md").read_text(encoding="utf-8")
    assert text == render_markdown(DEFAULT_CODESYSTEM), f"regenerate with `{REGENERATE}`"


def test_every_category_flag_and_rule_is_a_concept_of_its_kind() -> None:
    """Nothing is listed by hand: the enums and the table are the concepts."""
    for category in Category:
        assert Kind.CATEGORY.value in CODES[category.value]
    for flag in FlagCode:
        assert Kind.FLAG.value in CODES[flag.value]
    for rule in RULES:
        assert Kind.RULE.value in CODES[rule.id]
    assert CS["count"] == len(CS["concept"]) == len(CODES)


def test_every_code_the_goldens_use_is_in_the_codesystem() -> None:
    """Every coding in the adapter's system, in every golden Bundle, is a concept."""
    used = {
        coding["code"]
        for path in GOLDENS
        for line in path.read_text(encoding="utf-8").splitlines()
        for coding in _codings(json.loads(line))
        if coding["system"] == DEFAULT_CODESYSTEM
    }
    assert len(used) > 30
    assert sorted(used - set(CODES)) == []


def test_value_sets_hold_exactly_the_codes_of_their_kind() -> None:
    """One ValueSet per kind, at <codesystem>/vs/<kind>, listing that kind's concepts."""
    for value_set in value_sets(DEFAULT_CODESYSTEM):
        kind = Kind(value_set["id"].removeprefix("her2-adapter-"))
        assert value_set["url"] == value_set_url(DEFAULT_CODESYSTEM, kind)
        (include,) = value_set["compose"]["include"]
        assert include["system"] == CS["url"]
        listed = [c["code"] for c in include["concept"]]
        assert listed == [code for code, kinds in CODES.items() if kind.value in kinds]


def test_resources_follow_the_configured_url() -> None:
    """A deployment's own canonical URL is the CodeSystem's and every ValueSet's base."""
    url = "https://fhir.example.org/CodeSystem/her2"
    assert code_system(url)["url"] == url
    assert all(v["url"].startswith(url + "/vs/") for v in value_sets(url))


@pytest.mark.parametrize(
    "resource",
    [CS, *value_sets(DEFAULT_CODESYSTEM)],
    ids=lambda r: f"{r['resourceType']}/{r['id']}",
)
def test_resources_are_valid_r4(resource: dict[str, Any]) -> None:
    """The R4 JSON schema and fhir.resources accept them."""
    assert_valid_r4(resource)


def test_medplum_accepts_them(tmp_path: Path) -> None:
    """Medplum's validator finds no error in the CodeSystem or any ValueSet."""
    path = tmp_path / "vocabulary.ndjson"
    lines = [json.dumps(r) for r in (CS, *value_sets(DEFAULT_CODESYSTEM))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    verdicts = medplum_validate(path)
    assert len(verdicts) == 1 + len(Kind)
    assert [(v["id"], errors(v)) for v in verdicts if errors(v)] == []
