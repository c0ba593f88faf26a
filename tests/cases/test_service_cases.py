"""Cases in the running service: MLLP and HTTP at once, the store's timeline, kill -9, reads.

The IHC 2+ of one specimen goes over MLLP and its ISH group 5 over HTTP; whichever the service
takes first, the store ends with one case, HER2-low, two versions, and both messages processed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from mllp_support import LOOPBACK, MllpClient, msa_code
from typer.testing import CliRunner

from adapter.cli import app
from adapter.config import Settings
from adapter.model import SourceFormat
from adapter.pipeline import Context
from adapter.service.handler import Service
from adapter.store import GroupCommitter, MessageStatus, Store, Transport, open_store

SEQUENCE = Path(__file__).resolve().parents[2] / "fixtures" / "cases" / "ihc2-then-ish-g5"
IHC = (SEQUENCE / "1-ihc.hl7").read_bytes()
ISH = (SEQUENCE / "2-ish.hl7").read_bytes()
NUMBER = "SP26-09005"


def the_case(store: Store) -> list[str]:
    """The case's categories, oldest version first (there must be exactly one case)."""
    (case_id,) = store.find_cases(number=NUMBER)
    return [event.category for event in store.case_timeline(case_id)]


@pytest.mark.parametrize("ish_first", [False, True], ids=["ihc-first", "ish-first"])
def test_mllp_and_http_at_once_give_one_case(store_url: str, ish_first: bool) -> None:
    """Two messages of one case on two transports at the same moment: one case, HER2-low."""
    store = open_store(store_url)

    async def main() -> None:
        async with GroupCommitter(store) as committer:
            service = Service(
                Context.from_settings(Settings()), committer, lambda: datetime.now(UTC)
            )
            mllp = service.handle(IHC, Transport.MLLP, wait_for_outcome=False)
            http = service.handle(ISH, Transport.HTTP, format_hint=SourceFormat.HL7V2)
            answers = await asyncio.gather(*((http, mllp) if ish_first else (mllp, http)))
            assert all(answer.error is None for answer in answers)
            await service.drain()

    asyncio.run(main())
    with store:
        categories = the_case(store)
        assert categories[-1] == "HER2-low"
        assert len(categories) == 2
        assert store.counts().messages[MessageStatus.PROCESSED] == 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def serving(tmp_path: Path, store_url: str) -> AsyncIterator[tuple[int, int, int]]:
    """`her2-adapter serve` on free ports: (mllp port, http port, pid)."""
    mllp_port, http_port = free_port(), free_port()
    log = (tmp_path / "serve.log").open("ab")
    script = Path(sys.executable).parent / "her2-adapter"
    process = await asyncio.create_subprocess_exec(
        str(script),
        "serve",
        "--mllp-port",
        str(mllp_port),
        "--http-port",
        str(http_port),
        "--store",
        store_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.startswith(b"her2-adapter listening:"), line
        yield mllp_port, http_port, process.pid
    finally:
        if process.returncode is None:
            with suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 60)
        log.close()


