"""Health that follows the store, and recovery without restart, under load.

The store stops taking writes while an engine keeps sending (its UPDATE privilege revoked on
PostgreSQL: raw messages are still stored and ACKed, their outcomes are not), then takes them
again. /healthz must follow it both ways and name the cause; the service must complete every
ACKed message within seconds of the store coming back (not at the age-based sweep, a minute
later), and nobody restarts anything.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from contextlib import suppress

import httpx
import psycopg
import pytest
from psycopg import sql

from adapter.config import Settings
from adapter.service.mllp_client import MllpClient
from adapter.service.server import RECOVERY_AGE, Listening, serve
from adapter.store import MessageStatus, open_store

pytestmark = [pytest.mark.timeout(120), pytest.mark.postgres]
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def oru(control_id: str) -> bytes:
    return (
        "MSH|^~\\&|LIS|LAB|HER2|ONC|20240308162016-0500||ORU^R01^ORU_R01|"
        f"{control_id}|P|2.5.1\r"
        "PID|1||TST000178^^^LAB^MR\r"
        "OBR|1|PLC1078^EHR|SP24-01078^LIS|HER2IHC^HER2 IHC^L|||20240305093016-0500\r"
        "OBX|1|CWE|85319-2^HER2 [Presence] in Breast cancer specimen by Immune stain^LN|1|"
        "3+^Positive (3+)^L||||||F\r"
    ).encode()


class Engine:
    """Sends messages one after another; an unanswered one is sent again on a new connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.acked: list[str] = []
        self.unanswered = 0
        self.stop = False

    async def run(self) -> None:
        number, client = 0, None
        while not self.stop:
            control_id = f"rec-{number}"
            try:
                if client is None:
                    client = await MllpClient.connect(LOOPBACK, self.port)
                (ack,) = await client.send(oru(control_id), timeout=5)
            except (ConnectionError, TimeoutError, OSError):
                self.unanswered += 1
                if client is not None:
                    await client.close()
                client = None
                await asyncio.sleep(0.05)
                continue
            assert b"MSA|AA|" + control_id.encode() in ack
            self.acked.append(control_id)
            number += 1
            await asyncio.sleep(0.01)
        if client is not None:
            await client.close()

    async def until_acked(self, count: int, within: float) -> None:
        deadline = time.monotonic() + within
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"only {len(self.acked)} of {count} ACKed"
            await asyncio.sleep(0.05)


async def health_until(client: httpx.AsyncClient, status: int, within: float) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        answer = await client.get("/healthz")
        if answer.status_code == status:
            return answer
        assert time.monotonic() < deadline, f"/healthz stayed {answer.status_code}"
        await asyncio.sleep(0.1)


def _privileges(url: str, schema: str, grant: bool) -> None:
    statement = "GRANT UPDATE ON ALL TABLES IN SCHEMA {} TO CURRENT_USER"
    if not grant:
        statement = "REVOKE UPDATE ON ALL TABLES IN SCHEMA {} FROM CURRENT_USER"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL(statement).format(sql.Identifier(schema)))


def test_writes_refused_then_taken_again_under_load(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    schema_match = re.search(r"search_path%3D(\w+)", postgres_url)
    assert schema_match is not None
    schema = schema_match.group(1)
    admin_url = postgres_url.split("?", 1)[0]
    settings = Settings.load(
        mllp_port=free_port(), http_port=free_port(), workers=0, store=postgres_url
    )
    caplog.set_level(logging.WARNING, logger="her2_adapter.store")
    caplog.set_level(logging.WARNING, logger="her2_adapter.service")

    async def main() -> tuple[str, float, list[str]]:
        stop = asyncio.Event()
        ready: asyncio.Future[Listening] = asyncio.get_running_loop().create_future()
        service = asyncio.create_task(
            serve(settings, stop=stop, handle_signals=False, on_ready=ready.set_result)
        )
        engine = Engine(settings.mllp_port)
        sending = asyncio.create_task(engine.run())
        base = f"http://{LOOPBACK}:{settings.http_port}"
        try:
            await asyncio.wait_for(ready, 30)
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                await health_until(http, 200, 10)
                await engine.until_acked(20, 30)
                _privileges(admin_url, schema, grant=False)
                refused = await health_until(http, 503, 10)
                acked_before = len(engine.acked)
                await asyncio.sleep(1.5)  # the engine keeps sending; outcomes are not stored
                _privileges(admin_url, schema, grant=True)
                back = time.monotonic()
                await health_until(http, 200, 10)
                await engine.until_acked(acked_before + 20, 30)
                engine.stop = True
                await sending
                completed = await _all_processed(postgres_url, engine.acked, back, within=15)
            return refused.json()["issue"][0]["diagnostics"], completed, engine.acked
        finally:
            engine.stop = True
            with suppress(Exception):
                await sending
            stop.set()
            await asyncio.wait_for(service, 30)

    diagnostics, completed, acked = asyncio.run(main())
    print(f"\nall ACKed messages processed {completed:.2f} s after the store came back")
    assert diagnostics == "the store does not take writes: permission denied"
    assert "store unavailable: permission denied" in caplog.text
    assert "store available again" in caplog.text
    assert "outcome not stored" in caplog.text  # messages were ACKed and left to complete
    # Every ACKed message processed, within seconds of the store's return: well before the
    # age-based sweep could have reached the ones whose outcome was lost.
    assert completed < RECOVERY_AGE.total_seconds() / 4, completed
    assert len(acked) >= 40


async def _all_processed(url: str, acked: list[str], since: float, *, within: float) -> float:
    """Seconds from ``since`` until every ACKed message is ``processed`` in the store."""
    deadline = time.monotonic() + within
    with open_store(url) as store:
        while True:
            statuses = [await asyncio.to_thread(_status, store, each) for each in acked]
            if all(status is MessageStatus.PROCESSED for status in statuses):
                return time.monotonic() - since
            left = sum(status is not MessageStatus.PROCESSED for status in statuses)
            assert time.monotonic() < deadline, f"{left} ACKed messages not processed"
            await asyncio.sleep(0.2)


def _status(store: object, control_id: str) -> MessageStatus | None:
    row = store.get_message(control_id)  # type: ignore[attr-defined]
    return None if row is None else row.status
