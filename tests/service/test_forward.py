"""Forwarding the outbox to a FHIR server: sent, retried, dead; into Medplum's engine too."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from http_support import HL7, T0, build_runtime, oru, serving
from mapping_support import example_mappings_dir
from peers_support import medplum_server

from adapter.config import Settings
from adapter.service.forward import Forwarder, ForwardPolicy, run_forwarder
from adapter.service.metrics import REGISTRY
from adapter.store import OutboxItem, OutboxStatus, Store, open_store

FAST = ForwardPolicy(poll_seconds=0.01, connect_tries=3, connect_wait_seconds=0, backoff_seconds=10)
BASE = "http://fhir.test/r4"


class Clock:
    """A settable clock: the forwarder's schedule is tested without waiting."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


def queue(store: Store, bundle: bytes = b'{"resourceType":"Bundle","type":"transaction"}') -> int:
    row = store.receive(
        transport="http",
        message_format="fhir",
        sender="s",
        message_id=None,
        raw=bundle,
        received_at=T0,
    )
    return store.enqueue(row.row_id, bundle, now=T0)


def item(store: Store, outbox_id: int) -> OutboxItem:
    found = store.get_outbox_item(outbox_id)
    assert found is not None
    return found


Handler = Callable[[httpx.Request], httpx.Response]


def scripted(*answers: int | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A server answering the given statuses (or raising the errors) in turn, then 200."""
    seen: list[httpx.Request] = []
    pending = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = pending.pop(0) if pending else 200
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json={"resourceType": "Bundle"})

    return handle, seen


def settings(fhir_base: str | None = BASE, attempts: int = 10) -> Settings:
    return Settings(fhir_base=fhir_base, forward_max_attempts=attempts)


def forward_with(store: Store, handler: Handler, clock: Clock, attempts: int = 10) -> int:
    """One pass of the forwarder over the due items, against the handler."""

    async def once() -> int:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await Forwarder(
                store, settings(attempts=attempts), clock, client, FAST
            ).run_once()

    return asyncio.run(once())


def forwards(result: str) -> float:
    return REGISTRY.get_sample_value("her2_forward_total", {"result": result}) or 0.0


def test_bundle_is_posted_as_fhir_json_to_the_base(store: Store) -> None:
    """A due item is POSTed unchanged to the server base as application/fhir+json, then sent."""
    outbox_id = queue(store)
    handler, seen = scripted()
    sent_before = forwards("sent")
    assert forward_with(store, handler, Clock()) == 1
    (request,) = seen
    assert (request.method, str(request.url)) == ("POST", BASE)
    assert request.headers["content-type"] == "application/fhir+json"
    assert request.content == item(store, outbox_id).bundle
    assert (item(store, outbox_id).status, item(store, outbox_id).sent_at) == (
        OutboxStatus.SENT,
        T0,
    )
    assert forwards("sent") == sent_before + 1


def test_server_errors_back_off_exponentially_then_send(store: Store) -> None:
    """503 twice: retried after 10 s, then 20 s, each kept in the store, then sent."""
    outbox_id = queue(store)
    clock = Clock()
    handler, seen = scripted(503, 503)
    retries_before = forwards("retry")
    forward_with(store, handler, clock)
    first = item(store, outbox_id)
    assert (first.status, first.attempts) == (OutboxStatus.PENDING, 1)
    assert first.next_attempt_at == T0 + timedelta(seconds=10)
    assert first.last_error is not None
    assert first.last_error.startswith("HTTP 503")
    clock.advance(9.999)
    assert forward_with(store, handler, clock) == 0  # not due yet
    clock.advance(0.001)
    forward_with(store, handler, clock)
    assert item(store, outbox_id).next_attempt_at == clock.now + timedelta(seconds=20)
    clock.advance(20)
    forward_with(store, handler, clock)
    assert (item(store, outbox_id).status, item(store, outbox_id).attempts) == (
        OutboxStatus.SENT,
        3,
    )
    assert len(seen) == 3
    assert forwards("retry") == retries_before + 2


def test_schedule_survives_a_restart(tmp_path: Path) -> None:
    """A retry time is in the store: a new store and forwarder keep to it."""
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    clock = Clock()
    with open_store(url) as store:
        outbox_id = queue(store)
        forward_with(store, scripted(500)[0], clock)
    handler, seen = scripted()
    with open_store(url) as reopened:
        assert forward_with(reopened, handler, clock) == 0
        clock.advance(10)
        assert forward_with(reopened, handler, clock) == 1
        assert item(reopened, outbox_id).status is OutboxStatus.SENT
    assert len(seen) == 1


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_transient_statuses_are_retried(store: Store, status: int) -> None:
    """5xx, 408 and 429 leave the item pending for a later attempt."""
    outbox_id = queue(store)
    forward_with(store, scripted(status)[0], Clock())
    assert item(store, outbox_id).status is OutboxStatus.PENDING


def test_retry_after_is_honoured(store: Store) -> None:
    """A 429 with Retry-After longer than the back-off waits as long as the server asked."""
    outbox_id = queue(store)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "120"})

    forward_with(store, handler, Clock())
    assert item(store, outbox_id).next_attempt_at == T0 + timedelta(seconds=120)


@pytest.mark.parametrize("status", [400, 401, 404, 409, 412, 422])
def test_refused_bundle_is_dead_at_once_with_the_outcome_text(store: Store, status: int) -> None:
    """Other 4xx: not retried; the server's OperationOutcome diagnostics are kept."""
    outbox_id = queue(store)
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "invalid", "diagnostics": "Observation.code missing"}
        ],
    }
    dead_before = forwards("dead")
    forward_with(store, lambda _: httpx.Response(status, json=outcome), Clock())
    dead = item(store, outbox_id)
    assert (dead.status, dead.attempts) == (OutboxStatus.DEAD, 1)
    assert dead.last_error == f"HTTP {status}: Observation.code missing"
    assert forwards("dead") == dead_before + 1


