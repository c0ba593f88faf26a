"""Where a replay runs: in this process (optionally on several cores), or against a live endpoint.

In-process replay calls ``pipeline.process`` exactly as the services do. With ``jobs > 1``
messages go to worker processes, every message of a case to the same one, in input order
(``adapter.cases.parallel``); each worker builds its Context once, a bounded window of messages
is in flight, and results come back in input order, the same as with one process.

``mllp://host:port`` sends each HL7 v2 message in an MLLP frame and reads the ACK's MSA-1;
``http://host:port`` POSTs to ``/hl7v2`` or ``/fhir`` and keeps the returned Bundle (or the
OperationOutcome's error code). A file that could not be split is sent whole, for the
endpoint to reject as it would. Both honour ``rate`` (messages per second) and ``concurrency``
(connections / requests in flight) and give results in input order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from adapter.errors import AdapterError
from adapter.model import SourceFormat
from adapter.replay.expected import Observed
from adapter.replay.sources import KeySpec, SourceMessage, message_key

Result = tuple[SourceMessage, str | None, Observed]


@dataclass(frozen=True)
class EngineOptions:
    """What a worker needs to build its Context (picklable)."""

    mappings_dir: Path | None = None
    strict: bool = False
    validate: bool = False
    key: KeySpec = field(default_factory=KeySpec)


# --------------------------------------------------------------------------------------------
# In-process
# --------------------------------------------------------------------------------------------


def build_context(options: EngineOptions) -> Any:
    """The pipeline Context; raises ConfigError (e.g. a bad mapping directory)."""
    from adapter.config import Settings
    from adapter.pipeline import Context

    settings = Settings(mappings_dir=options.mappings_dir) if options.mappings_dir else Settings()
    return Context.from_settings(settings, strict=options.strict, validate=options.validate)


def run_one(
    message: SourceMessage, context: Any, cases: Any, position: int | None = None
) -> Observed:
    """Replay one message through ``pipeline.process``, combined with ``cases`` (a CaseLog).

    Messages are replayed in the order received, each combined with the earlier messages of
    its cases, as the service combined them (docs/cases.md); ``position``: its place in the
    input (with ``--jobs N``, a worker sees only some of the messages).
    """
    from adapter.cases import PriorMessage
    from adapter.pipeline import RawMessage, process

    if message.split_error is not None:
        return _error(message.split_error, message.format)
    context, fhir_source = _for_sender(message, context)
    raw = RawMessage(message.data, message.format, message.position)
    outcome = process(raw, context, cases.prior)
    if outcome.application is not None:
        # With its Bundle, a value not understood joins its case too, as in the service.
        prior = PriorMessage(message.data, message.format, fhir_source)
        cases.add(prior, outcome.application, position)
    if outcome.error is not None:
        return _error(outcome.error, message.format)
    return Observed(bundle_json=outcome.bundle_json)


def _for_sender(message: SourceMessage, context: Any) -> tuple[Any, str | None]:
    """A stored FHIR message's sender picks its mappings, as it did in the service."""
    if message.format is SourceFormat.FHIR and message.sender:
        return replace(context, fhir_source=message.sender), message.sender
    return context, None


def _error(error: AdapterError, kind: SourceFormat) -> Observed:
    from adapter.emit.ack import application_code  # the ACK code the services answer with

    ack = application_code(error) if kind is SourceFormat.HL7V2 else None
    return Observed(error_code=error.code, error_reason=error.reason, ack=ack)


def in_process(
    messages: Iterable[SourceMessage], options: EngineOptions, jobs: int = 1
) -> Iterator[Result]:
    """Replay each message here; ``jobs > 1`` uses that many worker processes, every case on
    one of them (``adapter.cases.parallel``), with the same results in the same order."""
    from adapter.cases.log import CaseLog

    context = build_context(options)  # with --jobs N too: fails fast, here, on bad mappings
    if jobs <= 1:
        cases = CaseLog()
        for message in messages:
            yield message, message_key(message, options.key), run_one(message, context, cases)
        return
    from adapter.cases.parallel import by_case
    from adapter.cases.route import route_numbers

    def route(message: SourceMessage) -> frozenset[str]:
        if message.split_error is not None:
            return frozenset()
        return route_numbers(message.data, message.format, _for_sender(message, context)[0])

    # The messages are kept here only until their result comes back (a bounded window).
    window: deque[SourceMessage] = deque()

    def sent() -> Iterator[SourceMessage]:
        for message in messages:
            window.append(message)
            yield message

    for key, observed in by_case(sent(), route, _start_worker, options, jobs):
        yield window.popleft(), key, observed


def _start_worker(options: EngineOptions) -> Any:
    """A worker's handler: its Context, built once."""
    context = build_context(options)

    def handle(message: SourceMessage, cases: Any, position: int) -> tuple[str | None, Observed]:
        return message_key(message, options.key), run_one(message, context, cases, position)

    return handle


# --------------------------------------------------------------------------------------------
# Live targets
# --------------------------------------------------------------------------------------------

Sender = Callable[[SourceMessage], Awaitable[Observed]]


