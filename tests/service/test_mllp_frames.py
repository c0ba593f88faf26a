"""Every MLLP frame gets an answer: BOMs, batches, several messages, the corpus; commit-first."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import pytest
from hl7_strict import strict_ack
from mllp_support import (
    CORPUS,
    Running,
    acks_in,
    corpus,
    exchange,
    msa_code,
    oru,
    run_mllp,
    segments,
)

from adapter.pipeline import split_frame
from adapter.service.handler import Service
from adapter.store import MessageStatus

pytestmark = pytest.mark.timeout(120)

BOM = b"\xef\xbb\xbf"
EXPECTATIONS = tomllib.loads((CORPUS / "expectations.toml").read_text())


def test_a_bom_before_msh_is_read(tmp_path: Path) -> None:
    """A UTF-8 BOM at the start of a frame is accepted as convert accepts it."""

    async def scenario(running: Running) -> bytes:
        client = await running.client()
        (ack,) = await client.send(BOM + oru("bom-1"))
        await client.close()
        return ack

    ack = run_mllp(tmp_path, scenario)
    assert segments(ack)["MSA"][1:3] == ["AA", "bom-1"]


def test_two_messages_in_one_frame_are_each_stored_and_answered(tmp_path: Path) -> None:
    """Two messages in one frame: two ACKs, in order, and two stored rows."""

    async def scenario(running: Running) -> tuple[list[bytes], list[MessageStatus | None]]:
        client = await running.client()
        acks = await client.send(oru("two-a") + oru("two-b", score="0^Negative (0)^L"), expect=2)
        await client.close()
        await running.settled()
        rows = [running.store.get_message(cid) for cid in ("two-a", "two-b")]
        return acks, [row.status if row else None for row in rows]

    acks, statuses = run_mllp(tmp_path, scenario)
    assert [segments(ack)["MSA"][1:3] for ack in acks] == [["AA", "two-a"], ["AA", "two-b"]]
    assert statuses == [MessageStatus.PROCESSED, MessageStatus.PROCESSED]


def test_a_batch_gets_one_response_batch_with_each_messages_ack(tmp_path: Path) -> None:
    """FHS/BHS: one frame back, the envelope swapped with the inbound ids referenced, an ACK per
    message in order (its own MSH-15/16 choosing which), BTS counting them; all stored."""
    batch = (CORPUS / "batch-3.hl7").read_bytes()
    control_ids = ["batch-3-1", "batch-3-2", "batch-3-3"]

    async def scenario(running: Running) -> tuple[bytes, int]:
        client = await running.client()
        (response,) = await client.send(batch)
        (after,) = await client.send(oru("after-batch"))
        await client.close()
        await running.settled()
        assert msa_code(after) == "AA"
        rows = [running.store.get_message(cid) for cid in control_ids]
        return response, sum(row is not None for row in rows)

    response, stored = run_mllp(tmp_path, scenario)
    lines = response.decode().split("\r")
    assert lines[0].startswith("FHS|")
    assert lines[1].startswith("BHS|")
    assert lines[-3:] == ["BTS|3", "FTS|1", ""]
    acks = acks_in(response)
    assert [segments(ack)["MSA"][2] for ack in acks] == control_ids
    for ack in acks:
        strict_ack(ack)
    assert stored == 3


def test_enhanced_mode_commit_ack_leaves_before_processing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AL/AL: CA is written as soon as the message is stored, in its own frame, while the
    message is still being processed; the AA follows once processing is done."""
    release = asyncio.Event()
    process = Service._process

    async def held(self: Service, *args: object) -> object:
        await release.wait()
        return await process(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Service, "_process", held)

    async def scenario(running: Running) -> tuple[bytes, bytes]:
        client = await running.client()
        await client.write_raw(b"\x0b" + oru("commit-1", accept="AL", application="AL") + b"\x1c\r")
        commit = await client.receive(timeout=10)  # arrives while processing is held
        release.set()
        application = await client.receive(timeout=10)
        await client.close()
        return commit, application

    commit, application = run_mllp(tmp_path, scenario)
    assert segments(commit)["MSA"][1:3] == ["CA", "commit-1"]
    assert segments(application)["MSA"][1:3] == ["AA", "commit-1"]


