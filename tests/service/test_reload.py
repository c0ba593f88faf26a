"""Mappings reload without a restart: SIGHUP and POST /admin/mappings/reload (with the token).

Each report names the mappings version that read it, so the switch is visible in the output.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from http_support import build_runtime, oru, serving
from mllp_support import LOOPBACK, msa_code

from adapter.config import Settings, default_mappings_dir
from adapter.mapping import Mappings, content_version
from adapter.pipeline import Context
from adapter.service.handler import Service
from adapter.service.mllp_client import MllpClient
from adapter.service.server import Listening, reload_logged, serve
from adapter.service.workers import WorkerPool
from adapter.store import GroupCommitter, MessageStatus, Transport, open_store

pytestmark = pytest.mark.timeout(120)

TOKEN = "reload-secret"
NEW_LAB = """
[sender]
name = "new-lab"
applications = ["NEWLIS"]

[systems]
NLC = "https://lis.new-lab.example/codes"

[[codes]]
system = "https://lis.new-lab.example/codes"
code = "H2IHC"
analyte = "her2-ihc"
"""


def _local_code(control_id: str) -> bytes:
    """A HER2 IHC 3+ from NEWLIS under a local code whose display names no marker."""
    return oru(control_id, loinc="H2IHC^Local stain H2^NLC", sender="NEWLIS|NEW LAB")


def _original_mode(message: bytes) -> bytes:
    """No MSH-15/16: the ACK is the application's (AA/AE), not a commit accept."""
    return message.replace(b"|AL|NE\r", b"\r", 1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _copy_mappings(tmp_path: Path) -> Path:
    directory = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), directory)
    (directory / "senders").mkdir(exist_ok=True)  # the shipped mappings have no sender file
    return directory


def _version_in(bundle: bytes) -> str:
    for entry in json.loads(bundle)["entry"]:
        for tag in entry["resource"].get("meta", {}).get("tag", []):
            if tag["system"] == "urn:her2-adapter:mappings-version":
                return str(tag["code"])
    raise AssertionError("no mappings-version tag")


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "worker-pool"])
def test_a_reload_reads_a_new_sender_file_for_later_messages(tmp_path: Path, workers: int) -> None:
    """Rejected before the lab's file exists; after a reload the next message is classified,
    and its report names the new mappings version."""
    directory = _copy_mappings(tmp_path)
    settings = Settings(mappings_dir=directory, mllp_port=0, http_port=0)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    old_version = content_version(directory)

    async def main() -> tuple[MessageStatus, MessageStatus, bytes | None, str]:
        context = Context(settings, Mappings.load(directory))
        pool = WorkerPool(context, workers) if workers else None
        if pool is not None:
            await pool.start()
        try:
            async with GroupCommitter(store) as committer:
                service = Service(context, committer, lambda: datetime.now(UTC), pool=pool)
                before = await service.handle(_local_code("before"), Transport.HTTP)
                (directory / "senders" / "new-lab.toml").write_text(NEW_LAB, encoding="utf-8")
                reloaded = await service.reload_mappings()
                after = await service.handle(_local_code("after"), Transport.HTTP)
                return before.status, after.status, after.bundle_json, reloaded.version
        finally:
            if pool is not None:
                await pool.close()

    before, after, bundle, new_version = asyncio.run(main())
    store.close()
    assert before is MessageStatus.REJECTED
    assert after is MessageStatus.PROCESSED
    assert bundle is not None
    assert new_version != old_version
    assert _version_in(bundle) == new_version == content_version(directory)


def test_a_bad_file_leaves_the_mappings_in_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGHUP's reload with a broken file logs file and key, and keeps the old mappings."""
    directory = _copy_mappings(tmp_path)
    runtime = build_runtime(tmp_path, mappings_dir=directory)
    service = runtime.service
    before = service.context.mappings
    (directory / "senders" / "broken.toml").write_text("[sender]\nname = 3\n", encoding="utf-8")
    asyncio.run(reload_logged(service))
    assert service.context.mappings is before
    assert "mappings not reloaded" in caplog.text
    assert "broken.toml" in caplog.text
    runtime.store.close()


def test_http_reload_needs_the_token_and_answers_the_version(tmp_path: Path) -> None:
    directory = _copy_mappings(tmp_path)

    expected = content_version(directory)

    async def main() -> list[tuple[int, dict[str, object]]]:
        runtime = build_runtime(tmp_path, mappings_dir=directory, api_token=TOKEN)
        async with serving(runtime) as client:
            answers = []
            for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
                reply = await client.post("/admin/mappings/reload", headers=headers)
                answers.append((reply.status_code, reply.json()))
            (directory / "bad.toml").write_text("codes = 1\n", encoding="utf-8")
            reply = await client.post(
                "/admin/mappings/reload", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            answers.append((reply.status_code, reply.json()))
            return answers

    (refused, _), (ok, body), (bad, outcome) = asyncio.run(main())
    assert refused == 401
    assert ok == 200
    assert body["mappings_version"] == expected
    assert "loinc.toml" in body["files"]  # type: ignore[operator]
    assert bad == 422
    assert "MAPPING-INVALID" in json.dumps(outcome)


def test_http_reload_is_refused_without_a_configured_token(tmp_path: Path) -> None:
    async def main() -> int:
        async with serving(build_runtime(tmp_path)) as client:
            return (await client.post("/admin/mappings/reload")).status_code

    assert asyncio.run(main()) == 403


def test_sighup_reloads_the_mappings_of_a_running_service(tmp_path: Path) -> None:
    """serve() with its signal handlers: after SIGHUP the new sender file is in use."""
    directory = _copy_mappings(tmp_path)
    settings = Settings.load(
        mllp_port=free_port(),
        http_port=0,
        store=f"sqlite:///{tmp_path / 'store.db'}",
        mappings_dir=directory,
        workers=0,
    )

    async def main() -> tuple[str, str]:
        stop = asyncio.Event()
        ready: asyncio.Future[Listening] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            serve(settings, stop=stop, handle_signals=True, on_ready=ready.set_result)
        )
        listening = await asyncio.wait_for(ready, 20)
        assert listening.mllp_port is not None
        client = await MllpClient.connect(LOOPBACK, listening.mllp_port)
        (before,) = await client.send(_original_mode(_local_code("hup-0")))
        (directory / "senders" / "new-lab.toml").write_text(NEW_LAB, encoding="utf-8")
        os.kill(os.getpid(), signal.SIGHUP)
        after = "AE"
        for attempt in range(1, 50):  # the reload runs as a task: wait for it, briefly
            (ack,) = await client.send(_original_mode(_local_code(f"hup-{attempt}")))
            after = msa_code(ack)
            if after == "AA":
                break
            await asyncio.sleep(0.1)
        await client.close()
        stop.set()
        await asyncio.wait_for(task, 20)
        return msa_code(before), after

    assert asyncio.run(main()) == ("AE", "AA")
