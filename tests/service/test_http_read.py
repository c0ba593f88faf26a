"""Reads: DiagnosticReport by id and search, /messages, /healthz, token, OpenAPI, unknown paths."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_support import FHIR, HL7, T0, build_runtime, observation, oru, serving

from adapter.service.forward import Forwarder
from adapter.service.server import Runtime

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(build_runtime(tmp_path)) as client:
        yield client


def report_of(bundle: dict[str, Any]) -> dict[str, Any]:
    (report,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    ]
    return report


def adapter_code(response: httpx.Response) -> str:
    (issue,) = response.json()["issue"]
    return str(issue["details"]["coding"][0]["code"])


async def test_report_by_id_is_the_emitted_report(client: httpx.AsyncClient) -> None:
    """GET /fhir/DiagnosticReport/{id} answers the report as it was in the Bundle, its
    urn:uuid references rewritten to the Type/<id> they resolve to here."""
    bundle = (await client.post("/hl7v2", content=oru("R-1"), headers=HL7)).json()
    report = report_of(bundle)
    located = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle["entry"]
    }
    text = json.dumps(report)
    for full_url, local in located.items():
        text = text.replace(f'"{full_url}"', f'"{local}"')
    response = await client.get(f"/fhir/DiagnosticReport/{report['id']}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"
    assert response.json() == json.loads(text)
    assert "urn:uuid:" not in response.text


async def test_report_by_id_is_the_latest_version(client: httpx.AsyncClient) -> None:
    """A corrected message (same MSH-10, new content) replaces the report it carried."""
    first = report_of((await client.post("/hl7v2", content=oru("R-2"), headers=HL7)).json())
    corrected = oru("R-2", ihc="0^Negative (0)^L")
    second = report_of((await client.post("/hl7v2", content=corrected, headers=HL7)).json())
    assert first["id"] == second["id"]
    found = (await client.get(f"/fhir/DiagnosticReport/{first['id']}")).json()
    assert found["conclusionCode"][0]["coding"][0]["code"] == "HER2-negative"


async def test_unknown_report_is_404(client: httpx.AsyncClient) -> None:
    """An unknown report id answers a not-found OperationOutcome."""
    response = await client.get("/fhir/DiagnosticReport/nope")
    assert response.status_code == 404
    assert response.json()["issue"][0]["code"] == "not-found"
    assert adapter_code(response) == "HTTP-NOT-FOUND"


@pytest.fixture
async def two_patients(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """A positive report for patient p1 and a negative one for p2."""
    reports = {}
    for patient, value in (("p1", "Positive (3+)"), ("p2", "Negative (0)")):
        body = observation(f"obs-{patient}", patient, value)
        response = await client.post("/fhir", json=body, headers=FHIR)
        reports[patient] = report_of(response.json())
        reports[patient]["patient_id"] = _patient_id(response.json())
    return reports


def _patient_id(bundle: dict[str, Any]) -> str:
    """The id of the Bundle's Patient (the report refers to it by its urn:uuid fullUrl)."""
    (patient,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    return str(patient["resource"]["id"])


async def test_search_without_filters_finds_every_report(
    client: httpx.AsyncClient, two_patients: dict[str, dict[str, Any]]
) -> None:
    """A search with no filter is a searchset of every latest report, with its total."""
    bundle = (await client.get("/fhir/DiagnosticReport")).json()
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "searchset", 2)
    ids = {entry["resource"]["id"] for entry in bundle["entry"]}
    assert ids == {report["id"] for report in two_patients.values()}
    entry = bundle["entry"][0]
    assert entry["fullUrl"].endswith(f"/fhir/DiagnosticReport/{entry['resource']['id']}")
    assert entry["search"] == {"mode": "match"}


async def test_search_by_category(
    client: httpx.AsyncClient, two_patients: dict[str, dict[str, Any]]
) -> None:
    """category= matches the adapter category code, also given as system|code."""
    for category in ("HER2-negative", "urn:her2-adapter:codesystem|HER2-negative"):
        bundle = (await client.get("/fhir/DiagnosticReport", params={"category": category})).json()
        assert bundle["total"] == 1
        assert bundle["entry"][0]["resource"]["id"] == two_patients["p2"]["id"]