@pytest.mark.parametrize(
    ("version", "kind", "condition"),
    [
        pytest.param("2.1", "ORU^R01", "203", id="version-2.1"),
        pytest.param("2.9", "ORU^R01^ORU_R01", "203", id="version-2.9"),
        pytest.param("2.5.1", "ADT^A01^ADT_A01", "200", id="type-ADT"),
        pytest.param("2.5.1", "ORU^R30^ORU_R30", "201", id="event-R30"),
    ],
)
def test_a_refused_version_or_type_is_committed_cr(
    tmp_path: Path, version: str, kind: str, condition: str
) -> None:
    """Enhanced mode: a version or type the adapter does not take is CR (chapter 2), with its
    table 0357 code, and no application ACK follows; the message is stored as rejected."""
    message = oru("refused-1", accept="AL", application="AL", version=version, message_type=kind)

    async def scenario(running: Running) -> tuple[bytes, bytes, MessageStatus | None]:
        client = await running.client()
        (ack,) = await client.send(message)
        (after,) = await client.send(oru("after-refused"))  # nothing else came for the first
        await client.close()
        await running.settled()
        row = running.store.get_message("refused-1")
        return ack, after, row.status if row else None

    ack, after, status = run_mllp(tmp_path, scenario)
    assert segments(ack)["MSA"][1:3] == ["CR", "refused-1"]
    err = segments(ack)["ERR"]
    assert (err[1] if version == "2.1" else err[3].split("^")[0]) == condition  # 2.1: ERR-1
    strict_ack(ack)
    assert segments(after)["MSA"][2] == "after-refused"
    assert status is MessageStatus.REJECTED


@pytest.mark.parametrize(
    ("senders", "expected"),
    [
        pytest.param((), ["CA", "AE"], id="not-listed-enhanced"),
        pytest.param(("COPATH",), ["AE"], id="listed-by-application"),
        pytest.param(("COPATH^GOODHEALTH",), ["AE"], id="listed-by-application-and-facility"),
        pytest.param(("COPATH^ELSEWHERE",), ["CA", "AE"], id="other-facility-not-listed"),
    ],
)
def test_original_mode_forced_per_sender(
    tmp_path: Path, senders: tuple[str, ...], expected: list[str]
) -> None:
    """original_mode_senders: one AA/AE/AR per message whatever MSH-15/16 ask (AL/NE here would
    otherwise never tell this sender its message was rejected)."""
    message = oru("forced-1", accept="AL", application="AL", score="")

    async def scenario(running: Running) -> list[bytes]:
        client = await running.client()
        acks = await client.send(message, expect=len(expected))
        (after,) = await client.send(oru("after-forced"))
        await client.close()
        assert segments(after)["MSA"][2] == "after-forced"
        return acks

    acks = run_mllp(tmp_path, scenario, original_mode_senders=senders)
    assert [msa_code(ack) for ack in acks] == expected


BODY_ERRORS = {"bad-obx-before-obr.hl7"}
"""Refused for what its body holds, found while processing: committed CA, then AR."""


def _expected_codes(name: str, data: bytes) -> list[str]:
    """The MSA-1 codes a fixture file's messages must get, from expectations.toml."""
    expected = EXPECTATIONS[name]
    messages = split_frame(data.replace(b"\x0b", b"").replace(b"\x1c", b""))
    codes: list[str] = []
    for message in messages:
        fields = message.replace(b"\n", b"\r").split(b"\r", 1)[0].split(message[3:4])
        enhanced = len(fields) > 14 and any(f.strip() for f in fields[14:16])
        wants_application = len(fields) <= 15 or fields[15].strip() not in (b"NE", b"ER")
        error = expected.get("error")
        if not enhanced:
            codes.append("A?" if error else "AA")
        elif error in ("HL7-UNSUPPORTED", "HL7-MALFORMED", "ENCODING") and name not in BODY_ERRORS:
            codes.append("C?")
        else:
            codes.append("CA")
            if wants_application:
                codes.append("A?" if error else "AA")
    return codes


def test_the_corpus_over_mllp_gets_valid_acks_that_match_the_expectations(
    tmp_path: Path,
) -> None:
    """Each fixture file as one frame: every ACK is valid under hl7apy's strict parser, echoes
    its message's MSH-10, and says accepted or not as expectations.toml says."""

    async def scenario(running: Running) -> dict[str, list[bytes]]:
        client = await running.client()
        answers = {name: await exchange(client, data) for name, data in corpus()}
        await client.close()
        return answers

    answers = run_mllp(tmp_path, scenario, timeout=100)
    for name, data in corpus():
        acks = [ack for answer in answers[name] for ack in acks_in(answer)]
        assert acks, name
        for ack in acks:
            strict_ack(ack)
        codes = [msa_code(ack) for ack in acks]
        wanted = _expected_codes(name, data)
        assert len(codes) == len(wanted), (name, codes, wanted)
        for code, want in zip(codes, wanted, strict=True):
            assert code == want or (want.endswith("?") and code[0] == want[0] and code[1] != "A"), (
                name,
                codes,
                wanted,
            )
