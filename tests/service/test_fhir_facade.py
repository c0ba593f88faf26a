"""The FHIR facade as a client library uses it: metadata, reads, paged and strict searches.

The fhirclient tests run the app in uvicorn on a loopback port and drive it with ``fhirclient``
(SMART on FHIR's Python client): ``prepare()`` reads /fhir/metadata, a search follows the paging
links, and every reference of a returned report resolves to a resource read from the facade.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fhirclient import client as fhir_client
from fhirclient.models.diagnosticreport import DiagnosticReport
from fhirclient.models.fhirsearch import FHIRSearch
from fhirclient.models.observation import Observation
from fhirclient.models.organization import Organization
from fhirclient.models.patient import Patient
from fhirclient.models.specimen import Specimen
from http_support import HL7, build_runtime, oru
from mapping_support import example_mappings_dir
from peers_support import errors, medplum_validate

from adapter.service.fhir_facade import MAX_COUNT, SEARCH_PARAMETERS, STORED_TYPES
from adapter.service.http import create_app
from adapter.service.server import Runtime

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hl7v2"
FHIR_JSON = {"accept": "application/fhir+json"}


@contextmanager
def live(runtime: Runtime) -> Iterator[str]:
    """``create_app(runtime)`` in uvicorn on a free loopback port, in a thread: its FHIR base."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), log_level="warning", lifespan="off")
    )

    async def main() -> None:
        async with runtime.committer:
            await server.serve(sockets=[listener])

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}/fhir"
    finally:
        server.should_exit = True
        thread.join(20)
        listener.close()
        runtime.store.close()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A served store holding the HL7 v2 fixture corpus (with the example senders active)."""
    runtime = build_runtime(tmp_path_factory.mktemp("facade"), mappings_dir=example_mappings_dir())
    with live(runtime) as fhir_base:
        root = fhir_base.removesuffix("/fhir")
        with httpx.Client(base_url=root, timeout=30) as http:
            for path in sorted(FIXTURES.glob("*.hl7")):
                http.post("/hl7v2", content=path.read_bytes(), headers=HL7)
            http.post("/hl7v2", content=oru("FACADE-1"), headers=HL7)
        yield fhir_base


def get(base: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{base}/{path}", params=params, headers=FHIR_JSON, timeout=30)


def adapter_code(response: httpx.Response) -> str:
    return str(response.json()["issue"][0]["details"]["coding"][0]["code"])


# --------------------------------------------------------------------------------------------
# fhirclient
# --------------------------------------------------------------------------------------------


def test_fhirclient_prepares_searches_pages_and_resolves_every_reference(base: str) -> None:
    """prepare() reads the CapabilityStatement; a _count=10 search pages through every report;
    each reference of a report resolves (fhirclient reads it from the facade)."""
    smart = fhir_client.FHIRClient(settings={"app_id": "her2-tests", "api_base": base + "/"})
    assert smart.prepare()
    statement = smart.server.capabilityStatement
    assert statement.fhirVersion == "4.0.1"
    assert {r.type for r in statement.rest[0].resource} >= set(STORED_TYPES)

    search = DiagnosticReport.where(struct={"_count": "10"})
    pages = list(search.perform_iter(smart.server))
    reports = [e.resource for page in pages for e in page.entry or ()]
    total = pages[0].total
    assert len(pages) == -(-total // 10) > 1
    assert len({r.id for r in reports}) == total > 50

    for report in reports[:5]:
        subject = report.subject.resolved(Patient)
        assert isinstance(subject, Patient)
        assert subject.id == report.subject.reference.removeprefix("Patient/")
        for performer in report.performer or ():
            assert isinstance(performer.resolved(Organization), Organization)
        for specimen in report.specimen or ():
            assert isinstance(specimen.resolved(Specimen), Specimen)
        results = [r.resolved(Observation) for r in report.result]
        assert all(isinstance(o, Observation) for o in results)
        assert {o.subject.reference for o in results} == {report.subject.reference}


def test_fhirclient_searches_observations_by_patient_and_code(base: str) -> None:
    """patient= and code= narrow an Observation search as FHIR says they do."""
    smart = fhir_client.FHIRClient(settings={"app_id": "her2-tests", "api_base": base + "/"})
    assert smart.prepare()
    page = next(FHIRSearch(DiagnosticReport, struct={"_count": "1"}).perform_iter(smart.server))
    first = page.entry[0].resource
    patient = first.subject.reference
    search = Observation.where(struct={"patient": patient, "code": "http://loinc.org|48676-1"})
    found = list(search.perform_resources_iter(smart.server))
    assert found
    assert {o.subject.reference for o in found} == {patient}
    assert {c.code for o in found for c in o.code.coding} == {"48676-1"}


# --------------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------------


def test_every_emitted_type_is_readable(base: str) -> None:
    """One resource of each type a Bundle carries reads back by id, with resolvable refs."""
    for kind in ("Patient", "Organization", "Specimen", "Observation", "DiagnosticReport"):
        page = get(base, kind, _count=1).json()
        resource = page["entry"][0]["resource"]
        read = get(base, f"{kind}/{resource['id']}")
        assert read.status_code == 200
        assert read.json() == resource
        assert "urn:uuid:" not in read.text


def test_unknown_id_and_type_are_404(base: str) -> None:
    """A missing resource is not-found; a type the facade does not serve is not-supported."""
    missing = get(base, "Patient/nope")
    assert (missing.status_code, adapter_code(missing)) == (404, "HTTP-NOT-FOUND")
    unknown = get(base, "Encounter/x")
    assert unknown.status_code == 404
    assert unknown.json()["issue"][0]["code"] == "not-supported"


def test_vocabulary_is_served(base: str) -> None:
    """GET /fhir/CodeSystem/her2-adapter and the ValueSets, also found by canonical URL."""
    code_system = get(base, "CodeSystem/her2-adapter").json()
    assert code_system["url"] == "urn:her2-adapter:codesystem"
    by_url = get(base, "ValueSet", url=f"{code_system['url']}/vs/flag").json()
    assert by_url["total"] == 1
    assert by_url["entry"][0]["resource"]["id"] == "her2-adapter-flag"


# --------------------------------------------------------------------------------------------
# Searches: strict, paged, by date, code and patient
# --------------------------------------------------------------------------------------------


def test_count_pages_with_links(base: str) -> None:
    """_count=2: two entries, a next link; following it gives the next two and a previous."""
    first = get(base, "DiagnosticReport", _count=2).json()
    assert len(first["entry"]) == 2
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert set(links) == {"self", "first", "next"}
    second = httpx.get(links["next"], headers=FHIR_JSON, timeout=30).json()
    assert len(second["entry"]) == 2
    assert {e["resource"]["id"] for e in second["entry"]}.isdisjoint(
        e["resource"]["id"] for e in first["entry"]
    )
    assert "previous" in {link["relation"] for link in second["link"]}
    assert get(base, "DiagnosticReport", _count=0).json()["entry"] == []


@pytest.mark.parametrize("count", ["-1", "x", str(MAX_COUNT + 1)])
def test_bad_count_is_400(base: str, count: str) -> None:
    """_count outside 0-1000 is refused, not silently clamped."""
    response = get(base, "DiagnosticReport", _count=count)
    assert (response.status_code, adapter_code(response)) == (400, "HTTP-SEARCH-UNSUPPORTED")


@pytest.mark.parametrize(
    ("params", "named"),
    [
        pytest.param({"bogus": "1"}, "bogus", id="unknown-parameter"),
        pytest.param({"code:text": "HER2"}, "code:text", id="unknown-modifier"),
        pytest.param({"_sort": "date"}, "_sort", id="unsupported-control"),
        pytest.param({"date": "sa2024"}, "sa", id="unsupported-prefix"),
    ],
)
def test_unsupported_search_is_400(base: str, params: dict[str, str], named: str) -> None:
    """FHIR strict handling: the OperationOutcome names what is not supported."""
    response = get(base, "DiagnosticReport", **params)
    assert response.status_code == 400
    assert adapter_code(response) == "HTTP-SEARCH-UNSUPPORTED"
    assert named in response.json()["issue"][0]["diagnostics"]


def test_lenient_handling_ignores_and_says_so(base: str) -> None:
    """Prefer: handling=lenient ignores an unknown parameter and reports it as an outcome."""
    response = httpx.get(
        f"{base}/DiagnosticReport",
        params={"bogus": "1", "_count": "1"},
        headers={**FHIR_JSON, "prefer": "handling=lenient"},
        timeout=30,
    )
    assert response.status_code == 200
    modes = [e["search"]["mode"] for e in response.json()["entry"]]
    assert modes == ["match", "outcome"]


def test_every_listed_search_parameter_is_accepted(base: str) -> None:
    """What the CapabilityStatement lists is what searches accept, type by type."""
    statement = get(base, "metadata").json()
    for resource in statement["rest"][0]["resource"]:
        listed = {p["name"] for p in resource["searchParam"]}
        assert listed == {p.name for p in SEARCH_PARAMETERS[resource["type"]]}
        for name in listed:
            value = {"date": "2024", "patient": "Patient/x", "subject": "Patient/x"}.get(name, "x")
            response = get(base, resource["type"], **{name: value})
            assert response.status_code == 200, (resource["type"], name, response.text[:300])


def test_code_search_with_and_without_system(base: str) -> None:
    """code= matches code, |code and system|code, and comma alternatives add up."""
    loinc = get(base, "DiagnosticReport", code="http://loinc.org|74885-5", _count=1000).json()
    bare = get(base, "DiagnosticReport", code="74885-5", _count=1000).json()
    assert loinc["total"] == bare["total"] > 0
    local = get(base, "DiagnosticReport", code="urn:her2-adapter:local:L|HER2IHC").json()
    assert local["total"] > 0
    wrong = get(base, "DiagnosticReport", code="http://snomed.info/sct|74885-5").json()
    assert wrong["total"] == 0
    either = get(base, "DiagnosticReport", code="74885-5,HER2IHC", _count=0).json()
    assert either["total"] == loinc["total"] + local["total"]


def test_date_search_bounds(base: str) -> None:
    """date=eq/ge/lt over the report's effective time in UTC: the ranges add up."""
    everything = get(base, "DiagnosticReport", _count=0).json()["total"]
    before = get(base, "DiagnosticReport", date="lt2024-03-15", _count=0).json()["total"]
    after = get(base, "DiagnosticReport", date="ge2024-03-15", _count=0).json()["total"]
    assert before > 0
    assert after > 0
    assert before + after == everything
    one_day = get(base, "DiagnosticReport", date="2024-03-15", _count=1000).json()
    for entry in one_day["entry"]:
        effective = entry["resource"]["effectiveDateTime"]
        assert effective.startswith(("2024-03-15", "2024-03-14", "2024-03-16"))


