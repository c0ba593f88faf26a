"""The golden Bundles meet the profiles they claim, judged by software other than our own.

- mCODE STU4 TumorMarkerTest (hl7.fhir.us.mcode 4.0.0) and US Core 5.0.1 Patient: Medplum's
  validator (@medplum/core 5.2.13) with the published StructureDefinitions (tests/peers).
- US Core 5.0.1 DiagnosticReport for Laboratory Results Reporting, which no package here carries:
  its mandatory and must-support elements, checked as the published profile states them
  (listed in docs/output.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from peers_support import errors, medplum_validate

from adapter.emit.profiles import (
    MCODE_TUMOR_MARKER_TEST,
    US_CORE_DIAGNOSTIC_REPORT_LAB,
    US_CORE_PATIENT,
)

GOLDENS = sorted((Path(__file__).resolve().parents[2] / "fixtures" / "expected").glob("*/*.ndjson"))
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
REPORT_STATUSES = {
    *("registered", "partial", "preliminary", "final", "amended", "corrected", "appended"),
    *("cancelled", "entered-in-error", "unknown"),
}


def _bundles() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in GOLDENS:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            document = json.loads(line)
            document = document.get("bundle", document)  # {"error", "bundle"}: a report too
            if document.get("resourceType") == "Bundle":
                yield f"{path.name}:{number}", document


BUNDLES = list(_bundles())


def _is(entry: dict[str, Any], kind: str) -> bool:
    return bool(entry.get("resource", {}).get("resourceType") == kind)


@cache
def _verdicts() -> list[dict[str, Any]]:
    return medplum_validate(*GOLDENS)


def test_goldens_carry_every_kind_of_resource() -> None:
    """The corpus is large enough to mean something: every emitted type, dozens of reports."""
    kinds = {e["resource"]["resourceType"] for _, b in BUNDLES for e in b.get("entry", ())}
    assert kinds >= {"Patient", "Organization", "Specimen", "Observation", "DiagnosticReport"}
    assert sum(1 for _, b in BUNDLES for e in b.get("entry", ()) if _is(e, "DiagnosticReport")) > 80


def test_every_observation_is_a_tumor_marker_test_with_zero_errors() -> None:
    """Each HER2 / ER / PgR Observation with a value claims TumorMarkerTest and meets it."""
    observations = [v for v in _verdicts() if v["resourceType"] == "Observation"]
    claimed = [v for v in observations if v["profile"] == MCODE_TUMOR_MARKER_TEST]
    assert len(claimed) > 300
    assert all(v["loaded"] for v in claimed)
    failing = [(v["file"], v["id"], errors(v)) for v in claimed if errors(v)]
    assert failing == []
    for verdict in observations:
        if verdict["profile"] is None:
            resource = _resource(verdict)
            assert "dataAbsentReason" in resource, "only a test with no value claims nothing"


def test_every_patient_with_demographics_is_us_core_with_zero_errors() -> None:
    """A Patient with identifiers, name and sex claims US Core Patient 5.0.1 and meets it."""
    patients = [v for v in _verdicts() if v["resourceType"] == "Patient"]
    claimed = [v for v in patients if v["profile"] == US_CORE_PATIENT]
    assert len(claimed) > 80
    assert all(v["loaded"] for v in claimed)
    assert [(v["file"], errors(v)) for v in claimed if errors(v)] == []
    for verdict in patients:
        if verdict["profile"] is None:
            resource = _resource(verdict)
            complete = resource.get("identifier") and resource.get("name") and "gender" in resource
            assert not complete, "a Patient with what US Core requires claims it"


def test_every_resource_is_valid_r4_for_medplum() -> None:
    """Base R4, by Medplum's validator: no error in any resource of any golden Bundle."""
    assert [(v["file"], v["resourceType"], errors(v)) for v in _verdicts() if errors(v)] == []


def test_the_validator_finds_errors_where_there_are_some(tmp_path: Path) -> None:
    """A TumorMarkerTest without category and a US Core Patient without name are refused."""
    broken = tmp_path / "broken.ndjson"
    observation = {
        "resourceType": "Observation",
        "meta": {"profile": [MCODE_TUMOR_MARKER_TEST]},
        "status": "final",
        "code": {"text": "HER2"},
        "subject": {"reference": "Patient/p"},
        "valueString": "3+",
    }
    patient = {
        "resourceType": "Patient",
        "meta": {"profile": [US_CORE_PATIENT]},
        "identifier": [{"system": "urn:oid:1.2.3", "value": "1"}],
    }
    broken.write_text(f"{json.dumps(observation)}\n{json.dumps(patient)}\n", encoding="utf-8")
    found = {v["resourceType"]: errors(v) for v in medplum_validate(broken)}
    assert any(e["expression"] == ["Observation.category"] for e in found["Observation"])
    assert any(e["expression"] == ["Patient.gender"] for e in found["Patient"])


