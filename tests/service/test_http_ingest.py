"""POST /hl7v2 and POST /fhir: Bundles, OperationOutcomes per error class, limits, duplicates."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir_validation import assert_valid_r4
from http_support import FHIR, GLUCOSE, HL7, build_runtime, observation, oru, serving

from adapter.errors import StoreUnavailable
from adapter.service.handler import Handled
from adapter.service.http import _answer as http_answer
from adapter.service.metrics import REGISTRY
from adapter.store import MessageStatus, Transport

pytestmark = pytest.mark.anyio

ERROR_SYSTEM = "urn:her2-adapter:error-code"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(build_runtime(tmp_path)) as client:
        yield client


def issue_of(response: httpx.Response) -> dict[str, Any]:
    """The single error issue of an OperationOutcome answer."""
    assert response.headers["content-type"] == "application/fhir+json"
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    (issue,) = outcome["issue"]
    assert issue["severity"] == "error"
    return issue


def adapter_code(issue: dict[str, Any]) -> str:
    (coding,) = issue["details"]["coding"]
    assert coding["system"] == ERROR_SYSTEM
    return str(coding["code"])


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


async def test_hl7v2_message_answers_its_transaction_bundle(client: httpx.AsyncClient) -> None:
    """One ORU^R01 gives 200 and the transaction Bundle identified by its MSH-10."""
    response = await client.post("/hl7v2", content=oru("MSG-1"), headers=HL7)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"
    bundle = response.json()
    assert (bundle["type"], bundle["identifier"]["value"]) == ("transaction", "MSG-1")
    (report,) = resources(bundle, "DiagnosticReport")
    assert report["conclusionCode"][0]["coding"][0]["code"] == "HER2-positive"


@pytest.mark.parametrize("content_type", ["text/plain; charset=utf-8", "application/hl7-v2"])
async def test_hl7v2_takes_plain_text_media_types(
    client: httpx.AsyncClient, content_type: str
) -> None:
    """ER7 is also taken as text/plain (charset ignored: MSH-18 decides) and application/hl7-v2."""
    response = await client.post(
        "/hl7v2", content=oru("MSG-2"), headers={"Content-Type": content_type}
    )
    assert response.status_code == 200


async def test_fhir_observation_answers_its_bundle(client: httpx.AsyncClient) -> None:
    """A FHIR Observation gives 200 and a Bundle with one DiagnosticReport."""
    response = await client.post("/fhir", json=observation(), headers=FHIR)
    assert response.status_code == 200
    assert len(resources(response.json(), "DiagnosticReport")) == 1


async def test_fhir_ndjson_classifies_every_patient(client: httpx.AsyncClient) -> None:
    """NDJSON of two patients' Observations gives one report per patient."""
    lines = [observation("o1", "p1"), observation("o2", "p2", "Negative (0)")]
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    response = await client.post(
        "/fhir", content=body, headers={"Content-Type": "application/fhir+ndjson"}
    )
    assert response.status_code == 200
    subjects = {r["subject"]["reference"] for r in resources(response.json(), "DiagnosticReport")}
    assert len(subjects) == 2


def _adt() -> bytes:
    return oru("ADT-1").replace(b"ORU^R01^ORU_R01", b"ADT^A01^ADT_A01")


def _bad_utf8() -> bytes:
    return oru("ENC-1").replace(b"|AL|NE", b"|AL|NE||UNICODE UTF-8").replace(b"ALPHA", b"\xff")


ERROR_CASES = [
    pytest.param("/hl7v2", b"PID|1||X\r", HL7, 400, "HL7-MALFORMED", "structure", id="no-MSH-400"),
    pytest.param("/hl7v2", _adt(), HL7, 422, "HL7-UNSUPPORTED", "not-supported", id="ADT-422"),
    pytest.param("/hl7v2", _bad_utf8(), HL7, 400, "ENCODING", "structure", id="bad-utf8-400"),
    pytest.param(
        "/hl7v2",
        oru("GLU-1", loinc=GLUCOSE, ihc="5.5"),
        HL7,
        422,
        "NO-HER2-RESULT",
        "invalid",
        id="glucose-only-422",
    ),
    pytest.param("/fhir", b'{"resourceType":', FHIR, 400, "FHIR-JSON", "structure", id="json-400"),
    pytest.param("/fhir", b'{"a": 1}', FHIR, 400, "FHIR-NOT-FHIR", "structure", id="not-fhir-400"),
    pytest.param(
        "/fhir",
        b'{"resourceType": "Patient", "id": "x"}',
        FHIR,
        422,
        "FHIR-UNSUPPORTED",
        "not-supported",
        id="patient-alone-422",
    ),
    pytest.param(
        "/fhir",
        json.dumps({**observation(), "status": "bogus"}).encode(),
        FHIR,
        422,
        "FHIR-INVALID",
        "invalid",
        id="invalid-status-422",
    ),
]


