"""Shared by the MLLP, serve and reprocess tests: inline HL7 messages and an in-process server."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from adapter.config import Settings
from adapter.ingest.mllp import START_BLOCK, frame
from adapter.pipeline import Context
from adapter.service.handler import Service
from adapter.service.mllp import MllpServer
from adapter.service.mllp_client import MllpClient
from adapter.store import GroupCommitter, Store, open_store

T = TypeVar("T")
LOOPBACK = "127.0.0.1"
NOW = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def oru(
    control_id: str,
    *,
    accept: str = "",
    application: str = "",
    score: str = "3+^Positive (3+)^L",
    version: str = "2.5.1",
    message_type: str = "ORU^R01^ORU_R01",
    patient: str = "TST000178",
    order: str = "1078",
) -> bytes:
    """An HER2 IHC result for a breast core biopsy; MSH-15/16 from ``accept``/``application``."""
    segments = [
        f"MSH|^~\\&|COPATH|GOODHEALTH|HER2-ADAPTER|ONCOLOGY|20240308162016-0500||{message_type}|"
        f"{control_id}|P|{version}|||{accept}|{application}",
        f"PID|1||{patient}^^^GOODHEALTH^MR||TEST^PATIENT||19870622|F",
        f"ORC|RE|PLC{order}^EHR|SP24-0{order}^COPATH||CM",
        f"OBR|1|PLC{order}^EHR|SP24-0{order}^COPATH|HER2IHC^HER2 immunohistochemistry^L|||"
        "20240305093016-0500||||||||||||||20240308161516-0500||SP|F",
        "OBX|1|CWE|85319-2^HER2 [Presence] in Breast cancer specimen by Immune stain^LN|1|"
        f"{score}||||||F|||20240305093016-0500",
        f"SPM|1|^SP24-0{order}-A1&COPATH||TISS^Tissue^HL70487|||CNB^Core needle biopsy^L|"
        "80248007^Left breast structure^SCT||||||||||20240305093016-0500",
    ]
    return ("\r".join(segments) + "\r").encode()


def no_results(control_id: str) -> bytes:
    """A well-formed ORU^R01 with a patient but no OBR/OBX: nothing to classify."""
    return (
        "MSH|^~\\&|COPATH|GOODHEALTH|HER2-ADAPTER|ONCOLOGY|20240308162016-0500||ORU^R01|"
        f"{control_id}|P|2.5.1\rPID|1||TST000178^^^GOODHEALTH^MR||TEST^PATIENT\r"
    ).encode()


def segments(ack: bytes) -> dict[str, list[str]]:
    """An ACK's segments by name, split into fields (MSH-1 is field 1, as HL7 counts)."""
    parsed: dict[str, list[str]] = {}
    separator = ack[3:4].decode() or "|"
    for segment in ack.decode().split("\r"):
        if segment:
            fields = segment.split(separator)
            parsed[fields[0]] = ["MSH", separator, *fields[1:]] if fields[0] == "MSH" else fields
    return parsed


def msa_code(ack: bytes) -> str:
    return segments(ack)["MSA"][1]


class TickingClock:
    """A clock one second later at each reading, so an ACK rebuilt (not replayed) would differ."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> datetime:
        self.readings += 1
        return NOW + timedelta(seconds=self.readings)


@dataclass
class Running:
    """An MLLP server on an ephemeral loopback port, with its store."""

    server: MllpServer
    store: Store
    committer: GroupCommitter
    service: Service

    async def client(self) -> MllpClient:
        return await MllpClient.connect(LOOPBACK, self.server.port)

    async def settled(self) -> None:
        """Wait until outcomes queued behind their ACKs are committed (the queue is FIFO).

        Messages of one case combined again after their ACK are stored first (``drain``).
        """
        await self.service.drain()
        await self.committer.write([])


@asynccontextmanager
async def mllp_server(
    store: Store, *, tls: ssl.SSLContext | None = None, **settings: Any
) -> AsyncIterator[Running]:
    """Serve MLLP on an ephemeral loopback port over ``store`` (closed afterwards)."""
    service_settings = Settings(mllp_port=0, http_port=0, **settings)
    committer = GroupCommitter(store)
    service = Service(Context.from_settings(service_settings), committer, TickingClock())
    server = MllpServer(
        service,
        max_message_bytes=service_settings.max_message_bytes,
        limits=service_settings.mllp_limits,
        original_mode_senders=service_settings.original_mode_senders,
        tls=tls,
    )
    await server.start(LOOPBACK, 0)
    try:
        yield Running(server, store, committer, service)
    finally:
        await server.close(grace=5.0)
        await service.drain()
        await committer.close()
        store.close()


def run_mllp(
    tmp_path: Path,
    scenario: Callable[[Running], Awaitable[T]],
    *,
    timeout: float = 20.0,
    **settings: Any,
) -> T:
    """Run ``scenario`` against a fresh server on a SQLite store in tmp_path, bounded in time."""

    async def main() -> T:
        store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
        async with mllp_server(store, **settings) as running:
            return await asyncio.wait_for(scenario(running), timeout)

    return asyncio.run(main())


CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "hl7v2"
SENTINEL = "corpus-sentinel"


def corpus() -> list[tuple[str, bytes]]:
    """Every HL7 v2 fixture as an engine would send it: one frame per file, a dump as it is."""
    files = sorted(CORPUS.glob("*.hl7"))
    return [(path.name, path.read_bytes()) for path in files]


async def exchange(client: MllpClient, data: bytes, *, timeout: float = 10.0) -> list[bytes]:
    """Send one file (framed, or as it is when it is an MLLP dump) and every ACK it gets.

    An original-mode sentinel follows it: the frames before the sentinel's ACK are the file's,
    however many its messages' MSH-15/16 asked for.
    """
    if data.startswith(START_BLOCK):
        await client.write_raw(data)
    else:
        await client.write_raw(frame(data))
    await client.write_raw(frame(oru(SENTINEL)))
    answers: list[bytes] = []
    while True:
        ack = await client.receive(timeout=timeout)
        if segments(ack)["MSA"][2] == SENTINEL:
            return answers
        answers.append(ack)


def ack_view(ack: bytes) -> tuple[str, ...]:
    """An ACK without its time (MSH-7): MSA and ERR as sent, for comparing two transports."""
    parsed = segments(ack)
    return ("|".join(parsed["MSA"]), "|".join(parsed.get("ERR", [])))


def acks_in(answer: bytes) -> list[bytes]:
    """The ACKs of one answer frame: itself, or each ACK inside a response batch (FHS/BHS)."""
    if not answer.startswith((b"FHS", b"BHS")):
        return [answer]
    acks: list[bytes] = []
    for segment in answer.split(b"\r"):
        if segment.startswith(b"MSH"):
            acks.append(b"")
        if segment[:3] in (b"FHS", b"BHS", b"BTS", b"FTS") or not segment:
            continue
        acks[-1] += segment + b"\r"
    return acks
