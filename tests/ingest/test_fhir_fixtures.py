"""Every fixture in fixtures/fhir read and classified, compared with the hand-written
expectations in fixtures/fhir/expectations.toml (written from the spec, not from output)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from mapping_support import example_mappings

from adapter.classify import classify
from adapter.config import Settings
from adapter.errors import AdapterError
from adapter.ingest import fhir
from adapter.mapping import Mappings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"
EXPECTATIONS: dict[str, Any] = tomllib.loads((FIXTURES / "expectations.toml").read_text())
FILES = sorted(p.name for p in FIXTURES.iterdir() if p.suffix in (".json", ".ndjson"))


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return example_mappings()


def test_every_fixture_has_an_expectation() -> None:
    """No fixture without an expectation and no expectation without a fixture; at least 20."""
    assert sorted(EXPECTATIONS) == FILES
    assert len(FILES) >= 20


def test_bad_fixtures_are_errors() -> None:
    """Files named bad-* are exactly those expected to be rejected with a FHIR error."""
    for name in FILES:
        if name.startswith("bad-"):
            assert str(EXPECTATIONS[name]["error"]).startswith("FHIR-"), name


@pytest.mark.parametrize("name", FILES)
def test_fixture(mappings: Mappings, name: str) -> None:
    """The fixture classifies (or is rejected) as its expectation says."""
    expected = EXPECTATIONS[name]
    data = (FIXTURES / name).read_bytes()
    if "error" in expected and "records" not in expected:
        with pytest.raises(AdapterError) as raised:
            fhir.to_records(data, mappings, Settings())
        assert raised.value.code == expected["error"]
        return
    _, records = fhir.to_records(data, mappings, Settings())
    assert len(records) == len(expected["records"])
    for record, want in zip(records, expected["records"], strict=True):
        if want.get("withdrawn"):
            assert record.observations == ()  # it withdraws results: tests/cases/ says how
            continue
        result = classify(record)
        official = result.official_result
        assert (official.value if official is not None else "none") == want["official"]
        assert result.category.value == want["category"]
        assert result.ish_group == want.get("ish_group")
        assert (result.er_result.value if result.er_result else None) == want.get("er_result")
        assert (result.pgr_result.value if result.pgr_result else None) == want.get("pgr_result")
        assert (result.hr_status.value if result.hr_status else None) == want.get("hr_status")
        if "tissue" in want:
            assert result.tissue.value == want["tissue"]
        if "report_status" in want:
            assert record.report_status.value == want["report_status"]
        assert set(want.get("flags", ())) <= {flag.code.value for flag in result.flags}
        assert set(want.get("rules", ())) <= {rule.rule_id for rule in result.rules}
        assert set(want.get("warnings", ())) <= {warning.code for warning in record.warnings}
        unused_codes = {u.provenance.code.code for u in record.unused if u.provenance.code}
        assert set(want.get("unused_codes", ())) <= unused_codes