@pytest.mark.parametrize(("path", "body", "headers", "status", "code", "issue_type"), ERROR_CASES)
async def test_input_errors_answer_operation_outcomes(
    client: httpx.AsyncClient,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
    issue_type: str,
) -> None:
    """Each input error class has its HTTP status, FHIR issue type and adapter code."""
    response = await client.post(path, content=body, headers=headers)
    assert response.status_code == status
    issue = issue_of(response)
    assert (issue["code"], adapter_code(issue)) == (issue_type, code)
    assert issue["diagnostics"]


async def test_error_location_is_named(client: httpx.AsyncClient) -> None:
    """The element at fault is given as expression and location."""
    body = json.dumps({**observation(), "status": "bogus"}).encode()
    issue = issue_of(await client.post("/fhir", content=body, headers=FHIR))
    assert issue["expression"] == issue["location"] == ["Observation.status"]


async def test_rejected_message_is_stored_as_rejected(client: httpx.AsyncClient) -> None:
    """A refused message is kept: /messages shows it rejected with its code and reason."""
    await client.post("/hl7v2", content=_adt(), headers=HL7)
    stored = (await client.get("/messages/ADT-1")).json()
    assert stored["status"] == "rejected"
    assert stored["error"]["code"] == "HL7-UNSUPPORTED"
    assert "ADT^A01" in stored["error"]["text"]


BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    ("body", "control_ids"),
    [
        pytest.param(oru("B-1") + oru("B-2"), ["B-1", "B-2"], id="two-messages"),
        pytest.param(
            b"BHS|^~\\&|COPATH\r" + oru("B-3") + oru("B-4") + b"BTS|2\r",
            ["B-3", "B-4"],
            id="BHS-envelope",
        ),
        pytest.param(
            BOM + b"FHS|^~\\&\rBHS|^~\\&\r" + oru("B-5") + b"BTS|1\rFTS|1\r",
            ["B-5"],
            id="FHS-BHS-with-BOM",
        ),
    ],
)
async def test_several_messages_are_each_stored_and_answered(
    client: httpx.AsyncClient, body: bytes, control_ids: list[str]
) -> None:
    """Several messages or a batch: a batch-response Bundle, one entry per message, in order."""
    response = await client.post("/hl7v2", content=body, headers=HL7)
    assert response.status_code == 200
    answer = response.json()
    assert_valid_r4(answer)
    assert answer["type"] == "batch-response"
    assert [entry["response"]["status"] for entry in answer["entry"]] == ["200 OK"] * len(
        control_ids
    )
    identifiers = [entry["resource"]["identifier"]["value"] for entry in answer["entry"]]
    assert identifiers == control_ids
    for control_id in control_ids:
        assert (await client.get(f"/messages/{control_id}")).json()["status"] == "processed"


async def test_a_bad_message_in_a_batch_gets_its_own_outcome(client: httpx.AsyncClient) -> None:
    """A message that fails gets its OperationOutcome and status; the others their Bundles."""
    bad = oru("B-7").replace(b"|P|2.5.1", b"|P|2.1")
    response = await client.post("/hl7v2", content=oru("B-6") + bad, headers=HL7)
    entries = response.json()["entry"]
    assert [entry["response"]["status"] for entry in entries] == [
        "200 OK",
        "422 Unprocessable Entity",
    ]
    assert entries[1]["resource"]["resourceType"] == "OperationOutcome"
    assert (await client.get("/messages/B-7")).json()["status"] == "rejected"


async def test_a_bom_before_the_message_is_accepted(client: httpx.AsyncClient) -> None:
    """A UTF-8 BOM (FHIR-Converter's samples start with one) is read over HTTP as by convert."""
    response = await client.post("/hl7v2", content=BOM + oru("BOM-1"), headers=HL7)
    assert response.status_code == 200
    assert response.json()["identifier"]["value"] == "BOM-1"


