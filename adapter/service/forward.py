"""Forwarding: each Bundle in the store's outbox is POSTed to the FHIR server as a transaction.

Two layers of retry. A connection error is retried at once a few times within one attempt
(tenacity), since most are a dropped keep-alive connection. Anything still failing, a 5xx, 408 or
429 is rescheduled in the store (``mark_retry``) with exponential back-off, so the schedule
survives a restart; after ``forward_max_attempts`` attempts the item is dead. Any other 4xx means
the server refuses this Bundle: resending will not help, so it is dead at once, with the server's
OperationOutcome text kept for review (``GET /messages/{id}``).

Bundle entries are PUTs with deterministic ids, so sending a Bundle twice (a timeout after the
server committed) does no harm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from adapter.config import Settings
from adapter.errors import StoreUnavailable
from adapter.service.handler import Clock
from adapter.service.metrics import FORWARDS
from adapter.store import OutboxItem, Store

log = logging.getLogger("her2_adapter.forward")

RETRYABLE_STATUSES = frozenset({408, 429})
ERROR_TEXT_LIMIT = 1000


@dataclass(frozen=True)
class ForwardPolicy:
    """Timings of the forwarder; the defaults suit production, tests shorten them."""

    poll_seconds: float = 1.0  # how often the outbox is looked at for due items
    batch: int = 50  # items taken per look
    timeout_seconds: float = 30.0  # per HTTP request
    connect_tries: int = 3  # in-call tries on a connection error
    connect_wait_seconds: float = 0.5  # first in-call wait, doubling
    backoff_seconds: float = 5.0  # first durable retry delay, doubling per attempt
    backoff_max_seconds: float = 3600.0

    def delay(self, attempts: int) -> timedelta:
        """Wait before the next attempt, after ``attempts`` failed ones (1, 2, ...)."""
        seconds = self.backoff_seconds * 2 ** max(attempts - 1, 0)
        return timedelta(seconds=min(seconds, self.backoff_max_seconds))


@dataclass(frozen=True)
class Attempt:
    """One attempt's result: sent, or failed with whether to try again."""

    sent: bool
    retryable: bool = False
    error: str = ""
    retry_after: float | None = None  # seconds the server asked for (429 / 503)


class Forwarder:
    """Sends due outbox items; one instance per running service."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        client: httpx.AsyncClient,
        policy: ForwardPolicy | None = None,
    ) -> None:
        if not settings.fhir_base:
            raise ValueError("forwarding needs settings.fhir_base")
        self.store = store
        self.url = settings.fhir_base.rstrip("/")
        self.max_attempts = max(settings.forward_max_attempts, 1)
        self.clock = clock
        self.client = client
        self.policy = policy or ForwardPolicy()

    async def run_once(self) -> int:
        """Sends every item due now; returns how many were tried."""
        items = await asyncio.to_thread(self.store.due, self.clock(), self.policy.batch)
        for item in items:
            await self.forward(item)
        return len(items)

    async def forward(self, item: OutboxItem) -> None:
        attempt = await self.send(item.bundle)
        now = self.clock()
        try:
            if attempt.sent:
                await asyncio.to_thread(self.store.mark_sent, item.outbox_id, now)
                result = "sent"
            elif attempt.retryable and item.attempts + 1 < self.max_attempts:
                delay = self.policy.delay(item.attempts + 1)
                if attempt.retry_after is not None:
                    delay = max(delay, timedelta(seconds=attempt.retry_after))
                await asyncio.to_thread(
                    self.store.mark_retry, item.outbox_id, now, now + delay, attempt.error
                )
                result = "retry"
            else:
                await asyncio.to_thread(self.store.mark_dead, item.outbox_id, now, attempt.error)
                result = "dead"
        except LookupError:
            return  # no longer pending: another forwarder finished it meanwhile
        FORWARDS.labels(result=result).inc()
        log.info(
            "bundle forwarded" if attempt.sent else "bundle not forwarded",
            extra={"outbox_id": item.outbox_id, "result": result},
        )

    async def send(self, bundle: bytes) -> Attempt:
        """POSTs the transaction; connection errors are retried within the call."""
        policy = self.policy
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(policy.connect_tries, 1)),
            wait=wait_exponential(multiplier=policy.connect_wait_seconds),
            retry=retry_if_exception_type(httpx.TransportError),
            reraise=True,
        )
        try:
            async for try_ in retrying:
                with try_:
                    response = await self.client.post(
                        self.url,
                        content=bundle,
                        headers={
                            "Content-Type": "application/fhir+json",
                            "Accept": "application/fhir+json",
                        },
                        timeout=policy.timeout_seconds,
                    )
        except httpx.TransportError as error:
            return Attempt(False, retryable=True, error=f"{type(error).__name__}: {error}"[:200])
        return _judge(response)


def _judge(response: httpx.Response) -> Attempt:
    status = response.status_code
    if 200 <= status < 300:
        return Attempt(True)
    error = f"HTTP {status}: {_outcome_text(response)}"[:ERROR_TEXT_LIMIT]
    retryable = status >= 500 or status in RETRYABLE_STATUSES
    return Attempt(False, retryable=retryable, error=error, retry_after=_retry_after(response))


def _outcome_text(response: httpx.Response) -> str:
    """The diagnostics of the server's OperationOutcome, or the start of whatever it sent."""
    try:
        document: Any = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(document, dict) and document.get("resourceType") == "OperationOutcome":
        texts = [
            str(issue.get("diagnostics") or issue.get("details", {}).get("text") or "")
            for issue in document.get("issue", [])
            if isinstance(issue, dict)
        ]
        joined = "; ".join(text for text in texts if text)
        if joined:
            return joined
    return response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


async def run_forwarder(
    store: Store,
    settings: Settings,
    clock: Clock,
    stop: asyncio.Event,
    *,
    client: httpx.AsyncClient | None = None,
    policy: ForwardPolicy | None = None,
) -> None:
    """Forwards due outbox items until ``stop`` is set; returns at once without fhir_base."""
    if not settings.fhir_base:
        return
    policy = policy or ForwardPolicy()
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(httpx.AsyncClient())
        forwarder = Forwarder(store, settings, clock, client, policy)
        while not stop.is_set():
            try:
                tried = await forwarder.run_once()
            except StoreUnavailable as error:
                log.warning("outbox unreadable", extra={"error_code": error.code})
                tried = 0
            if tried >= policy.batch:
                continue  # more may be due: no pause
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), policy.poll_seconds)