def test_kill_9_between_the_two_messages_loses_nothing(tmp_path: Path) -> None:
    """IHC ACKed over MLLP, kill -9, restart, ISH over HTTP: after recovery, one HER2-low case."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"

    async def first() -> None:
        async with serving(tmp_path, store_url) as (mllp_port, _, pid):
            client = await MllpClient.connect(LOOPBACK, mllp_port)
            (ack,) = await client.send(IHC)
            assert msa_code(ack) == "CA"  # MSH-15 AL, MSH-16 NE: the commit ACK (stored)
            os.kill(pid, signal.SIGKILL)  # the outcome may not be written yet: the raw is
            with suppress(ConnectionError):
                await client.close()

    async def second() -> dict[str, object]:
        async with (
            serving(tmp_path, store_url) as (_, http_port, _),
            httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{http_port}") as http,
        ):
            sent = await http.post("/hl7v2", content=ISH, headers={"Content-Type": "text/plain"})
            assert sent.status_code == 200, sent.text
            found = (await http.get("/cases", params={"number": NUMBER})).json()
            (case_id,) = found["cases"]
            timeline: dict[str, object] = (await http.get(f"/cases/{case_id}")).json()
            return timeline

    asyncio.run(first())
    timeline = asyncio.run(second())
    versions = timeline["versions"]
    assert isinstance(versions, list)
    assert versions[-1]["message_id"] == "ihc2-then-ish-g5-2"
    # The IHC's outcome, if the kill came first, is written when it is processed again.
    reprocessed = CliRunner().invoke(app, ["reprocess", "--store", store_url])
    assert reprocessed.exit_code == 0, reprocessed.output
    with open_store(store_url) as store:
        assert the_case(store)[-1] == "HER2-low"
        assert store.counts().messages[MessageStatus.RECEIVED] == 0
    shown = CliRunner().invoke(app, ["case", "show", "--number", NUMBER, "--store", store_url])
    assert shown.exit_code == 0, shown.output
    assert "ihc2-then-ish-g5-1" in shown.output
    assert "ihc2-then-ish-g5-2" in shown.output
    assert "HER2-low" in shown.output
    as_json = CliRunner().invoke(
        app, ["case", "show", "--number", NUMBER, "--store", store_url, "--json"]
    )
    case = json.loads(as_json.output)
    assert case["versions"][-1]["category"] == "HER2-low"
    assert {a["analyte"] for v in case["versions"] for a in v["added"]} >= {
        "her2-ihc",
        "her2-cep17-ratio",
    }


def test_case_show_without_a_case_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    open_store(url).close()
    shown = CliRunner().invoke(app, ["case", "show", "--number", "nothing", "--store", url])
    assert shown.exit_code == 1
    assert "no such case" in shown.output
    usage = CliRunner().invoke(app, ["case", "show", "--store", url])
    assert usage.exit_code == 2


def test_convert_with_a_store_combines_with_earlier_runs(tmp_path: Path) -> None:
    """Two `convert --store` runs, one message each: the second run's Bundle is the case's."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    first = CliRunner().invoke(app, ["convert", "--store", url, str(SEQUENCE / "1-ihc.hl7")])
    second = CliRunner().invoke(app, ["convert", "--store", url, str(SEQUENCE / "2-ish.hl7")])
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    one_run = CliRunner().invoke(
        app, ["convert", str(SEQUENCE / "1-ihc.hl7"), str(SEQUENCE / "2-ish.hl7")]
    )
    assert second.stdout.splitlines() == one_run.stdout.splitlines()[1:]
    report = next(
        e["resource"]
        for e in json.loads(second.stdout)["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    )
    assert report["conclusionCode"][0]["coding"][0]["code"] == "HER2-low"
    again = CliRunner().invoke(app, ["convert", "--store", url, str(SEQUENCE / "2-ish.hl7")])
    assert again.stdout == second.stdout  # a message converted before: its stored Bundle


def test_two_services_on_one_database_give_one_case_each(store_url: str) -> None:
    """Two service instances sharing one store, each given one message of every case at once.

    Each instance has its own store connection and writer; the store's case locks make their
    writes to one case take turns, so every case ends with both results (HER2-low), two
    versions, never two cases or a report that knows one message only.
    """
    count = 12

    def numbered(message: bytes, n: int) -> bytes:
        return (
            message.replace(b"SP26-09005", f"SP26-7{n:04d}".encode())
            .replace(b"TST009005", f"TST7{n:05d}".encode())
            .replace(b"ihc2-then-ish-g5-", f"two-services-{n}-".encode())
        )

    async def main() -> None:
        with open_store(store_url, timeout=30) as one, open_store(store_url, timeout=30) as two:
            async with GroupCommitter(one) as first, GroupCommitter(two) as second:
                context = Context.from_settings(Settings())
                services = [
                    Service(context, committer, lambda: datetime.now(UTC))
                    for committer in (first, second)
                ]
                handled = []
                for n in range(count):
                    ihc_to, ish_to = (services[0], services[1])[:: 1 if n % 2 else -1]
                    handled += [
                        ihc_to.handle(numbered(IHC, n), Transport.MLLP, wait_for_outcome=False),
                        ish_to.handle(numbered(ISH, n), Transport.HTTP),
                    ]
                answers = await asyncio.gather(*handled)
                assert all(answer.error is None for answer in answers)
                for service in services:
                    await service.drain()

    asyncio.run(main())
    with open_store(store_url) as store:
        for n in range(count):
            (case_id,) = store.find_cases(number=f"SP26-7{n:04d}")
            events = store.case_timeline(case_id)
            assert [event.version for event in events] == [1, 2]
            assert events[-1].category == "HER2-low"
        assert store.counts().messages[MessageStatus.PROCESSED] == 2 * count