async def paced(
    messages: Iterable[SourceMessage],
    send: Sender,
    key: KeySpec,
    *,
    concurrency: int,
    rate: float | None,
    on_result: Callable[[SourceMessage, str | None, Observed], None],
) -> None:
    """Send at most ``rate`` messages a second, ``concurrency`` at a time; report in order."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    pending: deque[tuple[SourceMessage, asyncio.Task[Observed]]] = deque()
    start = loop.time()

    async def guarded(message: SourceMessage) -> Observed:
        async with gate:
            return await send(message)

    async def settle_head() -> None:
        message, task = pending.popleft()
        on_result(message, message_key(message, key), await task)

    for index, message in enumerate(messages):
        if rate:
            await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
        pending.append((message, asyncio.create_task(guarded(message))))
        while pending and (len(pending) > 2 * concurrency or pending[0][1].done()):
            await settle_head()
    while pending:
        await settle_head()


class MllpTarget:
    """Sends to a live MLLP endpoint: one connection per concurrent sender, reopened after a
    failure, over the one MLLP client (``adapter.service.mllp_client``)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._idle: list[Any] = []

    async def send(self, message: SourceMessage) -> Observed:
        from adapter.service.mllp_client import MllpClient

        if message.format is not SourceFormat.HL7V2:
            return Observed(failure="FHIR input cannot be sent over MLLP (use an http:// target)")
        try:
            client = (
                self._idle.pop()
                if self._idle
                else await MllpClient.connect(self.host, self.port, timeout=self.timeout)
            )
        except (OSError, TimeoutError) as error:
            return Observed(failure=f"cannot connect to {self.host}:{self.port}: {error}")
        try:
            (first,) = await client.send(message.data, timeout=self.timeout)
            code = await self._application_code(client, ack_code(first), message.data)
        except (TimeoutError, OSError) as error:
            await client.close()
            return Observed(failure=f"no ACK from {self.host}:{self.port} ({type(error).__name__})")
        self._idle.append(client)
        return Observed(ack=code)

    async def _application_code(self, client: Any, code: str, data: bytes) -> str:
        """After an accept ACK (CA), the application ACK when one follows (``emit.ack``)."""
        from adapter.emit.ack import application_ack_follows, header_of

        follows = application_ack_follows(header_of(data))
        if code != "CA" or follows is False:
            return code
        try:  # ER/SU: it comes only for some outcomes, so it is waited for briefly
            return ack_code(await client.receive(timeout=self.timeout if follows else 0.5))
        except TimeoutError:
            return code

    async def close(self) -> None:
        for client in self._idle:
            await client.close()
        self._idle.clear()


def ack_code(ack: bytes) -> str:
    """MSA-1 of an ACK, or ``?`` when the answer is not a readable ACK."""
    from adapter.ingest import er7

    try:
        parsed = er7.parse_message(er7.decode_message(ack).text)
    except AdapterError:
        return "?"
    msa = parsed.first_segment("MSA")
    return (msa.field(1) if msa else "") or "?"


class HttpClient:
    """POSTs each message to a running adapter's HTTP API and keeps what it answers."""

    PATHS: ClassVar[dict[SourceFormat, str]] = {
        SourceFormat.HL7V2: "/hl7v2",
        SourceFormat.FHIR: "/fhir",
    }
    TYPES: ClassVar[dict[SourceFormat, str]] = {
        SourceFormat.HL7V2: "x-application/hl7-v2+er7",
        SourceFormat.FHIR: "application/fhir+json",
    }

    def __init__(self, base_url: str, timeout: float, concurrency: int) -> None:
        import httpx

        limits = httpx.Limits(max_connections=concurrency)
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits)
        self._base = base_url

    async def send(self, message: SourceMessage) -> Observed:
        import httpx

        try:
            response = await self._client.post(
                self.PATHS[message.format],
                content=message.data,
                headers={"content-type": self.TYPES[message.format]},
            )
        except httpx.HTTPError as error:
            return Observed(failure=f"no answer from {self._base} ({type(error).__name__})")
        return _http_observed(response.status_code, response.content)

    async def close(self) -> None:
        await self._client.aclose()


def _http_observed(status: int, body: bytes) -> Observed:
    import orjson

    try:
        document = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        document = None
    if (
        200 <= status < 300
        and isinstance(document, dict)
        and document.get("resourceType") == "Bundle"
    ):
        return Observed(bundle_json=body)
    if status in (502, 503, 504):  # transient: nothing was decided about the message
        return Observed(failure=f"HTTP {status}: the service is unavailable")
    if status >= 400:
        # the reason text is the service's own wording: only the error code is compared
        return Observed(error_code=_outcome_code(document) or f"HTTP-{status}")
    return Observed(failure=f"HTTP {status} without a Bundle")


def _outcome_code(document: Any) -> str | None:
    """The adapter error code from an OperationOutcome's first issue, if it names one."""
    if not isinstance(document, dict):
        return None
    for issue in document.get("issue", ())[:1]:
        for coding in (issue.get("details") or {}).get("coding", ()):
            if coding.get("code"):
                return str(coding["code"])
    return None
