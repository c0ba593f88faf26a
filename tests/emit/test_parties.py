"""Patients receivers can match, the lab and interpreters, ER / PgR status Observations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from bundle_support import build_bundle

from adapter.config import Settings
from adapter.emit.parties import request
from adapter.emit.profiles import MCODE_TUMOR_MARKER_TEST, US_CORE_PATIENT
from adapter.model import (
    AdministrativeGender,
    AssayRecord,
    Classification,
    Coding,
    Identifier,
    Organization,
    PatientRef,
    PersonName,
    Practitioner,
    ReceptorCall,
)

CODESYSTEM = "http://example.org/fhir/CodeSystem/her2-test"

JANE = PatientRef(
    identifiers=(Identifier(system="urn:oid:1.2.3", value="MRN-42", type_code="MR"),),
    name=PersonName(family="Doe", given=("Jane", "Q")),
    gender=AdministrativeGender.FEMALE,
    birth_date="1960-01-31",
)


def resources(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    ]


def only(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    (resource,) = resources(bundle, resource_type)
    return resource


@pytest.fixture
def make_record(record_factory: Callable[..., AssayRecord]) -> Callable[..., AssayRecord]:
    return record_factory


@pytest.fixture
def make_classification(
    classification_factory: Callable[..., Classification],
) -> Callable[..., Classification]:
    return classification_factory


def _bundle(record: AssayRecord, classification: Classification, details: str) -> dict[str, Any]:
    settings = Settings(codesystem_url=CODESYSTEM, patient_details=details)
    return build_bundle("M", [(record, classification)], settings)


def test_full_details_send_name_sex_and_birth_date_as_us_core(
    make_record: Callable[..., AssayRecord], make_classification: Callable[..., Classification]
) -> None:
    """patient_details=full (the default): demographics and the US Core Patient claim."""
    patient = only(_bundle(make_record(patient=JANE), make_classification(), "full"), "Patient")
    assert patient["meta"] == {"profile": [US_CORE_PATIENT]}
    assert patient["name"] == [{"family": "Doe", "given": ["Jane", "Q"]}]
    assert (patient["gender"], patient["birthDate"]) == ("female", "1960-01-31")


def test_minimal_details_send_identifiers_only(
    make_record: Callable[..., AssayRecord], make_classification: Callable[..., Classification]
) -> None:
    """patient_details=minimal: identifiers and nothing else, and no profile it cannot meet."""
    patient = only(_bundle(make_record(patient=JANE), make_classification(), "minimal"), "Patient")
    assert set(patient) == {"resourceType", "id", "identifier"}


@pytest.mark.parametrize(
    "patient",
    [
        pytest.param(replace(JANE, gender=None), id="no-sex"),
        pytest.param(replace(JANE, name=None), id="no-name"),
        pytest.param(
            replace(JANE, identifiers=(Identifier(value="MRN-42"),)),
            id="identifier-without-system",
        ),
    ],
)
def test_no_us_core_claim_without_what_it_requires(
    patient: PatientRef,
    make_record: Callable[..., AssayRecord],
    make_classification: Callable[..., Classification],
) -> None:
    """US Core Patient requires identifier.system, name and gender: missing one, no claim."""
    sent = only(_bundle(make_record(patient=patient), make_classification(), "full"), "Patient")
    assert "meta" not in sent


def test_patient_entry_is_a_conditional_create_on_its_identifier(
    make_record: Callable[..., AssayRecord], make_classification: Callable[..., Classification]
) -> None:
    """A server links to the patient it has (ifNoneExist), and never overwrites it."""
    bundle = _bundle(make_record(patient=JANE), make_classification(), "full")
    entry = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert entry["request"] == {
        "method": "POST",
        "url": "Patient",
        "ifNoneExist": "identifier=urn:oid:1.2.3|MRN-42",
    }


@pytest.mark.parametrize(
    ("value", "query"),
    [
        pytest.param("A,B", "identifier=urn:oid:1.2|A%5C%2CB", id="comma"),
        pytest.param("A|B", "identifier=urn:oid:1.2|A%5C|B", id="bar"),
        pytest.param("A B&C", "identifier=urn:oid:1.2|A%20B%26C", id="query-characters"),
    ],
)
def test_if_none_exist_escapes_the_value(value: str, query: str) -> None:
    """FHIR search escaping, then URL encoding: a value cannot widen or break the match."""
    resource = {
        "resourceType": "Patient",
        "id": "p",
        "identifier": [{"system": "urn:oid:1.2", "value": value}],
    }
    assert request(resource)["ifNoneExist"] == query


def test_patient_without_identifier_system_is_put_to_its_id() -> None:
    """Nothing safe to match on: a PUT to the derived id, as before."""
    resource = {"resourceType": "Patient", "id": "p1", "identifier": [{"value": "88"}]}
    assert request(resource) == {"method": "PUT", "url": "Patient/p1"}


def test_performer_and_interpreters_are_resources_of_the_bundle(
    make_record: Callable[..., AssayRecord], make_classification: Callable[..., Classification]
) -> None:
    """The lab is performer, OBR-32 people are resultsInterpreter; both resolve in the Bundle."""
    origin = replace(
        make_record().origin,
        performer=Organization(name="PATHLAB", uri="urn:oid:1.2.840.99"),
        interpreters=(
            Practitioner(
                identifier=Identifier(system="http://hl7.org/fhir/sid/us-npi", value="1234567893"),
                name=PersonName(family="Path", given=("Pat",)),
            ),
        ),
    )
    bundle = _bundle(make_record(origin=origin), make_classification(), "full")
    report = only(bundle, "DiagnosticReport")
    organization = only(bundle, "Organization")
    person = only(bundle, "Practitioner")
    assert report["performer"] == [{"reference": f"urn:uuid:{organization['id']}"}]
    assert report["resultsInterpreter"] == [{"reference": f"urn:uuid:{person['id']}"}]
    assert organization["identifier"] == [
        {"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.840.99"}
    ]
    keys = list(report)
    assert keys.index("issued") < keys.index("performer") < keys.index("specimen")


def test_specimen_collection_and_received_times(
    make_record: Callable[..., AssayRecord], make_classification: Callable[..., Classification]
) -> None:
    """SPM-17 / SPM-18 / SPM-7 become collection.collectedDateTime, receivedTime, method."""
    specimen = replace(
        make_record().specimen,
        collected=datetime(2024, 3, 1, 10, 15, tzinfo=UTC),
        received=datetime(2024, 3, 2, 8, 0, tzinfo=UTC),
        collection_method=Coding(code="CNB", display="Core needle biopsy"),
    )
    sent = only(_bundle(make_record(specimen=specimen), make_classification(), "full"), "Specimen")
    assert sent["receivedTime"] == "2024-03-02T08:00:00+00:00"
    assert sent["collection"]["collectedDateTime"] == "2024-03-01T10:15:00+00:00"
    assert sent["collection"]["method"] == {
        "coding": [{"code": "CNB", "display": "Core needle biopsy"}],
        "text": "Core needle biopsy",
    }


def _status_observations(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        o["code"]["coding"][0]["code"]: o
        for o in resources(bundle, "Observation")
        if o["code"]["coding"][0]["code"] in ("16112-5", "16113-3")
    }


def test_er_and_pgr_status_observations_of_their_own(
    make_record: Callable[..., AssayRecord], make_classification: Callable[..., Classification]
) -> None:
    """ER and PgR calls become 16112-5 / 16113-3 TumorMarkerTests, in the report's results."""
    classification = make_classification(
        er_result=ReceptorCall.POSITIVE, pgr_result=ReceptorCall.LOW_POSITIVE
    )
    bundle = _bundle(make_record(), classification, "full")
    found = _status_observations(bundle)
    er, pgr = found["16112-5"], found["16113-3"]
    assert er["meta"] == {"profile": [MCODE_TUMOR_MARKER_TEST]}
    assert er["valueCodeableConcept"]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "10828004",
        "display": "Positive",
    }
    assert pgr["valueCodeableConcept"]["coding"] == [{"system": CODESYSTEM, "code": "low-positive"}]
    er_percent = next(
        o for o in resources(bundle, "Observation") if o["code"]["coding"][0]["code"] == "85329-1"
    )
    assert er["derivedFrom"] == [{"reference": f"urn:uuid:{er_percent['id']}"}]
    assert "derivedFrom" not in pgr  # no PgR value in this record: the call rests on nothing sent
    results = [r["reference"] for r in only(bundle, "DiagnosticReport")["result"]]
    assert f"urn:uuid:{er['id']}" in results
    assert f"urn:uuid:{pgr['id']}" in results


def test_no_status_observation_without_a_call(
    make_record: Callable[..., AssayRecord], make_classification: Callable[..., Classification]
) -> None:
    """An undetermined receptor gives no status Observation: nothing is guessed."""
    assert _status_observations(_bundle(make_record(), make_classification(), "full")) == {}