def test_refusal_without_outcome_keeps_the_body_start(store: Store) -> None:
    """A refusal that is not an OperationOutcome keeps the start of the text it sent."""
    outbox_id = queue(store)
    forward_with(store, lambda _: httpx.Response(400, text="bad bundle"), Clock())
    assert item(store, outbox_id).last_error == "HTTP 400: bad bundle"


def test_dead_after_max_attempts(store: Store) -> None:
    """The item is dead at the forward_max_attempts-th failed attempt."""
    outbox_id = queue(store)
    clock = Clock()
    for _ in range(2):
        forward_with(store, scripted(503)[0], clock, attempts=3)
        clock.advance(3600)
        assert item(store, outbox_id).status is OutboxStatus.PENDING
    forward_with(store, scripted(503)[0], clock, attempts=3)
    assert (item(store, outbox_id).status, item(store, outbox_id).attempts) == (
        OutboxStatus.DEAD,
        3,
    )


def test_connection_errors_are_retried_within_the_attempt(store: Store) -> None:
    """Two dropped connections, then success: one attempt, sent."""
    outbox_id = queue(store)
    handler, seen = scripted(httpx.ConnectError("reset"), httpx.ReadError("reset"))
    forward_with(store, handler, Clock())
    assert (item(store, outbox_id).status, item(store, outbox_id).attempts) == (
        OutboxStatus.SENT,
        1,
    )
    assert len(seen) == 3


def _closed_port() -> int:
    """A loopback port that was free a moment ago; nothing listens on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_nothing_listening_is_retried_then_dead(store: Store) -> None:
    """A refused connection is retried later with the error kept, and dead at the last attempt."""
    outbox_id = queue(store)
    clock = Clock()
    unreachable = settings(fhir_base=f"http://127.0.0.1:{_closed_port()}/fhir", attempts=2)

    async def once() -> None:
        async with httpx.AsyncClient() as client:
            await Forwarder(store, unreachable, clock, client, FAST).run_once()

    asyncio.run(once())
    pending = item(store, outbox_id)
    assert pending.status is OutboxStatus.PENDING
    assert pending.last_error is not None
    assert pending.last_error.startswith("ConnectError")
    clock.advance(10)
    asyncio.run(once())
    assert item(store, outbox_id).status is OutboxStatus.DEAD


def test_run_forwarder_sends_until_stopped(store: Store) -> None:
    """The loop sends items queued while it runs, and returns when stop is set."""
    handler, seen = scripted()

    async def main() -> None:
        stop = asyncio.Event()
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            task = asyncio.create_task(
                run_forwarder(store, settings(), Clock(), stop, client=client, policy=FAST)
            )
            await asyncio.sleep(0.05)
            await asyncio.to_thread(queue, store)
            for _ in range(200):
                if seen:
                    break
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.wait_for(task, 2)

    asyncio.run(main())
    assert len(seen) == 1


def test_run_forwarder_without_fhir_base_returns_at_once(store: Store) -> None:
    """With no FHIR server configured the forwarder has nothing to do."""
    asyncio.run(asyncio.wait_for(run_forwarder(store, settings(None), Clock(), asyncio.Event()), 1))


# --------------------------------------------------------------------------------------------
# End to end against a real FHIR R4 engine: Medplum's (@medplum/fhir-router, in-memory)
# --------------------------------------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(scope="module")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Medplum's FHIR engine behind the tests/peers shim, on an ephemeral loopback port."""
    with medplum_server(tmp_path_factory.mktemp("medplum") / "server.log") as base:
        yield base


