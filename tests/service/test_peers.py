"""Real peers send the fixture corpus: python-hl7's MLLP client and @medplum/hl7 (npm).

Each client's own view of every answer (MSA-1 and MSA-2 as it parses them) must be what our
client reads for the same message. The npm peer lives in tests/peers (``npm ci --prefix
tests/peers``, done by ``make test`` and ``.ci/run``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path

import hl7
import hl7.client
import pytest
from mllp_support import CORPUS, LOOPBACK, Running, acks_in, run_mllp, segments

from adapter.emit.ack import batch_header_of
from adapter.ingest.mllp import END_BLOCK, START_BLOCK
from adapter.pipeline import split_frame

pytestmark = pytest.mark.timeout(240)

PEERS = Path(__file__).resolve().parents[1] / "peers"
# Every sender of the corpus answered in original mode: one AA/AE/AR per message, what a
# one-response client needs (docs/interface-engines.md, Mirth).
ORIGINAL = ("COPATH", "EXLAB-LIS", "LAB", "ADT1")


def units() -> list[tuple[str, bytes]]:
    """The corpus as single messages (an MLLP dump unpacked), a batch kept whole."""
    found: list[tuple[str, bytes]] = []
    for path in sorted(CORPUS.glob("*.hl7")):
        data = path.read_bytes()
        if batch_header_of(data) is not None:
            found.append((path.name, data))
            continue
        unframed = data.replace(START_BLOCK, b"").replace(END_BLOCK, b"")
        found.extend((path.name, message) for message in split_frame(unframed))
    return found


View = tuple[tuple[str, str], ...]
"""MSA-1 and MSA-2 of each ACK in one answer (several in a response batch)."""


def _view(answer: bytes) -> View:
    return tuple((segments(ack)["MSA"][1], segments(ack)["MSA"][2]) for ack in acks_in(answer))


async def _ours(running: Running, messages: list[bytes]) -> list[View]:
    client = await running.client()
    views = [_view((await client.send(message))[0]) for message in messages]
    await client.close()
    return views


def _python_hl7(port: int, messages: list[bytes]) -> list[View]:
    """python-hl7's MLLPClient: one frame out, its answer read back, parsed by hl7.parse_hl7
    (a response batch as hl7.File / hl7.Batch of its ACKs)."""
    views: list[View] = []
    with hl7.client.MLLPClient(LOOPBACK, port) as client:
        for message in messages:
            raw = client.send_message(message)
            parsed = hl7.parse_hl7(raw.strip(b"\x0b\x1c\r").decode("latin-1"))
            batches = list(parsed) if isinstance(parsed, hl7.File) else [parsed]
            acks = [
                ack
                for batch in batches
                for ack in (batch if isinstance(batch, hl7.Batch) else [batch])
            ]
            views.append(tuple((str(a.segment("MSA")[1]), str(a.segment("MSA")[2])) for a in acks))
    return views


@pytest.mark.parametrize("sender_mode", ["as-asked", "original-mode"])
def test_python_hl7_sees_the_acks_we_see(tmp_path: Path, sender_mode: str) -> None:
    """python-hl7 (PyPI hl7) reads every answer to the corpus as our own client does."""
    corpus = units()
    messages = [message for _, message in corpus]
    original = ORIGINAL if sender_mode == "original-mode" else ()

    async def scenario(running: Running) -> tuple[list[View], list[View]]:
        theirs = await asyncio.to_thread(_python_hl7, running.server.port, messages)
        ours = await _ours(running, messages)  # copies now: answered as the first time
        return theirs, ours

    theirs, ours = run_mllp(tmp_path, scenario, timeout=200, original_mode_senders=original)
    assert theirs == ours
    codes = {code for view in theirs for code, _ in view}
    if sender_mode == "original-mode":
        assert codes <= {"AA", "AE", "AR"}
        assert {"AA", "AE", "AR"} <= codes  # the corpus holds all three outcomes
    else:
        assert "CA" in codes


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_medplum_hl7_sees_the_acks_we_see(tmp_path: Path) -> None:
    """@medplum/hl7's Hl7Client (sendAndWait, matching MSA-2 to MSH-10) gets every answer."""
    assert (PEERS / "node_modules" / "@medplum" / "hl7").is_dir(), (
        "npm peers missing: npm ci --prefix tests/peers"
    )
    corpus = [(name, m) for name, m in units() if batch_header_of(m) is None]
    messages = [message for _, message in corpus]
    payload = json.dumps([base64.b64encode(m).decode() for m in messages]).encode()

    async def scenario(running: Running) -> tuple[list[dict[str, str]], list[View]]:
        node = await asyncio.create_subprocess_exec(
            "node",
            str(PEERS / "medplum_send.js"),
            LOOPBACK,
            str(running.server.port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=PEERS,
        )
        out, err = await node.communicate(payload)
        assert node.returncode == 0, err.decode()
        return json.loads(out), await _ours(running, messages)

    theirs, ours = run_mllp(tmp_path, scenario, timeout=200, original_mode_senders=ORIGINAL)
    unmatched = [view for view in ours if view[0][1].startswith("UNREAD-")]
    assert sum("error" in seen for seen in theirs) <= len(unmatched) < len(ours) // 10
    for (name, message), seen, expected in zip(corpus, theirs, ours, strict=True):
        ((code, control_id),) = expected
        if "error" in seen:
            # Only a message without MSH-10 cannot be matched to an answer by this client.
            assert control_id.startswith("UNREAD-"), (name, seen)
            continue
        assert (seen["msa1"], seen["msa2"]) == (code, control_id), (name, message[:60])
