"""Group commit: many concurrent writers, one durable transaction per batch.

With ``synchronous=FULL`` every SQLite commit waits for the disk (~1-5 ms). Eight MLLP connections
each waiting for their own commit would queue behind each other; instead every request waiting
while a commit runs goes into the next one. A single writer task takes everything queued, runs it
in one transaction on a dedicated thread, and only after the commit has returned resolves each
caller's future: no caller can ACK before its message is on disk. There is no timer for what
callers wait for: the next batch starts as soon as the writer is free, so a lone message is
never delayed.

Writes nobody waits for (an MLLP message's outcome, written after its ACK) are deferred: they
ride in the next transaction that someone does wait for, ahead of its requests, or are written on
their own after ``defer_for`` seconds. Each message then costs the disk one commit, not two, and
a sender's next message no longer queues behind its previous message's outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from adapter.errors import StoreUnavailable
from adapter.store.base import Store
from adapter.store.records import (
    MessageFormat,
    MessageStatus,
    OutcomeRequest,
    Receipt,
    ReceiveRequest,
    Transport,
    WriteRequest,
    WriteResult,
)


@dataclass(frozen=True, slots=True)
class CommitStats:
    batches: int  # transactions committed or attempted
    groups: int  # callers' requests those transactions carried
    largest_batch: int


@dataclass(slots=True)
class _Pending:
    requests: Sequence[WriteRequest]
    future: asyncio.Future[list[WriteResult]]


class _Stop:
    """Queued by ``close`` after the last request, so everything before it is written."""


class _Flush:
    """Queued when deferred writes have waited ``defer_for``: write them even if alone."""


class GroupCommitter:
    """Batches writes from many asyncio tasks into shared transactions on one writer thread.

    Use as ``async with GroupCommitter(store) as committer:``; the writer starts with the first
    request if not started explicitly. ``close`` writes everything already queued, then stops.
    """

    def __init__(self, store: Store, *, max_batch: int = 500, defer_for: float = 0.05) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be positive")
        if defer_for < 0:
            raise ValueError("defer_for must not be negative")
        self._store = store
        self._max_batch = max_batch
        self._defer_for = defer_for
        self._queue: asyncio.Queue[_Pending | _Stop | _Flush] = asyncio.Queue()
        self._deferred: list[_Pending] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._writer: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._batches = 0
        self._groups = 0
        self._largest = 0

    @property
    def stats(self) -> CommitStats:
        return CommitStats(self._batches, self._groups, self._largest)

    async def __aenter__(self) -> GroupCommitter:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def store(self) -> Store:
        """The store written to, for reads that must see what this writer committed."""
        return self._store

    def start(self) -> None:
        if self._writer is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
            self._writer = asyncio.get_running_loop().create_task(
                self._write_loop(), name="store-group-commit"
            )

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._writer is None:
            return
        self._queue.put_nowait(_Stop())
        await self._writer
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def write(self, requests: Sequence[WriteRequest]) -> list[WriteResult]:
        """Writes the requests atomically together, in the next shared transaction.

        Raises StoreUnavailable if that transaction fails, LookupError if a request names a
        missing row (then none of these requests is written; other callers are unaffected).
        """
        return await self.submit(requests)

    def submit(
        self, requests: Sequence[WriteRequest], *, defer: bool = False
    ) -> asyncio.Future[list[WriteResult]]:
        """Queues the requests now and returns the future ``write`` would await.

        For writes nobody waits for (an outcome after its ACK): queued before ``close`` is
        called, they are still written by it. With ``defer`` they wait for the next transaction
        (at most ``defer_for`` seconds) instead of starting one.
        """
        if self._closing:
            raise StoreUnavailable("the store writer is closed")
        self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[WriteResult]] = loop.create_future()
        pending = _Pending(tuple(requests), future)
        if not defer:
            self._queue.put_nowait(pending)
            return future
        self._deferred.append(pending)
        if self._flush_timer is None:
            self._flush_timer = loop.call_later(self._defer_for, self._queue.put_nowait, _Flush())
        return future

    async def receive(
        self,
        *,
        transport: Transport | str,
        message_format: MessageFormat | str,
        sender: str,
        message_id: str | None,
        raw: bytes,
        received_at: datetime,
    ) -> Receipt:
        request = ReceiveRequest(
            Transport(transport),
            MessageFormat(message_format),
            sender,
            message_id,
            raw,
            received_at,
        )
        (receipt,) = await self.write([request])
        if not isinstance(receipt, Receipt):
            raise TypeError("a receive request yields a Receipt")
        return receipt

    async def record_outcome(
        self,
        message_row_id: int,
        status: MessageStatus | str,
        *,
        processed_at: datetime,
        bundle: bytes | None = None,
        error_code: str | None = None,
        error_text: str | None = None,
        ack: bytes | None = None,
    ) -> None:
        request = OutcomeRequest(
            message_row_id,
            MessageStatus(status),
            processed_at,
            bundle,
            error_code,
            error_text,
            ack,
        )
        await self.write([request])

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            # Deferred writes go first: each was queued before the requests now waiting (or
            # concerns a row committed before them), so a resend sees its original's outcome.
            stop = isinstance(first, _Stop)
            batch = self._take_deferred(self._max_batch - isinstance(first, _Pending))
            if isinstance(first, _Pending):
                batch.append(first)
            while not stop and len(batch) < self._max_batch and not self._queue.empty():
                queued = self._queue.get_nowait()
                if isinstance(queued, _Stop):
                    stop = True
                elif isinstance(queued, _Pending):
                    batch.append(queued)
            if batch:
                await self._commit(batch)
            if stop:
                while self._deferred:  # close() writes every deferred write before it returns
                    await self._commit(self._take_deferred(self._max_batch))
                return

    def _take_deferred(self, limit: int) -> list[_Pending]:
        """At most ``limit`` deferred writes, oldest first; the rest go in the next batch."""
        taken, self._deferred = self._deferred[:limit], self._deferred[limit:]
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._deferred:
            self._queue.put_nowait(_Flush())  # written next, without waiting for defer_for
        return taken

    async def _commit(self, batch: list[_Pending]) -> None:
        self._batches += 1
        self._groups += len(batch)
        self._largest = max(self._largest, len(batch))
        loop = asyncio.get_running_loop()
        try:
            outcomes = await loop.run_in_executor(
                self._executor, self._store.write_batch, [pending.requests for pending in batch]
            )
        except Exception as failure:  # noqa: BLE001 - a bug too must reach the waiting callers
            # A store fault fails every caller of the batch; anything else is a bug, but it must
            # still reach the callers rather than leave them waiting for ever.
            for pending in batch:
                _settle(pending.future, _own_copy(failure))
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            _settle(pending.future, outcome)


def _settle(
    future: asyncio.Future[list[WriteResult]], outcome: list[WriteResult] | BaseException
) -> None:
    if future.done():
        return  # the caller gave up (cancelled); its request is stored all the same
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _own_copy(failure: Exception) -> Exception:
    """A StoreUnavailable per caller, so that tracebacks of concurrent tasks do not mix."""
    if not isinstance(failure, StoreUnavailable):
        return failure
    copy = StoreUnavailable(failure.reason, location=failure.location)
    copy.__cause__ = failure.__cause__
    return copy
