"""The MLLP listener over real loopback sockets, with a SQLite store in tmp_path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hl7_strict import strict_ack
from mllp_support import Running, msa_code, no_results, oru, run_mllp, segments

from adapter.errors import StoreUnavailable
from adapter.service.mllp_client import MllpClient
from adapter.store import MessageStatus

pytestmark = pytest.mark.timeout(60)


def test_keep_alive_sender_gets_one_ack_per_message(tmp_path: Path) -> None:
    """A sender keeping its connection open gets one AA per message, in order."""

    async def scenario(running: Running) -> list[str]:
        client = await running.client()
        acks = [(await client.send(oru(f"ka-{n}")))[0] for n in range(3)]
        await client.close()
        return [segments(ack)["MSA"][2] for ack in acks if msa_code(ack) == "AA"]

    assert run_mllp(tmp_path, scenario) == ["ka-0", "ka-1", "ka-2"]


def test_sender_connecting_per_message(tmp_path: Path) -> None:
    """A sender opening a new connection for each message is answered on each."""

    async def scenario(running: Running) -> list[tuple[str, str]]:
        answers = []
        for n in range(3):
            client = await running.client()
            (ack,) = await client.send(oru(f"pm-{n}"))
            await client.close()
            answers.append((msa_code(ack), segments(ack)["MSA"][2]))
        return answers

    assert run_mllp(tmp_path, scenario) == [("AA", "pm-0"), ("AA", "pm-1"), ("AA", "pm-2")]


def test_eight_concurrent_senders_all_acked_and_stored(tmp_path: Path) -> None:
    """Eight senders at once: each ACK answers its own message and every message is processed."""

    async def one_sender(running: Running, sender: int) -> list[bool]:
        client = await running.client()
        answered = []
        for n in range(10):
            (ack,) = await client.send(oru(f"s{sender}-{n}"))
            answered.append(msa_code(ack) == "AA" and segments(ack)["MSA"][2] == f"s{sender}-{n}")
        await client.close()
        return answered

    async def scenario(running: Running) -> tuple[list[list[bool]], dict[MessageStatus, int]]:
        answers = await asyncio.gather(*(one_sender(running, s) for s in range(8)))
        await running.settled()
        return answers, running.store.counts().messages

    answers, counts = run_mllp(tmp_path, scenario)
    assert answers == [[True] * 10] * 8
    assert counts[MessageStatus.PROCESSED] == 80
    assert counts[MessageStatus.RECEIVED] == 0


def test_ack_fields(tmp_path: Path) -> None:
    """The ACK: ACK^R01^ACK, MSA-2 = inbound MSH-10, sender and receiver swapped, ends in CR."""

    async def scenario(running: Running) -> bytes:
        client = await running.client()
        (ack,) = await client.send(oru("fields-1"))
        await client.close()
        return ack

    ack = run_mllp(tmp_path, scenario)
    msh = segments(ack)["MSH"]
    assert msh[9] == "ACK^R01^ACK"
    assert msh[10] == "ACKfields-1"
    assert msh[3:7] == ["HER2-ADAPTER", "ONCOLOGY", "COPATH", "GOODHEALTH"]
    assert msh[12] == "2.5.1"
    assert segments(ack)["MSA"][1:3] == ["AA", "fields-1"]
    assert "ERR" not in segments(ack)
    assert ack.endswith(b"\r")
    assert not ack.endswith(b"\r\r")


@pytest.mark.parametrize(
    ("message", "code", "err_code", "condition"),
    [
        pytest.param(
            b"MSH|^~\\&|A|B|C|D|2024||ORU^R01|bad-1|P|2.5.1\rOBX|1|NM|x||1\rOBR|1\r",
            "AR",
            "HL7-MALFORMED",
            "100",
            id="malformed-AR",
        ),
        pytest.param(
            no_results("bad-2"), "AE", "NO-HER2-RESULT", "101", id="nothing-to-classify-AE"
        ),
        pytest.param(
            oru("bad-3", message_type="ADT^A01"), "AR", "HL7-UNSUPPORTED", "200", id="adt-AR"
        ),
    ],
)
def test_bad_input_gets_a_nak_with_err(
    tmp_path: Path, message: bytes, code: str, err_code: str, condition: str
) -> None:
    """Bad input is answered AE/AR, with the adapter error code in ERR, and is stored rejected."""

    async def scenario(running: Running) -> tuple[bytes, MessageStatus | None]:
        client = await running.client()
        (ack,) = await client.send(message)
        await client.close()
        control_id = segments(ack)["MSA"][2]
        await running.settled()
        row = running.store.get_message(control_id)
        return ack, None if row is None else row.status

    ack, status = run_mllp(tmp_path, scenario)
    parsed = segments(ack)
    assert parsed["MSA"][1] == code
    assert parsed["MSA"][3].startswith(f"{err_code}: ")
    err = "|".join(parsed["ERR"])
    assert err_code in err
    assert condition in err
    assert status is MessageStatus.REJECTED


GOOD, BAD = "good", "bad"


@pytest.mark.parametrize(
    ("accept", "application", "kind", "expected"),
    [
        pytest.param("AL", "AL", GOOD, ["CA", "AA"], id="AL-AL-good-CA-AA"),
        pytest.param("AL", "AL", BAD, ["CA", "AE"], id="AL-AL-bad-CA-AE"),
        pytest.param("AL", "NE", GOOD, ["CA"], id="AL-NE-good-CA-only"),
        pytest.param("NE", "AL", GOOD, ["AA"], id="NE-AL-good-AA-only"),
        pytest.param("NE", "NE", GOOD, [], id="NE-NE-nothing"),
        pytest.param("ER", "ER", GOOD, [], id="ER-ER-good-nothing"),
        pytest.param("ER", "ER", BAD, ["AE"], id="ER-ER-bad-AE"),
        pytest.param("SU", "SU", GOOD, ["CA", "AA"], id="SU-SU-good-CA-AA"),
        pytest.param("SU", "SU", BAD, ["CA"], id="SU-SU-bad-CA-only"),
        pytest.param("AL", "ER", BAD, ["CA", "AE"], id="AL-ER-bad-CA-AE"),
        pytest.param("", "AL", GOOD, ["CA", "AA"], id="empty-AL-accept-as-AL"),
        pytest.param("", "", GOOD, ["AA"], id="original-mode-AA"),
    ],
)
def test_enhanced_mode(
    tmp_path: Path, accept: str, application: str, kind: str, expected: list[str]
) -> None:
    """MSH-15/MSH-16 choose the accept (CA) and application (AA/AE) ACKs that are sent."""
    control_id = f"enh-{accept}-{application}-{kind}"
    message = oru(control_id, accept=accept, application=application)
    if kind == BAD:
        message = message.replace(b"85319-2", b"2345-7")  # glucose: nothing to classify

    async def scenario(running: Running) -> list[bytes]:
        client = await running.client()
        answers = await client.send(message, expect=len(expected))
        # The next message's ACK comes next: nothing else was sent for the first one.
        (follow_up,) = await client.send(oru("follow-up"))
        await client.close()
        return [*answers, follow_up]

    *answers, follow_up = run_mllp(tmp_path, scenario)
    assert [msa_code(ack) for ack in answers] == expected
    assert all(segments(ack)["MSA"][2] == control_id for ack in answers)
    assert segments(follow_up)["MSA"][2] == "follow-up"
    control_ids = [segments(ack)["MSH"][10] for ack in answers]
    assert len(set(control_ids)) == len(control_ids)  # accept and application ACKs differ


def _oversized(control_id: str, size: int, *, accept: str = "", application: str = "") -> bytes:
    head = oru(control_id, accept=accept, application=application)
    filler = b"NTE|1||" + b"x" * (size - len(head) - 8) + b"\r"
    return head + filler


def test_oversized_frame_is_answered_ar_and_its_prefix_stored(tmp_path: Path) -> None:
    """A frame over the limit gets AR TOO-LARGE; only its first 64 KiB are kept; the link lives."""
    big = _oversized("big-1", 300_000)

    async def scenario(running: Running) -> tuple[bytes, bytes, int, MessageStatus]:
        client = await running.client()
        (ack,) = await client.send(big)
        (after,) = await client.send(oru("after-big"))
        await client.close()
        await running.settled()
        row = running.store.get_message("big-1")
        assert row is not None
        return ack, after, len(row.raw), row.status

    ack, after, stored, status = run_mllp(tmp_path, scenario, max_message_bytes=100_000)
    assert segments(ack)["MSA"][1:3] == ["AR", "big-1"]
    assert "TOO-LARGE" in "|".join(segments(ack)["ERR"])
    assert "300000 bytes" in segments(ack)["MSA"][3]
    assert stored == 64 * 1024
    assert status is MessageStatus.REJECTED
    assert msa_code(after) == "AA"


def test_message_at_the_size_limit_is_processed(tmp_path: Path) -> None:
    """A message of exactly the limit is not oversized (the other side of the boundary)."""
    message = _oversized("edge-1", 100_000)
    assert len(message) == 100_000

    async def scenario(running: Running) -> bytes:
        client = await running.client()
        (ack,) = await client.send(message)
        await client.close()
        return ack

    assert msa_code(run_mllp(tmp_path, scenario, max_message_bytes=100_000)) == "AA"


def test_oversized_frame_in_enhanced_mode_gets_cr_only(tmp_path: Path) -> None:
    """Enhanced mode: an oversized message was not accepted, so CR and no application ACK."""
    big = _oversized("big-2", 200_000, accept="AL", application="AL")

    async def scenario(running: Running) -> tuple[bytes, bytes]:
        client = await running.client()
        (ack,) = await client.send(big)
        (after,) = await client.send(oru("after-big-2"))
        await client.close()
        return ack, after

    ack, after = run_mllp(tmp_path, scenario, max_message_bytes=100_000)
    assert segments(ack)["MSA"][1:3] == ["CR", "big-2"]
    assert "TOO-LARGE" in "|".join(segments(ack)["ERR"])
    assert segments(after)["MSA"][2] == "after-big-2"


def test_oversized_frame_without_accept_acks_still_gets_an_answer(tmp_path: Path) -> None:
    """MSH-15 NE, MSH-16 AL: no CR may be sent, so the refusal comes as the application AR."""
    big = _oversized("big-3", 200_000, accept="NE", application="AL")

    async def scenario(running: Running) -> bytes:
        client = await running.client()
        (ack,) = await client.send(big)
        await client.close()
        return ack

    ack = run_mllp(tmp_path, scenario, max_message_bytes=100_000)
    assert segments(ack)["MSA"][1:3] == ["AR", "big-3"]
    assert "TOO-LARGE" in "|".join(segments(ack)["ERR"])


def test_garbage_before_a_frame_is_ignored(tmp_path: Path) -> None:
    """Unframed bytes before a start block are discarded; the frame after them is answered."""

    async def scenario(running: Running) -> bytes:
        client = await running.client()
        await client.write_raw(b"\r\nnoise without framing\r\n")
        (ack,) = await client.send(oru("after-noise"))
        await client.close()
        return ack

    assert segments(run_mllp(tmp_path, scenario))["MSA"][1:3] == ["AA", "after-noise"]


def test_endless_garbage_closes_only_that_connection(tmp_path: Path) -> None:
    """Over 64 KiB with no start block: that connection is closed, others are still served."""

    async def scenario(running: Running) -> tuple[bool, bytes]:
        other = await running.client()
        noisy = await running.client()
        await noisy.write_raw(b"x" * (64 * 1024 + 1))
        try:
            await noisy.receive(timeout=5)
            closed = False
        except ConnectionError:
            closed = True
        await noisy.close()
        (ack,) = await other.send(oru("still-served"))
        await other.close()
        return closed, ack

    closed, ack = run_mllp(tmp_path, scenario)
    assert closed
    assert segments(ack)["MSA"][1:3] == ["AA", "still-served"]


@pytest.mark.parametrize(
    ("payload", "control_id"),
    [
        pytest.param(b"hello, not HL7", None, id="not-hl7"),
        pytest.param(b"", None, id="empty-frame"),
        pytest.param(b"PID|1||TST000178^^^GOODHEALTH^MR\rOBX|1|NM|x||1\r", None, id="no-msh"),
        pytest.param(b"MSH|^~\\&|A|B|C|D|2024||ORU^R01|", None, id="truncated-msh"),
        pytest.param(b"MSH|^~\\&|A|B|C|D|2024||ORU^R01|trunc-2|P", "trunc-2", id="msh-to-11"),
        pytest.param(
            b"MSH|^~\\&|A|B|C|D|2024||ORU^R01|junk-1|P|2.5.1\r\x00\x01junk\r",
            "junk-1",
            id="control-id-readable",
        ),
    ],
)
def test_frame_that_cannot_be_read_gets_ar_and_is_stored(
    tmp_path: Path, payload: bytes, control_id: str | None
) -> None:
    """Unreadable, headerless or truncated: AR with what could be read (MSA-2 UNREAD-<digest>
    when no MSH-10), an ERR saying why; the frame is stored and the connection stays open."""

    async def scenario(running: Running) -> tuple[bytes, bytes, int]:
        client = await running.client()
        (ack,) = await client.send(payload, timeout=5)
        (after,) = await client.send(oru("after-unreadable"))
        await client.close()
        return ack, after, sum(running.store.counts().messages.values())

    ack, after, stored = run_mllp(tmp_path, scenario)
    assert msa_code(ack) == "AR"
    echoed = segments(ack)["MSA"][2]
    if control_id is None:
        assert echoed.startswith("UNREAD-")
    else:
        assert echoed == control_id
    assert segments(ack)["ERR"][5] in ("HL7-MALFORMED", "HL7-UNSUPPORTED")
    strict_ack(ack)
    assert msa_code(after) == "AA"
    assert stored == 2


def test_inbound_ack_is_stored_and_not_answered(tmp_path: Path) -> None:
    """An ACK sent to the adapter gets no ACK back (no ACK loops), but it is kept."""
    inbound_ack = b"MSH|^~\\&|EHR|HOSP|HER2-ADAPTER|ONCOLOGY|2024||ACK^R01^ACK|in-ack-1|P|2.5.1\r"
    inbound_ack += b"MSA|AA|earlier-1\r"

    async def scenario(running: Running) -> tuple[bytes, bool]:
        client = await running.client()
        await client.send(inbound_ack, expect=0)
        (ack,) = await client.send(oru("after-ack"))
        await client.close()
        return ack, running.store.get_message("in-ack-1") is not None

    ack, stored = run_mllp(tmp_path, scenario)
    assert segments(ack)["MSA"][2] == "after-ack"
    assert stored


def test_duplicate_is_answered_identically_from_the_store(tmp_path: Path) -> None:
    """A resent message gets byte-identical ACK (the clock moved on) and is stored once."""

    async def scenario(running: Running) -> tuple[bytes, bytes, int]:
        client = await running.client()
        (first,) = await client.send(oru("dup-1"))
        (second,) = await client.send(oru("dup-1"))
        await client.close()
        return first, second, len(running.store.message_versions("dup-1"))

    first, second, versions = run_mllp(tmp_path, scenario)
    assert msa_code(first) == "AA"
    assert second == first
    assert versions == 1


def _break(running: Running) -> None:
    def unavailable(groups: Sequence[object]) -> list[object]:
        raise StoreUnavailable("sqlite: disk I/O error")

    running.store.write_batch = unavailable  # type: ignore[method-assign]


def test_store_unavailable_gets_no_ack_and_the_connection_closed(tmp_path: Path) -> None:
    """A store fault: no ACK at all and the connection closed, so the engine queues and retries."""

    async def scenario(running: Running) -> tuple[bool, bytes]:
        original = running.store.write_batch
        _break(running)
        client = await running.client()
        try:
            await client.send(oru("unstored-1"), timeout=5)
            closed = False
        except ConnectionError:
            closed = True
        await client.close()
        running.store.write_batch = original  # type: ignore[method-assign]
        retry = await running.client()
        (ack,) = await retry.send(oru("unstored-1"))
        await retry.close()
        return closed, ack

    closed, ack = run_mllp(tmp_path, scenario)
    assert closed
    assert segments(ack)["MSA"][1:3] == ["AA", "unstored-1"]


def test_shutdown_finishes_the_message_in_flight(tmp_path: Path) -> None:
    """Closing the server while a message is being stored still sends its ACK, then closes."""

    async def scenario(running: Running) -> tuple[str, bool]:
        original = running.store.write_batch

        def slow(groups: Sequence[object]) -> object:
            time.sleep(0.3)
            return original(groups)  # type: ignore[arg-type]

        running.store.write_batch = slow  # type: ignore[method-assign]
        client = await running.client()
        sending = asyncio.create_task(client.send(oru("in-flight-1")))
        await asyncio.sleep(0.1)  # the message is now waiting for its commit
        await running.server.close(grace=5.0)
        (ack,) = await sending
        try:
            await client.receive(timeout=5)
            closed = False
        except ConnectionError:
            closed = True
        await client.close()
        return msa_code(ack), closed

    code, closed = run_mllp(tmp_path, scenario)
    assert code == "AA"
    assert closed


def test_shutdown_closes_idle_connections(tmp_path: Path) -> None:
    """Idle connections are closed at shutdown rather than waited for."""

    async def scenario(running: Running) -> float:
        client: MllpClient = await running.client()
        await client.send(oru("idle-1"))
        started = time.perf_counter()
        await running.server.close(grace=5.0)
        with pytest.raises(ConnectionError):
            await client.receive(timeout=5)
        await client.close()
        return time.perf_counter() - started

    assert run_mllp(tmp_path, scenario) < 2.0


def test_a_sender_stalled_inside_a_frame_is_disconnected(tmp_path: Path) -> None:
    """Half a frame and then silence: the connection is dropped, others are still served."""

    async def scenario(running: Running) -> tuple[bytes, str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.server.port)
        writer.write(b"\x0b" + oru("stall-1")[:50])
        await writer.drain()
        closed = await asyncio.wait_for(reader.read(), 5)  # EOF once the server gives up
        writer.close()
        client = await running.client()
        (ack,) = await client.send(oru("after-stall"))
        await client.close()
        return closed, msa_code(ack)

    closed, code = run_mllp(tmp_path, scenario, mllp_frame_timeout=0.2)
    assert closed == b""
    assert code == "AA"


def test_connections_over_the_limit_are_refused(tmp_path: Path) -> None:
    """Beyond the connection limit a new connection is closed at once; open ones keep working."""

    async def scenario(running: Running) -> tuple[bytes, str]:
        first = await running.client()
        second = await running.client()
        (ack,) = await first.send(oru("limit-1"))
        await second.send(oru("limit-2"))
        reader, writer = await asyncio.open_connection("127.0.0.1", running.server.port)
        refused = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await first.close()
        await second.close()
        return refused, msa_code(ack)

    refused, code = run_mllp(tmp_path, scenario, mllp_max_connections=2, mllp_max_per_source=2)
    assert refused == b""
    assert code == "AA"
