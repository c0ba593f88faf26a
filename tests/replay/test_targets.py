"""The replay clients: MLLP framing and ACK codes, HTTP answers, pacing options."""

from __future__ import annotations

import asyncio

import pytest

from adapter.model import SourceFormat
from adapter.replay.run import UsageError, parse_rate
from adapter.replay.sources import SourceMessage
from adapter.replay.targets import MllpTarget, _http_observed

ORU = b"MSH|^~\\&|LAB|FAC|||20240101||ORU^R01|M1|P|2.5.1\rPID|1||X\r"


async def _ack_server(
    codes: list[bytes],
) -> tuple[asyncio.Server, int, list[bytes], asyncio.Event]:
    """An MLLP endpoint answering each frame with one ACK frame per code; ``done`` at hang-up."""
    received: list[bytes] = []
    done = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    frame = await reader.readuntil(b"\x1c\r")
                except asyncio.IncompleteReadError:
                    break
                received.append(frame)
                for code in codes:
                    writer.write(
                        b"\x0bMSH|^~\\&|A|B|||1||ACK|1|P|2.5.1\rMSA|" + code + b"|M1\r\x1c\r"
                    )
                await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()
            done.set()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], received, done


@pytest.mark.parametrize(
    ("msh_tail", "codes", "expected"),
    [
        pytest.param(b"", [b"AA"], "AA", id="original-mode"),
        pytest.param(b"|||AL|AL", [b"CA", b"AE"], "AE", id="enhanced-accept-then-application"),
        pytest.param(b"|||AL|NE", [b"CA"], "CA", id="enhanced-accept-only"),
    ],
)
def test_mllp_client_reads_the_application_ack(
    msh_tail: bytes, codes: list[bytes], expected: str
) -> None:
    """The message goes in one 0x0B..0x1C0D frame; the ACK code that decides is kept."""

    async def scenario() -> tuple[str | None, list[bytes]]:
        server, port, received, done = await _ack_server(codes)
        client = MllpTarget("127.0.0.1", port, timeout=5)
        data = ORU.replace(b"2.5.1\r", b"2.5.1" + msh_tail + b"\r", 1)
        observed = await client.send(SourceMessage(data, SourceFormat.HL7V2, "t"))
        await client.close()
        await asyncio.wait_for(done.wait(), 5)
        server.close()
        await server.wait_closed()
        return observed.ack, received

    ack, received = asyncio.run(scenario())
    assert ack == expected
    assert received == [
        b"\x0b" + ORU.replace(b"2.5.1\r", b"2.5.1" + msh_tail + b"\r", 1) + b"\x1c\r"
    ]


def test_mllp_refused_connection_is_a_replay_error() -> None:
    """No listener: the message's result is a failure, not an outcome."""

    async def scenario() -> str | None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        observed = await MllpTarget("127.0.0.1", port, 2).send(
            SourceMessage(ORU, SourceFormat.HL7V2, "t")
        )
        return observed.failure

    failure = asyncio.run(scenario())
    assert failure is not None
    assert "cannot connect" in failure


@pytest.mark.parametrize(
    ("status", "body", "field", "value"),
    [
        pytest.param(
            200,
            b'{"resourceType":"Bundle","id":"b"}',
            "bundle_json",
            b'{"resourceType":"Bundle","id":"b"}',
            id="bundle",
        ),
        pytest.param(
            422,
            b'{"resourceType":"OperationOutcome","issue":[{"details":{"coding":[{"code":"NO-HER2-RESULT"}]}}]}',
            "error_code",
            "NO-HER2-RESULT",
            id="operation-outcome",
        ),
        pytest.param(400, b"", "error_code", "HTTP-400", id="bare-status"),
        pytest.param(503, b"", "failure", "HTTP 503: the service is unavailable", id="transient"),
    ],
)
def test_http_answers(status: int, body: bytes, field: str, value: object) -> None:
    """A Bundle is kept, an OperationOutcome gives its error code, 503 is a replay failure."""
    assert getattr(_http_observed(status, body), field) == value


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("50", 50.0), ("50/s", 50.0), ("120/min", 2.0), ("0.5/s", 0.5)],
)
def test_rate(text: str, per_second: float) -> None:
    """--rate takes N, N/s or N/min."""
    assert parse_rate(text) == per_second


@pytest.mark.parametrize("text", ["0", "-1/s", "fast", "5/h"])
def test_bad_rate(text: str) -> None:
    """A rate that is not a positive number per second or minute is a usage error."""
    with pytest.raises(UsageError):
        parse_rate(text)
