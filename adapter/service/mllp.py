"""MLLP: HL7 v2 over TCP, each message framed as ``0x0B <message> 0x1C 0x0D``.

An ACK is sent only after ``Service.handle`` has durably stored the message. A store fault
(``TransientError``) gets no ACK and the connection is closed: interface engines treat AE/AR as
final, while a missing ACK makes them queue the message and resend it.

The :class:`FrameDecoder` is pure (bytes in, frames out) so framing is tested without sockets. A
frame over the size limit is read to its end but only its first 64 KiB are kept, so one huge
message cannot exhaust memory; it is answered AR (enhanced mode: CR).
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Final

from adapter.emit.ack import (
    AcceptCode,
    AckHeader,
    ApplicationCode,
    build_ack,
    enhanced_mode_decision,
    hl7_timestamp,
)
from adapter.errors import TransientError
from adapter.model import SourceFormat
from adapter.service import metrics
from adapter.service.admission import ConnectionTable, Limits, ReadDeadline, peer_address
from adapter.service.handler import Handled, Service, ack_header_of
from adapter.store import Transport

log = logging.getLogger("her2_adapter.mllp")

START_BLOCK: Final = b"\x0b"
END_BLOCK: Final = b"\x1c"
CARRIAGE_RETURN: Final = b"\r"
KEEP_PREFIX: Final = 64 * 1024
"""How much of an oversized frame is kept (and stored) to read its header and answer it."""
MAX_GARBAGE: Final = 64 * 1024
"""Bytes without a start block after which a connection is taken to be no MLLP sender."""
READ_SIZE: Final = 64 * 1024
MAX_ACK_BYTES: Final = 1024 * 1024
SHUTDOWN_GRACE: Final = 10.0
"""Seconds a message being handled at shutdown gets to finish and be answered."""

_TRANSPORT: Final = Transport.MLLP
_METRIC: Final = "mllp"


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete message between a start block and an end block."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class OversizedFrame:
    """A message over the size limit: its first bytes and its full size."""

    prefix: bytes
    size: int


class NoStartBlock(Exception):
    """More bytes than allowed arrived without a start block: not an MLLP sender."""


def frame(message: bytes) -> bytes:
    """The message with MLLP framing."""
    return START_BLOCK + message + END_BLOCK + CARRIAGE_RETURN


class FrameDecoder:
    """Incremental MLLP deframer: ``feed`` bytes as they arrive and get whole frames back.

    Bytes outside a frame are discarded and counted. A start block inside a frame abandons the
    partial frame (the sender restarted) and begins a new one. An end block not followed by CR is
    part of the message, as MLLP defines the end as the pair.
    """

    def __init__(
        self,
        max_frame: int,
        *,
        keep: int = KEEP_PREFIX,
        max_garbage: int = MAX_GARBAGE,
    ) -> None:
        if max_frame < 1 or keep < 1 or max_garbage < 0:
            raise ValueError("limits must be positive")
        self._max_frame = max_frame
        self._keep = min(keep, max_frame)
        self._max_garbage = max_garbage
        self._buffer = bytearray()
        self._in_frame = False
        self._size = 0
        self._end_pending = False  # an end block was the last byte seen; CR must follow
        self._garbage_run = 0
        self.discarded = 0
        """Bytes discarded so far: outside frames, or partial frames abandoned."""

    @property
    def in_frame(self) -> bool:
        """True while a frame has started and not ended (a partial message is buffered)."""
        return self._in_frame

    @property
    def buffered(self) -> int:
        """Bytes held for the current frame (at most the limit, or the prefix once over it)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame | OversizedFrame]:
        """Frames completed by these bytes, in order. Raises NoStartBlock past the garbage limit."""
        frames: list[Frame | OversizedFrame] = []
        position, length = 0, len(data)
        while position < length:
            if not self._in_frame:
                start = data.find(START_BLOCK, position)
                if start < 0:
                    self._discard(length - position)
                    break
                self._discard(start - position)
                self._open()
                position = start + 1
                continue
            if self._end_pending:
                self._end_pending = False
                if data[position] == CARRIAGE_RETURN[0]:
                    frames.append(self._close())
                    position += 1
                    continue
                self._append(END_BLOCK)
            end = data.find(END_BLOCK, position)
            restart = data.find(START_BLOCK, position, length if end < 0 else end)
            if restart >= 0:
                self._abandon(restart - position)
                position = restart + 1
                continue
            if end < 0:
                self._append(data[position:])
                break
            self._append(data[position:end])
            self._end_pending = True
            position = end + 1
        return frames

    def _open(self) -> None:
        self._in_frame = True
        self._garbage_run = 0
        self._size = 0
        self._buffer.clear()

    def _append(self, chunk: bytes) -> None:
        before = self._size
        self._size += len(chunk)
        if self._size <= self._max_frame:
            self._buffer += chunk
            return
        if before <= self._max_frame:  # this chunk crossed the limit: keep only the prefix
            del self._buffer[self._keep :]
        room = self._keep - len(self._buffer)
        if room > 0:
            self._buffer += chunk[:room]

    def _close(self) -> Frame | OversizedFrame:
        self._in_frame = False
        payload = bytes(self._buffer)
        self._buffer.clear()
        if self._size > self._max_frame:
            return OversizedFrame(payload, self._size)
        return Frame(payload)

    def _abandon(self, extra: int) -> None:
        self.discarded += self._size + extra + 1  # the partial frame and its start block
        self._open()

    def _discard(self, count: int) -> None:
        self.discarded += count
        self._garbage_run += count
        if self._garbage_run > self._max_garbage:
            raise NoStartBlock(f"{self._garbage_run} bytes without an MLLP start block")


