"""Admission control for the HTTP API, in uvicorn's protocol (``admission.py`` explains why).

uvicorn's own limits stop short of a slow peer: its keep-alive timer is cancelled by any byte,
there is no deadline for a request's headers or body, and ``limit_concurrency`` answers 503 only
once the headers are in, after the connection has held a descriptor all along. This protocol
adds, per connection: admission through a :class:`ConnectionTable` (a cap per source address
below the global one, with fair eviction), a deadline for the headers counted from the
request's first byte (or from the previous response), a deadline for the body counted from the
end of the headers, and a cap on the bytes of the headers. A connection past a deadline is
closed; nothing it sent was stored, so a sender that is merely slow can retry.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from adapter.service.admission import ConnectionTable, Limits, peer_address

log = logging.getLogger("her2_adapter.http")

MAX_HEADER_BYTES = 64 * 1024
"""Bytes a request may send before its headers are complete (answered 431 past it)."""

_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 5\r\ncontent-length: 0\r\n"
    b"connection: close\r\n\r\n"
)
_HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n"
    b"connection: close\r\n\r\n"
)


class AdmittedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with caps and deadlines; see :func:`admitted_protocol`.

    The application is called only once a request's body is complete (or once more of it is
    buffered than uvicorn holds before pausing the socket, or the client waits for a
    ``100 Continue``). A slow upload then costs the event loop its bytes and nothing else: no
    task, no middleware, no read woken per byte. Under the audit's 1,100 slow uploads the
    application's share for requests that never completed was what kept MLLP senders waiting
    (docs/performance.md, "Lock-out").
    """

    table: ClassVar[ConnectionTable[AdmittedHttpProtocol]]
    limits: ClassVar[Limits]
    body_timeout: ClassVar[float]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._source = "unknown"
        self._admitted = False
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_headers = False
        self._reading_body = False
        self._header_bytes = 0
        self._held_body: bytearray | None = None
        """The body read so far of a request whose application is not started yet."""

    @property
    def busy(self) -> bool:
        """A request whose body is in and whose answer is being made: never evicted."""
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete and not cycle.more_body

    def evict(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._source = peer_address(transport.get_extra_info("peername"))
        self._admitted = self.table.admit(self._source, self)
        if not self._admitted:
            transport.write(_REFUSED)
            transport.close()
            return
        self._expect_headers(self.limits.frame_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._held_body = None
        if self._admitted:
            self.table.release(self._source, self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        counting = self._reading_headers
        super().data_received(data)
        if not counting or not self._reading_headers or self.transport.is_closing():
            return  # these bytes completed the headers (the rest is body), or were body
        self._header_bytes += len(data)
        if self._header_bytes > MAX_HEADER_BYTES:
            log.warning("http connection closed: headers over %d bytes", MAX_HEADER_BYTES)
            self._cancel_deadline()
            self.transport.write(_HEADERS_TOO_LARGE)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._reading_body = True
        self._cancel_deadline()
        self._deadline = self.loop.call_later(self.body_timeout, self._body_overdue)
        if self.expect_100_continue or self.parser.should_upgrade():
            super().on_headers_complete()  # the client waits for an answer before its body
        else:
            self._held_body = bytearray()

    def on_body(self, body: bytes) -> None:
        held = self._held_body
        if held is None:
            super().on_body(body)
            return
        held += body
        if len(held) > HIGH_WATER_LIMIT:
            self._start_application()  # it reads on; uvicorn pauses the socket meanwhile

    def on_message_complete(self) -> None:
        self._reading_body = False
        self._cancel_deadline()
        if self._held_body is not None:
            self._start_application()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            # The next request's headers: after the keep-alive wait, the same deadline again.
            self._expect_headers(self.limits.idle_timeout + self.limits.frame_timeout)

    def _start_application(self) -> None:
        """What uvicorn does at the end of the headers, done now (the parser is still on this
        request), with the body read so far."""
        held, self._held_body = self._held_body, None
        super().on_headers_complete()
        if held:
            super().on_body(bytes(held))

    def _expect_headers(self, within: float) -> None:
        self._cancel_deadline()
        self._reading_headers = True
        self._header_bytes = 0
        self._deadline = self.loop.call_later(within, self._headers_overdue)

    def _headers_overdue(self) -> None:
        self._deadline = None
        if self._reading_headers and not self.transport.is_closing():
            self.table.note("closed: headers not complete in time")
            self.transport.close()

    def _body_overdue(self) -> None:
        self._deadline = None
        if self._reading_body and not self.transport.is_closing():
            self.table.note("closed: body not complete in time")
            self.transport.close()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def admitted_protocol(limits: Limits, *, body_timeout: float) -> type[AdmittedHttpProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with its own connection table.

    ``limits.frame_timeout`` is the header deadline, ``limits.idle_timeout`` the keep-alive.
    """
    if body_timeout <= 0:
        raise ValueError("body_timeout must be positive")
    table: ConnectionTable[AdmittedHttpProtocol] = ConnectionTable(limits, name="http")
    namespace = {"table": table, "limits": limits, "body_timeout": body_timeout}
    return type("ServiceHttpProtocol", (AdmittedHttpProtocol,), namespace)