async def test_search_by_patient_and_status(
    client: httpx.AsyncClient, two_patients: dict[str, dict[str, Any]]
) -> None:
    """patient= takes Patient/<id> or the bare id; status= filters on the report status."""
    p1 = two_patients["p1"]
    reference = f"Patient/{p1['patient_id']}"
    for patient in (reference, reference.removeprefix("Patient/")):
        bundle = (await client.get("/fhir/DiagnosticReport", params={"patient": patient})).json()
        assert [entry["resource"]["id"] for entry in bundle["entry"]] == [p1["id"]]
    final = await client.get(
        "/fhir/DiagnosticReport", params={"patient": reference, "status": "final"}
    )
    assert final.json()["total"] == 1
    amended = await client.get(
        "/fhir/DiagnosticReport", params={"patient": reference, "status": "amended"}
    )
    assert amended.json()["total"] == 0
    assert amended.json()["entry"] == []


async def test_message_status_of_a_processed_message(client: httpx.AsyncClient) -> None:
    """/messages/{MSH-10}: processed, version 1, times, the ACK, the Bundle, not forwarded."""
    bundle = (await client.post("/hl7v2", content=oru("M-1"), headers=HL7)).json()
    stored = (await client.get("/messages/M-1")).json()
    assert stored["status"] == "processed"
    assert stored["error"] is None
    assert (stored["message_id"], stored["version"], stored["format"]) == ("M-1", 1, "hl7v2")
    assert stored["received_at"] == stored["processed_at"] == T0.isoformat()
    assert stored["bundle"] == bundle
    assert stored["forwarding"] == {"status": "not-queued"}
    assert "MSA|AA|M-1" in stored["ack"]


async def test_message_status_lists_every_version(client: httpx.AsyncClient) -> None:
    """A correction is version 2; both versions are listed, oldest first."""
    await client.post("/hl7v2", content=oru("M-2"), headers=HL7)
    await client.post("/hl7v2", content=oru("M-2", ihc="0^Negative (0)^L"), headers=HL7)
    stored = (await client.get("/messages/M-2")).json()
    assert stored["version"] == 2
    assert [v["version"] for v in stored["versions"]] == [1, 2]


async def test_message_status_of_a_fhir_message_by_its_id(client: httpx.AsyncClient) -> None:
    """A FHIR message is found by the resource id it was stored under."""
    await client.post("/fhir", json=observation("fhir-obs-9"), headers=FHIR)
    stored = (await client.get("/messages/fhir-obs-9")).json()
    assert (stored["status"], stored["format"]) == ("processed", "fhir")


async def test_message_status_of_a_rejected_message(client: httpx.AsyncClient) -> None:
    """A rejected message shows its code and reason, and no Bundle."""
    bad = oru("M-3").replace(b"ORU^R01^ORU_R01", b"ADT^A01^ADT_A01")
    await client.post("/hl7v2", content=bad, headers=HL7)
    stored = (await client.get("/messages/M-3")).json()
    assert stored["status"] == "rejected"
    assert stored["error"]["code"] == "HL7-UNSUPPORTED"
    assert stored["bundle"] is None
    assert "MSA|AR|M-3" in stored["ack"]


async def test_unknown_message_is_404(client: httpx.AsyncClient) -> None:
    """An id never received answers 404."""
    response = await client.get("/messages/never-sent")
    assert response.status_code == 404
    assert adapter_code(response) == "HTTP-NOT-FOUND"


def _answering(status: int, body: dict[str, Any]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(status, json=body))
    )


@pytest.mark.parametrize(
    ("server_status", "server_body", "forwarding_status"),
    [
        pytest.param(200, {"resourceType": "Bundle"}, "sent", id="forwarded"),
        pytest.param(
            400,
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "invalid", "diagnostics": "no way"}],
            },
            "dead",
            id="dead",
        ),
    ],
)
async def test_message_status_shows_forwarding(
    tmp_path: Path, server_status: int, server_body: dict[str, Any], forwarding_status: str
) -> None:
    """/messages shows the outbox: pending once queued, then sent, or dead with the reason."""
    runtime: Runtime = build_runtime(tmp_path, forward=True, fhir_base="http://fhir.test/r4")
    async with serving(runtime) as client, _answering(server_status, server_body) as fhir:
        await client.post("/hl7v2", content=oru("F-1"), headers=HL7)
        assert (await client.get("/messages/F-1")).json()["forwarding"]["status"] == "pending"
        forwarder = Forwarder(runtime.store, runtime.settings, runtime.clock, fhir)
        assert await forwarder.run_once() == 1
        forwarding = (await client.get("/messages/F-1")).json()["forwarding"]
    assert (forwarding["status"], forwarding["attempts"]) == (forwarding_status, 1)
    if forwarding_status == "sent":
        assert forwarding["sent_at"] == T0.isoformat()
    else:
        assert forwarding["last_error"] == "HTTP 400: no way"


