"""Forwarding the outbox to a FHIR server: sent, retried with back-off, dead; a real server too."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from http_support import HL7, T0, build_runtime, oru, serving

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
# End to end against a real FHIR R4 server (sekmet-fhir) on a loopback port
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A sekmet-fhir server on an ephemeral loopback port (its socket is bound here)."""
    pytest.importorskip("sekmet", reason="sekmet-fhir is not installed: pip install -e '.[dev]'")
    home = tmp_path_factory.mktemp("sekmet")
    (home / "settings.yaml").write_text(
        f"data_dir: {home / 'data'}\nsimulator:\n  enabled: false\n", encoding="utf-8"
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    base = f"http://127.0.0.1:{port}/fhir"
    env = {**os.environ, "SEKMET_CONFIG": str(home / "settings.yaml"), "SEKMET_BASE_URL": base}
    command = [sys.executable, "-m", "uvicorn", "--factory", "sekmet.main:app_factory"]
    command += ["--fd", str(listener.fileno()), "--log-level", "warning"]
    with (home / "server.log").open("wb") as log:
        server = subprocess.Popen(
            command, cwd=home, env=env, stdout=log, stderr=log, pass_fds=[listener.fileno()]
        )
    listener.close()
    try:
        _wait_until_up(server, base, home / "server.log")
        yield base
    finally:
        server.terminate()
        server.wait(10)


def _wait_until_up(server: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"sekmet-fhir exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{base}/metadata", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("sekmet-fhir did not answer /metadata within 30 s")


def test_forwarded_report_is_on_the_fhir_server(tmp_path: Path, fhir_server: str) -> None:
    """HL7 in over HTTP, forwarded as a transaction: the server then holds the report."""
    runtime = build_runtime(tmp_path, forward=True, fhir_base=fhir_server)

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        async with serving(runtime) as client:
            bundle = (await client.post("/hl7v2", content=oru("E2E-1"), headers=HL7)).json()
            stop = asyncio.Event()
            task = asyncio.create_task(
                run_forwarder(runtime.store, runtime.settings, runtime.clock, stop, policy=FAST)
            )
            for _ in range(500):
                stored = (await client.get("/messages/E2E-1")).json()
                if stored["forwarding"]["status"] != "pending":
                    break
                await asyncio.sleep(0.02)
            stop.set()
            await task
        return bundle, stored

    bundle, stored = asyncio.run(main())
    assert stored["forwarding"]["status"] == "sent", stored["forwarding"]
    (report,) = [
        e["resource"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    ]
    on_server = httpx.get(f"{fhir_server}/DiagnosticReport/{report['id']}", timeout=5)
    assert on_server.status_code == 200
    assert on_server.json()["conclusionCode"] == report["conclusionCode"]


def test_bundle_the_server_refuses_is_dead(store: Store, fhir_server: str) -> None:
    """The real server's 400 OperationOutcome makes the item dead at once, its text kept."""
    outbox_id = queue(store, orjson.dumps({"resourceType": "Bundle", "type": "collection"}))

    async def once() -> None:
        async with httpx.AsyncClient() as client:
            await Forwarder(store, settings(fhir_server), Clock(), client, FAST).run_once()

    asyncio.run(once())
    dead = item(store, outbox_id)
    assert dead.status is OutboxStatus.DEAD
    assert dead.last_error is not None
    assert dead.last_error.startswith("HTTP 400: ")
    assert "transaction" in dead.last_error