def _forward_all(runtime: Any, posts: list[tuple[str, bytes, dict[str, str]]]) -> list[Any]:
    """Posts each message to the service, then forwards the outbox until nothing is pending."""

    async def main() -> list[Any]:
        answers = []
        async with serving(runtime) as client:
            for path, body, headers in posts:
                answers.append((await client.post(path, content=body, headers=headers)).json())
            stop = asyncio.Event()
            task = asyncio.create_task(
                run_forwarder(runtime.store, runtime.settings, runtime.clock, stop, policy=FAST)
            )
            for _ in range(3000):
                if runtime.store.counts().outbox.get(OutboxStatus.PENDING, 0) == 0:
                    break
                await asyncio.sleep(0.02)
            stop.set()
            await task
        return answers

    return asyncio.run(main())


def _corpus() -> list[tuple[str, bytes, dict[str, str]]]:
    hl7 = [("/hl7v2", p.read_bytes(), HL7) for p in sorted((FIXTURES / "hl7v2").glob("*.hl7"))]
    fhir = [
        ("/fhir", p.read_bytes(), {"content-type": "application/fhir+json"})
        for p in sorted((FIXTURES / "fhir").glob("*.json"))
    ]
    return hl7 + fhir


def _server_search(base: str, query: str) -> list[dict[str, Any]]:
    found = httpx.get(f"{base}/{query}", timeout=10)
    assert found.status_code == 200, found.text[:500]
    return [entry["resource"] for entry in found.json().get("entry", [])]


def test_forwarded_report_is_on_the_fhir_server(tmp_path: Path, fhir_server: str) -> None:
    """HL7 in over HTTP, forwarded as a transaction: the server then holds the report."""
    runtime = build_runtime(tmp_path, forward=True, fhir_base=fhir_server)
    (bundle,) = _forward_all(runtime, [("/hl7v2", oru("E2E-1"), HL7)])
    (report,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    ]
    on_server = httpx.get(f"{fhir_server}/DiagnosticReport/{report['id']}", timeout=5)
    assert on_server.status_code == 200
    assert on_server.json()["conclusionCode"] == report["conclusionCode"]


def test_the_corpus_forwarded_twice_links_to_one_patient_each(
    tmp_path: Path, fhir_server: str
) -> None:
    """Every fixture through the outbox into Medplum, then again from a second adapter (a
    replay): one Patient per identifier, one report per report, found by patient and by code."""
    corpus = _corpus()
    senders = example_mappings_dir()  # the fixtures' labs, as the goldens are made
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _forward_all(
        build_runtime(tmp_path / "a", forward=True, fhir_base=fhir_server, mappings_dir=senders),
        corpus,
    )
    replay = _forward_all(
        build_runtime(tmp_path / "b", forward=True, fhir_base=fhir_server, mappings_dir=senders),
        corpus,
    )
    assert replay == first  # the same Bundles, byte for byte, from a fresh store
    bundles = [answer for answer in first if answer.get("resourceType") == "Bundle"]
    assert len(bundles) > 100
    resources = [e["resource"] for b in bundles for e in b.get("entry", ())]
    identifiers = {
        (i["system"], i["value"])
        for r in resources
        if r["resourceType"] == "Patient"
        for i in r.get("identifier", ())
        if "system" in i
    }
    reports = {r["id"]: r for r in resources if r["resourceType"] == "DiagnosticReport"}

    patients = _server_search(fhir_server, "Patient?_count=1000")
    on_server = {(i.get("system"), i["value"]) for p in patients for i in p.get("identifier", ())}
    assert identifiers <= on_server
    for system, value in identifiers:
        matched = _server_search(fhir_server, f"Patient?identifier={system}|{value}")
        assert len(matched) == 1, (system, value, len(matched))

    server_reports = _server_search(fhir_server, "DiagnosticReport?_count=1000")
    assert sorted(r["id"] for r in server_reports if r["id"] in reports) == sorted(reports)
    for report_id, report in list(reports.items())[:25]:
        stored = httpx.get(f"{fhir_server}/DiagnosticReport/{report_id}", timeout=5).json()
        subject = stored["subject"]["reference"]
        assert subject.startswith("Patient/")
        by_patient = _server_search(fhir_server, f"DiagnosticReport?subject={subject}&_count=1000")
        assert report_id in [r["id"] for r in by_patient]
        coding = report["code"].get("coding", [{}])[0]
        if coding.get("system") and coding.get("code"):
            query = f"DiagnosticReport?code={coding['system']}|{coding['code']}&_count=1000"
            assert report_id in [r["id"] for r in _server_search(fhir_server, query)]


def test_bundle_the_server_refuses_is_dead(store: Store, fhir_server: str) -> None:
    """The real server's 4xx OperationOutcome makes the item dead at once, its text kept."""
    outbox_id = queue(store, orjson.dumps({"resourceType": "Bundle", "type": "collection"}))

    async def once() -> None:
        async with httpx.AsyncClient() as client:
            await Forwarder(store, settings(fhir_server), Clock(), client, FAST).run_once()

    asyncio.run(once())
    dead = item(store, outbox_id)
    assert dead.status is OutboxStatus.DEAD
    assert dead.last_error is not None
    assert dead.last_error.startswith("HTTP 400: ")