DEFAULT_LIMITS: Final = Limits(
    max_connections=256, max_per_source=32, frame_timeout=60.0, idle_timeout=3600.0
)
"""Caps and deadlines when none are given (``ServiceSettings`` has the same defaults)."""


def _wants_application_ack(header: AckHeader) -> bool:
    return header.application_ack_type.strip().upper() not in ("NE", "SU")


class MllpServer:
    """Serves many MLLP connections; each handles its messages one at a time, in order."""

    def __init__(
        self, service: Service, *, max_message_bytes: int, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self._service = service
        self._max_message_bytes = max_message_bytes
        self._limits = limits
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], _ConnectionState] = {}
        self._admitted: ConnectionTable[_ConnectionState] = ConnectionTable(limits, name="mllp")

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the MLLP server is not listening")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._accept, host, port, limit=READ_SIZE)

    async def close(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting; let messages being handled finish and be answered; close the rest."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for state in self._connections.values():
            state.closing = True
            if not state.busy:
                state.writer.close()  # waiting for bytes: an unfinished frame was never ACKed
        pending = list(self._connections)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                self._connections[task].writer.transport.abort()
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        source = peer_address(writer.get_extra_info("peername"))
        state = _ConnectionState(writer)
        if not self._admitted.admit(source, state):
            # Refused before anything is read (admission.py): the connection fails and the
            # engine retries.
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None  # a stream callback always runs in a task
        self._connections[task] = state
        try:
            await self._serve(reader, writer, state)
        except ConnectionError:
            log.info("mllp connection lost")
        except NoStartBlock:
            log.warning("mllp connection closed: no start block")
        except asyncio.CancelledError:
            # Only ``close`` cancels a connection, after its grace period; the stream callback
            # would log the cancellation as an error.
            log.warning("mllp connection aborted at shutdown")
        finally:
            del self._connections[task]
            self._admitted.release(source, state)
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: _ConnectionState
    ) -> None:
        decoder = FrameDecoder(self._max_message_bytes)
        # A sender that is slow to complete a frame (trickling counts as slow), or idles long
        # after its last message, holds a buffer and a socket: at its deadline it is
        # disconnected, and can resend (admission.py).
        deadline = ReadDeadline(self._limits, asyncio.get_running_loop().time)
        while not state.closing:
            try:
                # asyncio.timeout rather than wait_for: no extra task for every read.
                async with asyncio.timeout_at(deadline.when):
                    chunk = await reader.read(READ_SIZE)
            except TimeoutError:
                log.info("mllp connection timed out %s", deadline.reason)
                return
            if not chunk:
                if decoder.in_frame:
                    log.info("mllp connection closed inside a frame")
                return
            messages = decoder.feed(chunk)
            for message in messages:
                state.busy = True
                keep_open = await self._answer(message, writer)
                state.busy = False
                if not keep_open or state.closing:
                    return
            deadline.observe(in_frame=decoder.in_frame, completed=len(messages))

    async def _answer(self, message: Frame | OversizedFrame, writer: asyncio.StreamWriter) -> bool:
        """Handle one message and send its ACKs; False when the connection must be closed."""
        started = time.perf_counter()
        oversized = isinstance(message, OversizedFrame)
        data = message.prefix if isinstance(message, OversizedFrame) else message.payload
        header = ack_header_of(data)
        try:
            if isinstance(message, OversizedFrame):
                handled = await self._service.reject_oversized(
                    message.prefix, message.size, _TRANSPORT, ack_header=header
                )
            else:
                # The ACK waits for the raw message's commit only; its outcome follows in the
                # next group commit (Service.handle explains what a crash in between leaves).
                handled = await self._service.handle(
                    message.payload,
                    _TRANSPORT,
                    format_hint=SourceFormat.HL7V2,
                    wait_for_outcome=False,
                    ack_header=header,
                )
        except TransientError as error:
            log.warning("mllp no ack: control_id=%s code=%s", header.control_id, error.code)
            metrics.observe(_METRIC, "unstored", time.perf_counter() - started)
            return False
        except Exception as bug:  # noqa: BLE001 - one message's bug must not stop the listener
            # The exception type only: its text or traceback may quote message content.
            log.error(
                "mllp no ack: control_id=%s internal %s", header.control_id, type(bug).__name__
            )
            metrics.observe(_METRIC, "unstored", time.perf_counter() - started)
            return False
        replies = self._replies(header, handled, oversized=oversized)
        outcome = "duplicate" if handled.duplicate else handled.status.value
        if replies is None:
            log.info("mllp closed: no control id to answer, code=%s", handled.error_code)
            metrics.observe(_METRIC, outcome, time.perf_counter() - started)
            return False
        codes = [code for code, _ in replies]
        writer.writelines(frame(ack) for _, ack in replies)
        await writer.drain()
        metrics.observe(
            _METRIC, outcome, time.perf_counter() - started, codes[0] if codes else None
        )
        for code in codes[1:]:
            metrics.ACKS.labels(code=code).inc()
        log.debug(
            "mllp answered: control_id=%s acks=%s code=%s",
            header.control_id,
            ",".join(codes) or "none",
            handled.error_code,
        )
        return True

    def _replies(
        self, header: AckHeader, handled: Handled, *, oversized: bool
    ) -> list[tuple[str, bytes]] | None:
        """The ACK frames to send as (MSA-1, ACK) pairs; None when nobody can be answered."""
        if header.message_type.upper() == "ACK":
            return []  # never ACK an ACK: it is stored, and answering could loop between peers
        if handled.ack is None or not header.control_id:
            return None
        application = msa_code(handled.ack)
        if not header.accept_ack_type.strip() and not header.application_ack_type.strip():
            return [(application, handled.ack)]
        accept: AcceptCode = "CR" if oversized else "CA"
        plan = enhanced_mode_decision(
            header.accept_ack_type,
            header.application_ack_type,
            accept=accept,
            application=application,
        )
        replies: list[tuple[str, bytes]] = []
        if plan.accept is not None:
            replies.append((plan.accept, self._accept_ack(header, plan.accept, handled)))
        if plan.application is not None:
            replies.append((plan.application, handled.ack))
        if not replies and oversized and _wants_application_ack(header):
            # Accept ACKs off (NE) and the message refused before processing: the application
            # ACK the sender waits for would never come, so the refusal is said there (AR).
            replies.append((application, handled.ack))
        return replies

    def _accept_ack(self, header: AckHeader, code: AcceptCode, handled: Handled) -> bytes:
        ack = build_ack(
            header,
            code,
            control_id=accept_control_id(header.control_id),
            timestamp=hl7_timestamp(self._service.clock()),
            error=handled.error if code != "CA" else None,
        )
        return ack.encode("utf-8")