# --------------------------------------------------------------------------------------------
# US Core 5.0.1 DiagnosticReport for Laboratory Results Reporting, element by element
# --------------------------------------------------------------------------------------------

REPORTS = [
    pytest.param(
        bundle,
        entry["resource"],
        ".hl7.ndjson" in where,
        id=f"{where}:{entry['resource']['id'][:8]}",
    )
    for where, bundle in BUNDLES
    for entry in bundle.get("entry", ())
    if _is(entry, "DiagnosticReport")
]


def _target(bundle: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    found = [e["resource"] for e in bundle["entry"] if e["fullUrl"] == reference["reference"]]
    assert len(found) == 1, f"{reference['reference']} does not resolve inside the Bundle"
    return found[0]


@pytest.mark.parametrize(("bundle", "report", "from_hl7"), REPORTS)
def test_report_meets_us_core_lab_diagnostic_report(
    bundle: dict[str, Any], report: dict[str, Any], from_hl7: bool
) -> None:
    """Mandatory: status, category LAB, code, subject. Must support: effective, issued,
    performer, result (encounter: never sent to us)."""
    assert report["meta"]["profile"] == [US_CORE_DIAGNOSTIC_REPORT_LAB]
    assert report["status"] in REPORT_STATUSES
    assert {"system": V2_0074, "code": "LAB"} in [
        coding for concept in report["category"] for coding in concept["coding"]
    ]
    codings = report["code"].get("coding", [])
    # extensible binding: a sender's text-only code stays text; whatever was coded has a system
    assert all(c.get("system") and c.get("code") for c in codings)
    assert codings or (report["code"]["text"] and not from_hl7)
    assert _target(bundle, report["subject"])["resourceType"] == "Patient"
    if "effectiveDateTime" in report or from_hl7:
        assert len(report["effectiveDateTime"]) >= 10  # at least a day (US Core's date rule)
    if from_hl7:
        assert "issued" in report  # OBR-22, else MSH-7, is always sent; FHIR input may lack it
    for performer in report.get("performer", ()):
        assert _target(bundle, performer)["resourceType"] in ("Organization", "Practitioner")
    assert report["result"], "a lab report without results"
    for result in report["result"]:
        if result["reference"].startswith("Observation/"):
            continue  # a case's result an earlier Bundle carried (tests/cases/test_sequences.py)
        observation = _target(bundle, result)
        assert observation["resourceType"] == "Observation"
        assert "laboratory" in [c["code"] for k in observation["category"] for c in k["coding"]]
        if "dataAbsentReason" not in observation:
            assert observation["meta"]["profile"] == [MCODE_TUMOR_MARKER_TEST]


def test_reports_name_their_lab_as_performer() -> None:
    """Every HL7 v2 report names its lab (MSH-4); the Organization is in the Bundle."""
    hl7 = [r for r in REPORTS if ".hl7.ndjson" in r.id]
    assert hl7
    assert all(r.values[1].get("performer") for r in hl7)


def test_loinc_order_codes_stay_loinc() -> None:
    """An OBR-4 sent in LOINC (74885-5) is the report's code as sent: nothing mapped over it."""
    loinc = [
        r.values[1]["code"]["coding"]
        for r in REPORTS
        if any(c["code"] == "74885-5" for c in r.values[1]["code"].get("coding", ()))
    ]
    assert loinc
    assert all(codings[0]["system"] == "http://loinc.org" for codings in loinc)
    assert all(len(codings) == 1 for codings in loinc)


def _resource(verdict: dict[str, Any]) -> dict[str, Any]:
    for where, bundle in BUNDLES:
        if where.startswith(Path(verdict["file"]).name):
            for entry in bundle["entry"]:
                if entry["fullUrl"] == verdict["fullUrl"] and str(where).endswith(
                    f":{verdict['line']}"
                ):
                    return dict(entry["resource"])
    raise AssertionError(f"{verdict['fullUrl']} not found")