def test_patient_search_finds_only_that_patients_resources(base: str) -> None:
    """patient= (Patient/<id> or the bare id) narrows reports and Observations alike."""
    report = get(base, "DiagnosticReport", _count=1).json()["entry"][0]["resource"]
    reference = report["subject"]["reference"]
    for value in (reference, reference.removeprefix("Patient/")):
        reports = get(base, "DiagnosticReport", patient=value, _count=1000).json()
        assert report["id"] in [e["resource"]["id"] for e in reports["entry"]]
        assert {e["resource"]["subject"]["reference"] for e in reports["entry"]} == {reference}
    observations = get(base, "Observation", subject=reference, _count=1000).json()
    assert observations["total"] >= len(report["result"])


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        pytest.param({"_format": "xml"}, {}, id="format-xml"),
        pytest.param({"_format": "application/fhir+xml"}, {}, id="format-fhir-xml"),
        pytest.param({}, {"accept": "application/fhir+xml"}, id="accept-xml"),
    ],
)
def test_xml_is_not_acceptable(base: str, params: dict[str, str], headers: dict[str, str]) -> None:
    """JSON only: a request for XML is answered 406 with an OperationOutcome (in JSON)."""
    for path in ("metadata", "DiagnosticReport", "CodeSystem/her2-adapter"):
        response = httpx.get(f"{base}/{path}", params=params, headers=headers, timeout=30)
        assert (response.status_code, adapter_code(response)) == (406, "HTTP-NOT-ACCEPTABLE")
    assert get(base, "metadata", _format="json").status_code == 200


def test_capability_statement_is_valid_for_medplum(base: str, tmp_path: Path) -> None:
    """Medplum's validator finds no error in what /fhir/metadata answers."""
    path = tmp_path / "metadata.json"
    path.write_bytes(get(base, "metadata").content)
    (verdict,) = medplum_validate(path)
    assert verdict["resourceType"] == "CapabilityStatement"
    assert errors(verdict) == []
