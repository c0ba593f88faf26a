"""The one MLLP client: a sending connection as an interface engine opens one.

Used by ``replay`` against a live endpoint and by the tests; plain TCP or TLS (``ssl``). The
load bench (bench/mllp_load.py) sends with blocking sockets to spend less of the machine's CPU,
over the same framing (``adapter/ingest/mllp.py``).
"""

from __future__ import annotations

import asyncio
import ssl
from contextlib import suppress
from typing import Final

from adapter.ingest.mllp import frame
from adapter.service.mllp import READ_SIZE, Frame, FrameDecoder

MAX_ACK_BYTES: Final = 1024 * 1024


class MllpClient:
    """``send`` writes one framed message and reads the ACK frames it expects back.

    In enhanced mode a message may be answered by zero, one or two frames, so the caller says
    how many; ``receive`` reads one more, ``pending`` says whether one has already arrived.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(MAX_ACK_BYTES)
        self._ready: list[bytes] = []

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float = 10.0,
    ) -> MllpClient:
        """Open a connection (TLS with ``tls``); raises OSError or TimeoutError."""
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host,
                port,
                limit=READ_SIZE,
                ssl=tls,
                server_hostname=(server_hostname or host) if tls is not None else None,
            )
        return cls(reader, writer)

    async def send(self, message: bytes, *, expect: int = 1, timeout: float = 10.0) -> list[bytes]:
        self._writer.write(frame(message))
        await self._writer.drain()
        return [await self.receive(timeout=timeout) for _ in range(expect)]

    async def write_raw(self, data: bytes) -> None:
        """Bytes as given, framed or not (to test what a misbehaving sender does)."""
        self._writer.write(data)
        await self._writer.drain()

    async def receive(self, *, timeout: float = 10.0) -> bytes:
        """The next frame; raises ConnectionError if the server closes the connection first."""
        async with asyncio.timeout(timeout):
            while not self._ready:
                chunk = await self._reader.read(READ_SIZE)
                if not chunk:
                    raise ConnectionResetError("the MLLP server closed the connection")
                self._ready.extend(
                    item.payload for item in self._decoder.feed(chunk) if isinstance(item, Frame)
                )
        return self._ready.pop(0)

    async def close(self) -> None:
        self._writer.close()
        with suppress(ConnectionError, ssl.SSLError):
            await self._writer.wait_closed()
