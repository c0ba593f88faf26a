"""`her2-adapter serve`: settings, the in-process service loop, SIGTERM, and kill -9 mid-stream."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from mllp_support import LOOPBACK, msa_code, oru, segments
from typer.testing import CliRunner

from adapter.cli import app
from adapter.config import Settings
from adapter.service.mllp_client import MllpClient
from adapter.service.server import Listening, redact, serve
from adapter.store import MessageStatus, open_store

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def cli_command() -> list[str]:
    """The installed console script when there is one, else the same entry point via -c."""
    script = Path(sys.executable).parent / "her2-adapter"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from adapter.cli import app; app()"]


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


def test_settings_precedence_flags_then_environment_then_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flag beats HER2_* in the environment, which beats the TOML file, which beats defaults."""
    config = tmp_path / "her2.toml"
    config.write_text('mllp_port = 3001\nhttp_port = 3002\nhost = "10.0.0.1"\n')
    monkeypatch.setenv("HER2_HTTP_PORT", "4002")
    monkeypatch.setenv("HER2_HOST", "10.0.0.2")
    settings = Settings.load(config, host="10.0.0.3")
    assert (settings.mllp_port, settings.http_port, settings.host) == (3001, 4002, "10.0.0.3")
    assert settings.store == "sqlite:///./her2-adapter.db"


def test_settings_file_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    """A misspelt key in the config file is an error, not silently ignored."""
    config = tmp_path / "her2.toml"
    config.write_text("mlp_port = 2575\n")
    with pytest.raises(ValueError, match="mlp_port"):
        Settings.load(config)


def test_defaults_listen_on_loopback() -> None:
    """Without settings the service binds to loopback only."""
    assert Settings.load().host == "127.0.0.1"


@pytest.mark.parametrize(
    ("url", "printed"),
    [
        pytest.param("postgresql://her2:s3cret@db:5432/her2", "postgresql://her2:***@db:5432/her2"),
        pytest.param("postgresql://db/her2", "postgresql://db/her2", id="no-credentials"),
        pytest.param("sqlite:///./her2-adapter.db", "sqlite:///./her2-adapter.db", id="sqlite"),
    ],
)
def test_store_url_is_printed_without_password(url: str, printed: str) -> None:
    """The startup line never shows a database password."""
    assert redact(url) == printed


# --------------------------------------------------------------------------------------------
# The service loop in-process
# --------------------------------------------------------------------------------------------


def test_serve_answers_mllp_and_closes_the_store_on_stop(tmp_path: Path) -> None:
    """serve() listens where it says, answers, and on stop writes everything and closes."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    settings = Settings.load(mllp_port=free_port(), http_port=0, store=store_url)

    async def main() -> tuple[Listening, bytes]:
        stop = asyncio.Event()
        ready: asyncio.Future[Listening] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            serve(settings, stop=stop, handle_signals=False, on_ready=ready.set_result)
        )
        listening = await asyncio.wait_for(ready, 20)
        assert listening.mllp_port is not None
        client = await MllpClient.connect(LOOPBACK, listening.mllp_port)
        (ack,) = await client.send(oru("serve-1"))
        await client.close()
        stop.set()
        await asyncio.wait_for(task, 20)
        return listening, ack

    listening, ack = asyncio.run(main())
    assert listening.describe() == (
        f"her2-adapter listening: mllp 127.0.0.1:{settings.mllp_port}; store {store_url}"
    )
    assert msa_code(ack) == "AA"
    with open_store(store_url) as store:
        row = store.get_message("serve-1")
        assert row is not None
        assert row.status is MessageStatus.PROCESSED


def test_messages_left_received_are_completed_by_the_recovery_sweep(tmp_path: Path) -> None:
    """A message stored but never processed (its outcome lost) is processed by serve itself."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    long_ago = datetime(2024, 1, 1, tzinfo=UTC)
    with open_store(store_url) as store:
        abandoned = store.receive(
            transport="mllp",
            message_format="hl7v2",
            sender="LIS^LAB",
            message_id="left-1",
            raw=oru("left-1"),
            received_at=long_ago,
        )
        prefix = store.receive(
            transport="mllp",
            message_format="truncated",
            sender="LIS^LAB",
            message_id="big-1",
            raw=oru("big-1")[:40],
            received_at=long_ago,
        )
    settings = Settings.load(mllp_port=0, http_port=0, store=store_url, workers=0)

    async def main() -> None:
        stop = asyncio.Event()
        ready: asyncio.Future[Listening] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            serve(settings, stop=stop, handle_signals=False, on_ready=ready.set_result)
        )
        await asyncio.wait_for(ready, 20)
        for _ in range(200):  # the first sweep runs at start; bounded wait for it
            with open_store(store_url) as store:
                row = store.get_message_row(abandoned.row_id)
            if row is not None and row.status is not MessageStatus.RECEIVED:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 20)

    asyncio.run(main())
    with open_store(store_url) as store:
        done = store.get_message_row(abandoned.row_id)
        untouched = store.get_message_row(prefix.row_id)
    assert done is not None
    assert done.status is MessageStatus.PROCESSED
    assert untouched is not None
    assert untouched.status is MessageStatus.RECEIVED  # a truncated prefix is never processed