async def test_healthz_follows_the_store(tmp_path: Path) -> None:
    """/healthz is 200 while the store answers and 503 with Retry-After once it does not."""
    runtime = build_runtime(tmp_path)
    async with serving(runtime) as client:
        healthy = await client.get("/healthz")
        runtime.store.close()
        down = await client.get("/healthz")
        report = await client.get("/fhir/DiagnosticReport/x")
    assert (healthy.status_code, healthy.json()["status"]) == (200, "ok")
    assert down.status_code == report.status_code == 503
    assert down.headers["Retry-After"].isdigit()
    assert down.json()["issue"][0]["code"] == "transient"


TOKEN = "s3cret-token"

PROTECTED = [
    ("POST", "/hl7v2"),
    ("POST", "/fhir"),
    ("GET", "/fhir/DiagnosticReport/x"),
    ("GET", "/fhir/DiagnosticReport"),
    ("GET", "/messages/x"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/audit"),
    ("GET", "/audit.json"),
]


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(build_runtime(tmp_path, api_token=TOKEN)) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}"],
    ids=["missing", "wrong", "longer", "no-scheme", "basic"],
)
async def test_token_is_required_everywhere_but_healthz(
    guarded: httpx.AsyncClient, method: str, path: str, authorization: str | None
) -> None:
    """With api_token set, a missing or wrong bearer token answers 401 login."""
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await guarded.request(method, path, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["issue"][0]["code"] == "login"


async def test_token_opens_every_endpoint(guarded: httpx.AsyncClient) -> None:
    """The right token is accepted; /healthz needs none."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    posted = await guarded.post("/hl7v2", content=oru("T-1"), headers={**HL7, **auth})
    assert posted.status_code == 200
    assert (await guarded.get("/messages/T-1", headers=auth)).status_code == 200
    assert (await guarded.get("/metrics", headers=auth)).status_code == 200
    assert (await guarded.get("/healthz")).status_code == 200


async def test_without_token_setting_no_header_is_needed(client: httpx.AsyncClient) -> None:
    """With no api_token, requests need no Authorization header."""
    assert (await client.post("/hl7v2", content=oru("T-2"), headers=HL7)).status_code == 200


async def test_openapi_lists_every_endpoint(client: httpx.AsyncClient) -> None:
    """The OpenAPI document is served and names each endpoint with its request media types."""
    schema = (await client.get("/openapi.json")).json()
    assert set(schema["paths"]) >= {
        "/hl7v2",
        "/fhir",
        "/fhir/metadata",
        "/fhir/{resource_type}",
        "/fhir/{resource_type}/{resource_id}",
        "/messages/{message_id}",
        "/healthz",
        "/metrics",
    }
    hl7_types = schema["paths"]["/hl7v2"]["post"]["requestBody"]["content"]
    assert "x-application/hl7-v2+er7" in hl7_types


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "HTTP-NOT-FOUND"),
        ("DELETE", "/hl7v2", 405, "HTTP-METHOD"),
        ("GET", "/messages/x?sender=" + "s" * 10, 404, "HTTP-NOT-FOUND"),
    ],
)
async def test_routing_errors_are_operation_outcomes(
    client: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    """Unknown paths and methods answer OperationOutcomes too."""
    response = await client.request(method, path)
    assert response.status_code == status
    assert adapter_code(response) == code


async def test_bad_query_parameter_is_400(client: httpx.AsyncClient) -> None:
    """A query parameter over its limit answers 400 naming it."""
    response = await client.post(
        "/fhir", json=observation(), params={"source": "x" * 300}, headers=FHIR
    )
    assert response.status_code == 400
    assert adapter_code(response) == "HTTP-BAD-REQUEST"
    assert "source" in response.json()["issue"][0]["diagnostics"]