async def test_a_headerless_body_is_rejected_and_stored(tmp_path: Path) -> None:
    """No MSH: 400 HL7-MALFORMED with the reason, and the body is kept as a rejected row."""
    runtime = build_runtime(tmp_path)
    async with serving(runtime) as client:
        response = await client.post("/hl7v2", content=b"PID|1||X\rOBX|1|NM\r", headers=HL7)
        await runtime.committer.write([])  # the outcome is in
        counts = runtime.store.counts().messages
    assert response.status_code == 400
    assert adapter_code(issue_of(response)) == "HL7-MALFORMED"
    assert counts[MessageStatus.REJECTED] == 1


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/hl7v2", "application/json"),
        ("/hl7v2", None),
        ("/fhir", "text/plain"),
        ("/fhir", "application/xml"),
    ],
)
async def test_other_media_types_are_415(
    client: httpx.AsyncClient, path: str, content_type: str | None
) -> None:
    """A media type the endpoint does not take answers 415 naming the ones it does."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await client.post(path, content=oru("MT-1"), headers=headers)
    assert response.status_code == 415
    issue = issue_of(response)
    assert (issue["code"], adapter_code(issue)) == ("not-supported", "HTTP-MEDIA-TYPE")


LIMIT = 4000


@pytest.fixture
async def small_limit(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(build_runtime(tmp_path, max_message_bytes=LIMIT)) as client:
        yield client


def _padded(control_id: str, size: int) -> bytes:
    message = oru(control_id)
    return message + b"NTE|1||" + b"x" * (size - len(message) - 8) + b"\r"


async def test_declared_oversize_is_413_and_kept(small_limit: httpx.AsyncClient) -> None:
    """Over the limit by Content-Length: 413 TOO-LARGE, and the start is stored as rejected."""
    response = await small_limit.post("/hl7v2", content=_padded("BIG-1", LIMIT + 1), headers=HL7)
    assert response.status_code == 413
    issue = issue_of(response)
    assert (issue["code"], adapter_code(issue)) == ("too-costly", "TOO-LARGE")
    assert str(LIMIT + 1) in issue["diagnostics"]
    stored = (await small_limit.get("/messages/BIG-1")).json()
    assert (stored["status"], stored["error"]["code"]) == ("rejected", "TOO-LARGE")


async def test_exactly_the_limit_is_processed(small_limit: httpx.AsyncClient) -> None:
    """A body of exactly max_message_bytes is not too large."""
    body = _padded("EDGE-1", LIMIT)
    assert len(body) == LIMIT
    response = await small_limit.post("/hl7v2", content=body, headers=HL7)
    assert response.status_code == 200


async def test_streamed_oversize_is_413(small_limit: httpx.AsyncClient) -> None:
    """A chunked body without Content-Length is cut off once it grows past the limit."""
    body = _padded("BIG-2", 3 * LIMIT)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = await small_limit.post("/hl7v2", content=chunks(), headers=HL7)
    assert response.status_code == 413
    assert adapter_code(issue_of(response)) == "TOO-LARGE"
    assert (await small_limit.get("/messages/BIG-2")).json()["status"] == "rejected"


async def test_invalid_content_length_is_400(client: httpx.AsyncClient) -> None:
    """A Content-Length that is not a number is refused before reading."""
    request = client.build_request("POST", "/hl7v2", content=oru("CL-1"), headers=HL7)
    request.headers["Content-Length"] = "12x"
    response = await client.send(request)
    assert response.status_code == 400
    assert adapter_code(issue_of(response)) == "HTTP-BAD-REQUEST"


async def test_duplicate_answers_the_same_bundle(client: httpx.AsyncClient) -> None:
    """A resent message gets byte-identical Bundle bytes, marked as a duplicate."""
    first = await client.post("/hl7v2", content=oru("DUP-1"), headers=HL7)
    second = await client.post("/hl7v2", content=oru("DUP-1"), headers=HL7)
    assert second.status_code == first.status_code == 200
    assert second.content == first.content
    assert second.headers["X-HER2-Duplicate"] == "true"
    assert "X-HER2-Duplicate" not in first.headers
    assert (await client.get("/messages/DUP-1")).json()["version"] == 1


async def test_rejected_duplicate_answers_the_same_error(client: httpx.AsyncClient) -> None:
    """A resent rejected message gets the same status and code as the first time."""
    first = await client.post("/hl7v2", content=_adt(), headers=HL7)
    second = await client.post("/hl7v2", content=_adt(), headers=HL7)
    assert second.status_code == first.status_code == 422
    assert adapter_code(issue_of(second)) == adapter_code(issue_of(first)) == "HL7-UNSUPPORTED"
    assert issue_of(second)["diagnostics"] == issue_of(first)["diagnostics"]


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        pytest.param({"source": "urn:lab:north"}, {}, id="query"),
        pytest.param({}, {"X-HER2-Source": "urn:lab:north"}, id="header"),
    ],
)
async def test_fhir_sender_is_named_by_query_or_header(
    client: httpx.AsyncClient, query: dict[str, str], headers: dict[str, str]
) -> None:
    """?source= or X-HER2-Source names the FHIR sender the message is stored under."""
    response = await client.post(
        "/fhir", json=observation("src-1"), params=query, headers={**FHIR, **headers}
    )
    assert response.status_code == 200
    stored = (await client.get("/messages/src-1")).json()
    assert stored["sender"] == "urn:lab:north"


async def test_store_down_is_503_without_a_result(tmp_path: Path) -> None:
    """With the store down no Bundle is answered, though one could be built: 503, Retry-After."""
    runtime = build_runtime(tmp_path)
    async with serving(runtime) as client:
        runtime.store.close()
        response = await client.post("/hl7v2", content=oru("DOWN-1"), headers=HL7)
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert response.json()["resourceType"] == "OperationOutcome"
    issue = issue_of(response)
    assert (issue["code"], adapter_code(issue)) == ("transient", StoreUnavailable.code)


async def test_messages_are_counted_in_metrics(client: httpx.AsyncClient) -> None:
    """Each answered message counts under transport http and its outcome."""

    def count(outcome: str) -> float:
        labels = {"transport": "http", "outcome": outcome}
        return REGISTRY.get_sample_value("her2_messages_total", labels) or 0.0

    before = {outcome: count(outcome) for outcome in ("processed", "rejected", "duplicate")}
    await client.post("/hl7v2", content=oru("MET-1"), headers=HL7)
    await client.post("/hl7v2", content=oru("MET-1"), headers=HL7)
    await client.post("/hl7v2", content=_adt(), headers=HL7)
    after = {outcome: count(outcome) for outcome in before}
    assert {k: after[k] - before[k] for k in before} == {
        "processed": 1,
        "rejected": 1,
        "duplicate": 1,
    }
    metrics = await client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'her2_messages_total{outcome="processed",transport="http"}' in metrics.text


async def test_internal_error_is_500_without_details(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception answers a 500 OperationOutcome that quotes nothing of it."""

    def explode(*args: object) -> Callable[[], None]:
        raise RuntimeError("TEST^PATIENT^ALPHA")

    monkeypatch.setattr("adapter.service.http._answer", explode)
    async with serving(build_runtime(tmp_path), raise_errors=False) as client:
        response = await client.post("/hl7v2", content=oru("BOOM-1"), headers=HL7)
    assert response.status_code == 500
    issue = issue_of(response)
    assert (issue["code"], adapter_code(issue)) == ("exception", "INTERNAL")
    assert "PATIENT" not in response.text