def test_serve_runs_http_and_forwarder_alongside_mllp(tmp_path: Path) -> None:
    """With an HTTP port and a FHIR base, both run in the same loop and stop with it."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    settings = Settings.load(
        mllp_port=free_port(),
        http_port=free_port(),
        store=store_url,
        fhir_base=f"http://{LOOPBACK}:{free_port()}/fhir",  # nobody listens: items stay queued
    )

    async def main() -> tuple[Listening, int, str]:
        stop = asyncio.Event()
        ready: asyncio.Future[Listening] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            serve(settings, stop=stop, handle_signals=False, on_ready=ready.set_result)
        )
        listening = await asyncio.wait_for(ready, 20)
        async with httpx.AsyncClient() as http:
            health = await http.get(f"http://{LOOPBACK}:{listening.http_port}/healthz")
        assert listening.mllp_port is not None
        client = await MllpClient.connect(LOOPBACK, listening.mllp_port)
        (ack,) = await client.send(oru("both-1"))
        await client.close()
        stop.set()
        await asyncio.wait_for(task, 20)
        return listening, health.status_code, msa_code(ack)

    listening, health, code = asyncio.run(main())
    assert listening.http_port == settings.http_port
    assert listening.describe().endswith("forwarding to FHIR")
    assert health == 200
    assert code == "AA"
    with open_store(store_url) as store:
        assert sum(store.counts().outbox.values()) == 1  # the Bundle was queued for forwarding


# --------------------------------------------------------------------------------------------
# The command as a process
# --------------------------------------------------------------------------------------------


@asynccontextmanager
async def service_process(
    tmp_path: Path, store_url: str, port: int
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`her2-adapter serve` as a subprocess; yields once it printed where it listens."""
    log = (tmp_path / "serve.log").open("ab")
    process = await asyncio.create_subprocess_exec(
        *cli_command(),
        "serve",
        "--mllp-port",
        str(port),
        "--http-port",
        "0",
        "--store",
        store_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.decode().startswith(f"her2-adapter listening: mllp 127.0.0.1:{port};")
        yield process
    finally:
        if process.returncode is None:
            with suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        log.close()


def test_sigterm_stops_the_service_cleanly(tmp_path: Path) -> None:
    """SIGTERM: the service answers what it has, closes the store and exits 0."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    port = free_port()

    async def main() -> tuple[int, bytes]:
        async with service_process(tmp_path, store_url, port) as process:
            client = await MllpClient.connect(LOOPBACK, port)
            (ack,) = await client.send(oru("term-1"))
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 30)
            with suppress(ConnectionError):
                await client.receive(timeout=5)  # closed by the shutdown
            await client.close()
            return code, ack

    code, ack = asyncio.run(main())
    assert code == 0
    assert msa_code(ack) == "AA"
    with open_store(store_url) as store:
        assert store.counts().messages[MessageStatus.PROCESSED] == 1


async def _stream(port: int, prefix: str, acked: list[str], sent: list[str]) -> None:
    """Send messages one after another until the connection breaks; record what got an ACK."""
    client = await MllpClient.connect(LOOPBACK, port)
    try:
        for number in range(10_000):
            control_id = f"{prefix}-{number}"
            sent.append(control_id)
            # A patient and an order each: a stream of cases, as an engine's traffic is.
            message = oru(control_id, patient=control_id, order=control_id)
            (ack,) = await client.send(message, timeout=10)
            assert segments(ack)["MSA"][1:3] == ["AA", control_id]
            acked.append(control_id)
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        await client.close()


def test_kill_9_mid_stream_loses_no_acked_message(tmp_path: Path) -> None:
    """kill -9 while two senders stream: after restart every ACKed message is stored, processed."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    port = free_port()
    acked: list[str] = []
    sent: list[str] = []

    async def crash() -> None:
        async with service_process(tmp_path, store_url, port) as process:
            senders = [asyncio.create_task(_stream(port, name, acked, sent)) for name in ("a", "b")]
            while len(acked) < 150:
                await asyncio.sleep(0.005)
            os.kill(process.pid, signal.SIGKILL)  # mid-stream: both senders are waiting
            await asyncio.wait_for(asyncio.gather(*senders), 20)
            assert await process.wait() == -signal.SIGKILL

    async def restart_and_resend(unacked: list[str]) -> list[str]:
        async with service_process(tmp_path, store_url, port) as process:
            client = await MllpClient.connect(LOOPBACK, port)
            codes = [
                msa_code((await client.send(oru(cid, patient=cid, order=cid)))[0])
                for cid in unacked
            ]
            await client.close()
            # A graceful stop writes the outcomes still queued behind their ACKs.
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 30) == 0
        return codes

    asyncio.run(crash())
    assert len(acked) >= 150
    with open_store(store_url) as store:
        statuses = {cid: store.get_message(cid) for cid in acked}
    missing = [cid for cid, row in statuses.items() if row is None]
    assert missing == []
    # An ACK means the raw message was durable; its outcome may not have been committed yet.
    assert {row.status for row in statuses.values() if row} <= {
        MessageStatus.PROCESSED,
        MessageStatus.RECEIVED,
    }
    reprocessed = CliRunner().invoke(app, ["reprocess", "--store", store_url])
    assert reprocessed.exit_code == 0, reprocessed.stderr
    with open_store(store_url) as store:
        after = {cid: store.get_message(cid) for cid in acked}
    assert {row.status for row in after.values() if row} == {MessageStatus.PROCESSED}

    # The engine resends what it got no ACK for: answered AA, whether it was stored or not.
    unacked = [cid for cid in sent if cid not in set(acked)]
    assert asyncio.run(restart_and_resend(unacked)) == ["AA"] * len(unacked)
    with open_store(store_url) as store:
        counts = store.counts().messages
    assert counts[MessageStatus.PROCESSED] == len(sent)
    assert counts[MessageStatus.RECEIVED] == 0


RUN_AND_REPORT = """
import asyncio, gc, os, signal, sys
from adapter.service.server import run
from adapter.config import Settings

def ready(listening):
    print(type(asyncio.get_running_loop()).__module__, gc.get_freeze_count() > 0, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

run(Settings(mllp_port=0, http_port=0, store=sys.argv[1], workers=0), on_ready=ready)
"""


def test_run_serves_on_uvloop_with_its_startup_heap_frozen(tmp_path: Path) -> None:
    """`serve`'s runner: uvloop, everything loaded at startup frozen out of GC, SIGTERM stops it."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    finished = subprocess.run(
        [sys.executable, "-c", RUN_AND_REPORT, store_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    loop_module, frozen = finished.stdout.split()
    assert loop_module.startswith("uvloop")
    assert frozen == "True"