@dataclass(slots=True, eq=False)
class _ConnectionState:
    writer: asyncio.StreamWriter
    busy: bool = False  # a complete message is being handled and not yet answered
    closing: bool = False  # the server is shutting down: stop after the current message

    def evict(self) -> None:
        """Make room for a newcomer (admission.py): the read in progress sees the end."""
        self.writer.close()


def accept_control_id(inbound: str) -> str:
    """The accept ACK's own MSH-10, distinct from the application ACK's (``ACK<id>``)."""
    return ("ACC" + inbound)[:199] if inbound else "ACC"


_APPLICATION_CODES: Final[dict[bytes, ApplicationCode]] = {b"AA": "AA", b"AE": "AE", b"AR": "AR"}


def msa_code(ack: bytes) -> ApplicationCode:
    """MSA-1 of a stored application ACK (AA, AE or AR)."""
    separator = ack[3:4]
    for segment in ack.split(b"\r"):
        if segment.startswith(b"MSA" + separator):
            code = _APPLICATION_CODES.get(segment[4:6])
            if code is not None:
                return code
    raise ValueError("the stored ACK has no MSA-1 of AA, AE or AR")


class MllpClient:
    """A sending connection, as an interface engine opens one (used by the load bench and tests).

    ``send`` writes one framed message and reads the ACK frames it expects back; in enhanced
    mode a message may be answered by zero, one or two frames, so the caller says how many.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(MAX_ACK_BYTES)
        self._ready: list[bytes] = []

    @classmethod
    async def connect(cls, host: str, port: int) -> MllpClient:
        reader, writer = await asyncio.open_connection(host, port, limit=READ_SIZE)
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
        with suppress(ConnectionError):
            await self._writer.wait_closed()