async def test_processed_message_status_is_recorded(client: httpx.AsyncClient) -> None:
    """After a 200 the stored message is processed (the answer comes after the outcome)."""
    await client.post("/hl7v2", content=oru("REC-1"), headers=HL7)
    assert (await client.get("/messages/REC-1")).json()["status"] == MessageStatus.PROCESSED


def test_an_http_copy_of_a_message_in_flight_over_mllp_gets_its_bundle(tmp_path: Path) -> None:
    """An HTTP copy arriving before the MLLP original's outcome is stored: 200 with its Bundle."""
    runtime = build_runtime(tmp_path)

    async def main() -> tuple[Handled, Handled, int, bytes]:
        async with runtime.committer:
            service = runtime.service
            original, copy = await asyncio.gather(
                service.handle(oru("both-1"), Transport.MLLP, wait_for_outcome=False),
                service.handle(oru("both-1"), Transport.HTTP),
            )
            response = await http_answer(runtime.store, copy)
            return original, copy, response.status_code, bytes(response.body)

    original, copy, status_code, body = asyncio.run(main())
    runtime.store.close()
    assert not original.duplicate
    assert copy.duplicate
    assert status_code == 200
    assert original.bundle_json is not None
    assert body == original.bundle_json


async def test_two_labs_equal_bundle_identifiers_are_two_messages(tmp_path: Path) -> None:
    """Bundles naming their sender only in MessageHeader.source.endpoint are stored under that
    sender (the one the mappings pick): two labs' equal identifiers are not versions of one."""
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "fhir" / "message-example-lab.json"
    first = json.loads(fixture.read_text())
    second = json.loads(fixture.read_text())
    for entry in second["entry"]:
        if entry["resource"]["resourceType"] == "MessageHeader":
            entry["resource"]["source"]["endpoint"] = "https://lis.other-lab.example/fhir"
    runtime = build_runtime(tmp_path)
    async with serving(runtime) as client:
        for bundle in (first, second):
            await client.post("/fhir", content=json.dumps(bundle), headers=FHIR)
        rows = runtime.store.message_versions(first["identifier"]["value"])
    assert sorted(row.sender for row in rows) == [
        "https://lis.example-pathology.org/fhir",
        "https://lis.other-lab.example/fhir",
    ]
    assert [row.version for row in rows] == [1, 1]
