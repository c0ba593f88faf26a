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
import ssl
import time
from collections.abc import Collection
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from adapter.emit.ack import (
    AcceptCode,
    AckHeader,
    accept_answer,
    batch_header_of,
    build_ack,
    build_batch_response,
    commit_code,
    forced_original_mode,
    header_from,
    hl7_timestamp,
    msa_code,
    plan,
)
from adapter.errors import AdapterError, MessageTooLarge, TransientError
from adapter.ingest.mllp import CARRIAGE_RETURN, END_BLOCK, START_BLOCK, frame
from adapter.model import SourceFormat
from adapter.pipeline import identify, split_frame
from adapter.service import metrics
from adapter.service.admission import ConnectionTable, Limits, ReadDeadline, peer_address
from adapter.service.handler import Service
from adapter.store import Receipt, Transport

log = logging.getLogger("her2_adapter.mllp")

KEEP_PREFIX: Final = 64 * 1024
"""How much of an oversized frame is kept (and stored) to read its header and answer it."""
MAX_GARBAGE: Final = 64 * 1024
"""Bytes without a start block after which a connection is taken to be no MLLP sender."""
READ_SIZE: Final = 64 * 1024
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
"""Caps and deadlines when none are given (``adapter.config.Settings`` has the same defaults)."""


class MllpServer:
    """Serves many MLLP connections; each handles its messages one at a time, in order."""

    def __init__(
        self,
        service: Service,
        *,
        max_message_bytes: int,
        limits: Limits = DEFAULT_LIMITS,
        original_mode_senders: Collection[str] = (),
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: serve MLLP over TLS (``tls_context``); ``original_mode_senders``: senders
        answered in original mode whatever MSH-15/16 ask (``emit.ack.forced_original_mode``)."""
        self._service = service
        self._max_message_bytes = max_message_bytes
        self._limits = limits
        self._original_mode_senders = frozenset(original_mode_senders)
        self._tls = tls
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
        self._server = await asyncio.start_server(
            self._accept, host, port, limit=READ_SIZE, ssl=self._tls
        )

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
        except (ConnectionError, ssl.SSLError):
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
            with suppress(ConnectionError, ssl.SSLError):
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
                self._admitted.note(f"closed at the deadline {deadline.reason}")
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

    async def _answer(self, item: Frame | OversizedFrame, writer: asyncio.StreamWriter) -> bool:
        """Handle one frame and send its answers; False when the connection must be closed.

        Each message of the frame is stored and answered in order; a batch (FHS/BHS) gets one
        response batch holding its messages' ACKs, once all of them are stored.
        """
        if isinstance(item, OversizedFrame):
            return await self._answer_message(item.prefix, writer, None, oversized=item)
        batch = batch_header_of(item.payload)
        collected: list[bytes] | None = None if batch is None else []
        for message in split_frame(item.payload):
            if not await self._answer_message(message, writer, collected):
                return False
        if batch is not None and collected is not None:
            acks = [ack.decode("utf-8") for ack in collected]
            response = build_batch_response(
                batch, acks, timestamp=hl7_timestamp(self._service.clock())
            )
            writer.write(frame(response.encode("utf-8")))
            await writer.drain()
        return True

    async def _answer_message(
        self,
        data: bytes,
        writer: asyncio.StreamWriter,
        collected: list[bytes] | None,
        *,
        oversized: OversizedFrame | None = None,
    ) -> bool:
        """Store, process and answer one message (into ``collected`` when inside a batch)."""
        started = time.perf_counter()
        identity = identify(data, SourceFormat.HL7V2)
        header = header_from(data, identity.msh)
        original = forced_original_mode(header, self._original_mode_senders)
        refusal = identity.refusal
        if oversized is not None:
            limit = self._max_message_bytes
            refusal = MessageTooLarge(f"{oversized.size} bytes is over the limit of {limit}")
        commit = commit_code(refusal)
        accept = accept_answer(header, commit, original_mode=original)
        codes: list[str] = []

        async def send(ack: bytes, code: str) -> None:
            codes.append(code)
            if collected is not None:
                collected.append(ack)
                return
            writer.write(frame(ack))  # a write of its own: some clients read one frame per read
            await writer.drain()

        async def commit_answer(_: Receipt) -> None:
            if accept is not None:
                await send(self._accept_ack(header, accept, refusal), accept)

        try:
            if oversized is not None:
                handled = await self._service.reject_oversized(
                    data, oversized.size, _TRANSPORT, format_hint=SourceFormat.HL7V2
                )
                await commit_answer(handled.receipt)
            else:
                # The commit ACK leaves as soon as the raw message is durable; the application
                # ACK once it is processed. Its outcome follows in the next group commit
                # (Service.handle explains what a crash in between leaves).
                handled = await self._service.handle(
                    data,
                    _TRANSPORT,
                    format_hint=SourceFormat.HL7V2,
                    wait_for_outcome=False,
                    identity=identity,
                    ack_header=header,
                    on_stored=commit_answer,
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
        if handled.ack is not None:
            application = plan(
                header, commit=commit, application=msa_code(handled.ack), original_mode=original
            ).application
            if application is not None:
                await send(handled.ack, application)
        outcome = "duplicate" if handled.duplicate else handled.status.value
        metrics.observe(
            _METRIC, outcome, time.perf_counter() - started, codes[0] if codes else None
        )
        for code in codes[1:]:
            metrics.acks(code).inc()
        log.debug(
            "mllp answered: control_id=%s acks=%s code=%s",
            header.control_id,
            ",".join(codes) or "none",
            handled.error_code,
        )
        return True

    def _accept_ack(
        self, header: AckHeader, code: AcceptCode, refusal: AdapterError | None
    ) -> bytes:
        ack = build_ack(header, code, timestamp=hl7_timestamp(self._service.clock()), error=refusal)
        return ack.encode("utf-8")


def tls_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or later); with ``client_ca``, clients must present a
    certificate that CA signed (mutual TLS). Raises OSError or ssl.SSLError for bad files."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


@dataclass(slots=True, eq=False)
class _ConnectionState:
    writer: asyncio.StreamWriter
    busy: bool = False  # a complete message is being handled and not yet answered
    closing: bool = False  # the server is shutting down: stop after the current message

    def evict(self) -> None:
        """Make room for a newcomer (admission.py): the read in progress sees the end."""
        self.writer.close()
