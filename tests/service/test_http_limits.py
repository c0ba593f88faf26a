"""HTTP admission control in uvicorn's protocol: header and body deadlines, caps per source."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from http_support import oru
from service.test_server import free_port

from adapter.config import Settings
from adapter.service.server import Listening, serve

pytestmark = pytest.mark.timeout(60)
T = TypeVar("T")
HEAD = b"POST /hl7v2 HTTP/1.1\r\nhost: adapter\r\ncontent-type: text/plain\r\n"


def run_http(tmp_path: Path, scenario: Callable[[int], Awaitable[T]], **settings: Any) -> T:
    """``scenario(port)`` against serve() with HTTP only, on a SQLite store in tmp_path."""
    config = Settings.load(
        mllp_port=0,
        http_port=free_port(),
        workers=0,
        store=f"sqlite:///{tmp_path / 'store.db'}",
        **settings,
    )

    async def main() -> T:
        stop = asyncio.Event()
        ready: asyncio.Future[Listening] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            serve(config, stop=stop, handle_signals=False, on_ready=ready.set_result)
        )
        try:
            await asyncio.wait_for(ready, 20)
            return await asyncio.wait_for(scenario(config.http_port), 30)
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)

    return asyncio.run(main())


async def _open(port: int, source: str = "127.0.0.1") -> tuple[Any, Any]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _trickle_until_closed(writer: Any, reader: Any, data: bytes, pace: float) -> float:
    """Write ``data`` a byte at a time; seconds until the server closed the connection."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    for byte in data:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
            if await asyncio.wait_for(reader.read(1), pace) == b"":
                break
        except TimeoutError:
            continue
        except ConnectionError:
            break
    return loop.time() - started


def test_headers_trickled_past_their_deadline_are_cut(tmp_path: Path) -> None:
    async def scenario(port: int) -> float:
        reader, writer = await _open(port)
        took = await _trickle_until_closed(writer, reader, HEAD * 20, 0.05)
        writer.close()
        return took

    took = run_http(tmp_path, scenario, http_header_timeout=1.0)
    assert 0.9 <= took < 4.0


def test_a_body_trickled_past_its_deadline_is_cut_and_nothing_is_stored(tmp_path: Path) -> None:
    async def scenario(port: int) -> tuple[float, bytes]:
        reader, writer = await _open(port)
        writer.write(HEAD + b"content-length: 5000\r\n\r\n")
        took = await _trickle_until_closed(writer, reader, b"M" * 5000, 0.05)
        writer.close()
        # The service still answers a good request at once.
        reader, writer = await _open(port)
        body = oru("after-slow-body")
        writer.write(HEAD + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode())
        writer.write(body)
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return took, answer.split(b"\r\n", 1)[0]

    took, status = run_http(tmp_path, scenario, http_body_timeout=1.0)
    assert 0.9 <= took < 4.0
    assert status == b"HTTP/1.1 200 OK"


def test_a_source_over_its_share_is_refused_with_503_and_others_are_served(
    tmp_path: Path,
) -> None:
    async def scenario(port: int) -> tuple[bytes, bytes]:
        held = [await _open(port, "127.0.2.1") for _ in range(2)]
        reader, writer = await _open(port, "127.0.2.1")
        refused = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        reader, writer = await _open(port, "127.0.2.2")
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: adapter\r\nconnection: close\r\n\r\n")
        served = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        for _, each in held:
            each.close()
        return refused.split(b"\r\n", 1)[0], served.split(b"\r\n", 1)[0]

    refused, served = run_http(tmp_path, scenario, http_max_connections=3, http_max_per_source=2)
    assert refused == b"HTTP/1.1 503 Service Unavailable"
    assert served == b"HTTP/1.1 200 OK"


def test_headers_over_the_byte_cap_are_answered_431(tmp_path: Path) -> None:
    async def scenario(port: int) -> bytes:
        reader, writer = await _open(port)
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: adapter\r\n")
        for _ in range(100):
            writer.write(b"x-padding: " + b"p" * 1000 + b"\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return answer.split(b"\r\n", 1)[0]

    assert run_http(tmp_path, scenario) == b"HTTP/1.1 431 Request Header Fields Too Large"


def test_the_application_starts_once_the_body_is_complete(tmp_path: Path) -> None:
    """A request's application (here the token check) does not run while its body trickles in:
    a slow upload holds a buffer and its deadline, never a task and the middleware."""

    async def scenario(port: int) -> tuple[bytes, bytes]:
        reader, writer = await _open(port)
        body = oru("held-until-complete")
        writer.write(HEAD + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode())
        writer.write(body[:-10])
        await writer.drain()
        with pytest.raises(TimeoutError):  # no 401 yet: the application has not started
            await asyncio.wait_for(reader.read(1), 0.5)
        writer.write(body[-10:])
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        # A client that waits for 100 Continue gets it, and its answer, at once.
        reader, writer = await _open(port)
        writer.write(HEAD + f"content-length: {len(body)}\r\nexpect: 100-continue\r\n\r\n".encode())
        interim = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        return answer.split(b"\r\n", 1)[0], interim.strip()

    answer, interim = run_http(tmp_path, scenario, api_token="secret-token")
    assert answer == b"HTTP/1.1 401 Unauthorized"
    assert interim == b"HTTP/1.1 401 Unauthorized"


def test_refusals_are_logged_as_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A flood of refused connections is a line a second, not a line each."""

    async def scenario(port: int) -> None:
        held = [await _open(port, "127.0.2.1") for _ in range(2)]
        for _ in range(40):
            reader, writer = await _open(port, "127.0.2.1")
            await asyncio.wait_for(reader.read(), 10)
            writer.close()
        for _, each in held:
            each.close()

    with caplog.at_level("INFO", logger="her2_adapter.admission"):
        run_http(tmp_path, scenario, http_max_connections=3, http_max_per_source=2)
    lines = [each.getMessage() for each in caplog.records if "refused" in each.getMessage()]
    assert 1 <= len(lines) <= 5, lines
    assert "http connections:" in lines[0]
