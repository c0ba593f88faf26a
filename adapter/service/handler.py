"""The service core shared by MLLP, HTTP and reprocess: store, process, then answer.

Order matters for an interface engine: the raw message is durably stored (group commit) before
anything is answered, so an ACK always means "kept". A store fault raises ``StoreUnavailable``
out of ``handle``: the transport then sends no ACK (HTTP 503) and the engine retries. Processing
is pure (``pipeline.process``), so it runs while the raw message is being written; its outcome,
ACK included, is stored with the message, so a resent duplicate is answered from the store with
the same ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime

from adapter.audit.facts import ReportFacts
from adapter.cases import NO_PRIOR, Prior, PriorMessage
from adapter.emit.ack import AckHeader, application_ack, header_from
from adapter.errors import AdapterError, InputError, MessageTooLarge, StoreUnavailable
from adapter.mapping import Mappings
from adapter.model import SourceFormat
from adapter.pipeline import Context, Identity, RawMessage, identify, process
from adapter.service import metrics
from adapter.service.workers import Processed, WorkerPool, processed
from adapter.store import (
    CaseConflict,
    CaseWriteRequest,
    EnqueueRequest,
    GroupCommitter,
    IndexReportsRequest,
    MessageFormat,
    MessageRow,
    MessageStatus,
    OutcomeRequest,
    Receipt,
    StoredPrior,
    Transport,
    WriteRequest,
)

Clock = Callable[[], datetime]
OnStored = Callable[[Receipt], Awaitable[None]]
"""Called once a message is durably stored, before its processing is awaited (the commit ACK)."""
log = logging.getLogger("her2_adapter.service")


@dataclass(frozen=True)
class Handled:
    """What the transport needs to answer one message."""

    receipt: Receipt
    status: MessageStatus
    message_id: str | None
    bundle_json: bytes | None
    error: AdapterError | None  # None on success; for duplicates, rebuilt from the stored code
    error_code: str | None
    ack: bytes | None  # HL7 v2 application ACK (AA/AE/AR), None for FHIR input
    duplicate: bool


class Service:
    """Receives, stores, processes and records one message at a time per caller.

    With a ``pool`` the pipeline runs in worker processes (built from the same Context), so
    that messages of concurrent callers are processed on several cores; without one it runs
    in this process.
    """

    def __init__(
        self,
        context: Context,
        committer: GroupCommitter,
        clock: Clock,
        *,
        forward: bool = False,
        pool: WorkerPool | None = None,
    ) -> None:
        self.context = context
        self.committer = committer
        self.clock = clock
        self.forward = forward
        self.pool = pool
        # Messages being processed, by store row: a copy arriving meanwhile (the engine resent
        # on another connection) waits for the first answer instead of being processed twice.
        self._in_flight: dict[int, asyncio.Future[Handled]] = {}
        self._case_locks = [asyncio.Lock() for _ in range(_CASE_LOCK_STRIPES)]
        # Outcomes being stored after their answer (MLLP): ``drain`` waits for them.
        self._storing: set[asyncio.Future[Handled]] = set()
        # Senders' control ids seen lately (oldest first, bounded): a message that repeats one
        # is a resend or a correction, and is not processed before the store has said which.
        self._seen: dict[tuple[str, str], None] = {}
        # Messages ACKed whose outcome could not be stored (the store failed after the raw
        # commit): completed as soon as the store is back, not at the next age-based sweep.
        self._unrecorded: set[int] = set()
        self._reloading = asyncio.Lock()

    async def handle(
        self,
        data: bytes,
        transport: Transport,
        *,
        format_hint: SourceFormat | None = None,
        fhir_source: str | None = None,
        wait_for_outcome: bool = True,
        identity: Identity | None = None,
        ack_header: AckHeader | None = None,
        on_stored: OnStored | None = None,
    ) -> Handled:
        """Store, process, record. Raises StoreUnavailable (transient) and nothing else.

        With ``wait_for_outcome=False`` (MLLP) the answer is returned once the raw message is
        durable; its outcome joins the next group commit. If the adapter dies in between, the
        message stays ``received``: a resend or ``her2-adapter reprocess`` processes it again.
        ``identity`` and ``ack_header`` save reading the MSH again when the transport already
        did; ``on_stored`` runs as soon as the raw message is durable (an enhanced-mode CA).
        """
        if identity is None:
            identity = identify(data, format_hint, fhir_source=fhir_source)
        if ack_header is None:
            ack_header = _ack_header(data, identity)
        # With worker processes, processing (pure) starts while the raw message is being made
        # durable rather than after: nothing uses its result before that write has committed.
        # A duplicate wastes the work, which is rare; every message saves the wait. In this
        # process it would only run first and hold up the write, so it waits its turn there, as
        # a likely resend does: engines resend when answers are slow, and processing each copy
        # again before the store finds it a duplicate would only add to the load.
        processing = (
            asyncio.ensure_future(self._process(data, identity.format, fhir_source))
            if self.pool is not None and not self._seen_before(identity.sender, identity.message_id)
            else None
        )
        try:
            receipt = await self.committer.receive(
                transport=transport,
                message_format=identity.format.value,
                sender=identity.sender,
                message_id=identity.message_id,
                raw=data,
                received_at=self.clock(),
            )
            if on_stored is not None:
                await on_stored(receipt)
        except BaseException:
            _abandon(processing)
            raise
        if receipt.duplicate and receipt.status is not MessageStatus.RECEIVED:
            _abandon(processing)
            return _from_receipt(receipt, identity)
        first = self._in_flight.get(receipt.row_id)
        if first is not None:
            _abandon(processing)
            return replace(await asyncio.shield(first), duplicate=True)
        if receipt.is_correction:
            # Same control id, new content: kept as a new version beside the earlier one.
            log.info("new version: message_id=%s version=%d", identity.message_id, receipt.version)
        answer: asyncio.Future[Handled] = asyncio.get_running_loop().create_future()
        row_id = receipt.row_id
        self._in_flight[row_id] = answer
        stored: asyncio.Future[Handled] | None = None
        try:
            if processing is None:
                outcome = await self._process(data, identity.format, fhir_source)
            else:
                outcome = await processing
            alone = self._answer(receipt, identity, outcome, ack_header)
            if wait_for_outcome:
                handled = await self._store(receipt, identity, data, fhir_source, outcome, alone)
            else:
                # The answer depends on the message alone (its ACK); its outcome rides in the
                # next commit someone waits for: one disk flush per message, not two.
                handled = alone[0]
                stored = asyncio.ensure_future(
                    self._store(receipt, identity, data, fhir_source, outcome, alone, defer=True)
                )
                self._storing.add(stored)
                stored.add_done_callback(self._storing.discard)
                stored.add_done_callback(lambda done: self._note_late_failure(row_id, done))
        except asyncio.CancelledError:
            answer.cancel()
            raise
        except Exception as failure:
            answer.set_exception(failure)
            answer.exception()  # retrieved here: a copy waiting on it re-raises it itself
            raise
        finally:
            if stored is None:
                del self._in_flight[row_id]
            else:
                # Until the outcome is stored, a copy of this message must still find this
                # answer here, or it would find the row "received" and process it again.
                stored.add_done_callback(lambda _: self._in_flight.pop(row_id, None))
        answer.set_result(handled)
        return handled

    async def drain(self) -> None:
        """Wait until every outcome answered before its write (MLLP) is stored or has failed.

        Call before closing the committer: a message whose cases changed meanwhile is combined
        again after its ACK, and that write must still reach the store.
        """
        while self._storing:
            await asyncio.wait(set(self._storing))

    def _seen_before(self, sender: str, message_id: str | None) -> bool:
        """Whether this sender's control id came lately; remembers it either way."""
        if message_id is None:
            return False
        key = (sender, message_id)
        if key in self._seen:
            return True
        self._seen[key] = None
        if len(self._seen) > _SEEN_LIMIT:
            del self._seen[next(iter(self._seen))]
        return False

    def _note_late_failure(self, row_id: int, stored: asyncio.Future[Handled]) -> None:
        """An outcome not stored after its ACK: the message is kept for completion."""
        if stored.cancelled() or (error := stored.exception()) is None:
            return
        log.warning("outcome not stored: row=%d %s", row_id, type(error).__name__)
        self._unrecorded.add(row_id)

    def take_unrecorded(self) -> list[int]:
        """Rows whose outcome could not be stored after their ACK, oldest first (and forgets
        them: the caller completes them, or a later sweep does)."""
        rows, self._unrecorded = sorted(self._unrecorded), set()
        return rows

    def unrecorded_again(self, rows: list[int]) -> None:
        """Rows taken by ``take_unrecorded`` that could not be completed either."""
        self._unrecorded.update(rows)

    def in_flight(self, row_id: int) -> bool:
        """Whether a message is being processed right now (the recovery sweep leaves it)."""
        return row_id in self._in_flight

    async def reload_mappings(self) -> Mappings:
        """Read the mapping directory again; later messages use the new files (no restart).

        A directory that fails validation raises MappingFileError and changes nothing. Messages
        already being processed finish with the mappings they started with; each report says
        which version read it (``Mappings.version``).
        """
        async with self._reloading:
            directory = self.context.settings.mappings_dir
            mappings = await asyncio.to_thread(Mappings.load, directory)
            context = replace(self.context, mappings=mappings)
            if self.pool is not None:
                await self.pool.reload(context)
            self.context = context
        log.info("mappings reloaded: version=%s files=%d", mappings.version, len(mappings.files))
        return mappings

    async def reject_oversized(
        self,
        prefix: bytes,
        size: int,
        transport: Transport,
        *,
        format_hint: SourceFormat | None = None,
    ) -> Handled:
        """Keep the start of a message over the size limit, and answer it (AR / 413)."""
        identity = identify(prefix, format_hint)
        receipt = await self.committer.receive(
            transport=transport,
            # Stored as truncated, so that neither reprocess nor replay ever takes the prefix
            # for a whole message, even if its TOO-LARGE outcome could not be stored.
            message_format=MessageFormat.TRUNCATED.value,
            sender=identity.sender,
            message_id=identity.message_id,
            raw=prefix,
            received_at=self.clock(),
        )
        limit = self.context.settings.max_message_bytes
        error = MessageTooLarge(f"{size} bytes is over the limit of {limit}")
        outcome = Processed(identity.message_id, None, (), error)
        return await self.record(receipt, identity, outcome, _ack_header(prefix, identity))

    async def reprocess(self, row: MessageRow) -> Handled:
        """Run a stored message through the current pipeline again and record the new outcome.

        The stored sender is kept: for FHIR input it may have come from the caller rather than
        from the message.
        """
        if row.message_format is MessageFormat.TRUNCATED:
            raise ValueError("a truncated message is never processed")
        hint = (
            None
            if row.message_format is MessageFormat.UNKNOWN
            else SourceFormat(row.message_format.value)
        )
        identity = identify(row.raw, hint)
        fhir_source = (
            row.sender
            if identity.format is SourceFormat.FHIR and row.sender != identity.sender
            else None
        )
        receipt = Receipt(
            row.row_id, row.version, False, None, MessageStatus.RECEIVED, None, None, None
        )
        outcome = await self._process(row.raw, identity.format, fhir_source)
        alone = self._answer(receipt, identity, outcome, _ack_header(row.raw, identity))
        return await self._store(receipt, identity, row.raw, fhir_source, outcome, alone)

    async def _process(
        self,
        data: bytes,
        message_format: SourceFormat,
        fhir_source: str | None,
        prior: Prior = NO_PRIOR,
    ) -> Processed:
        if self.pool is not None:
            return await self.pool.process(data, message_format, fhir_source, prior)
        context = self.context
        if fhir_source is not None:
            context = replace(context, fhir_source=fhir_source)
        return processed(process(RawMessage(data, message_format), context, prior))

    async def record(
        self,
        receipt: Receipt,
        identity: Identity,
        outcome: Processed,
        ack_header: AckHeader | None,
    ) -> Handled:
        """Store what became of a message that was never processed (too large) and answer it."""
        handled, writes = self._answer(receipt, identity, outcome, ack_header)
        await self.committer.write(writes)
        _count_reports(identity, outcome)
        return handled

    async def _store(
        self,
        receipt: Receipt,
        identity: Identity,
        data: bytes,
        fhir_source: str | None,
        outcome: Processed,
        alone: tuple[Handled, list[WriteRequest]],
        *,
        defer: bool = False,
    ) -> Handled:
        """Store the outcome; if the message's cases changed meanwhile, combine it again.

        The message was first processed alone (most messages open a case of their own). The
        case write checks, in the same transaction as the outcome, that the store still holds
        what it was combined with; when it does not (an earlier message of its case, or one
        that arrived at the same time on another connection), the message is processed again
        with its cases' messages as the store now has them. The store's case locks make this
        converge, between service instances too.
        """
        handled, writes = alone
        try:
            if defer:
                await self.committer.submit(writes, defer=True)
            else:
                await self.committer.write(writes)
            _count_reports(identity, outcome)
            return handled
        except CaseConflict:
            assert outcome.cases is not None  # only a case write can conflict
        changes = outcome.cases
        # Messages of one case that conflict take turns (a lock per stripe of their numbers),
        # so each is combined again once with what the one before it stored.
        stripes = sorted({hash(key) % len(self._case_locks) for key in changes.lookup})
        async with contextlib.AsyncExitStack() as held:
            for stripe in stripes:
                await held.enter_async_context(self._case_locks[stripe])
            for _ in range(_CASE_ATTEMPTS):
                stored = await asyncio.to_thread(
                    self.committer.store.case_prior,
                    changes.lookup,
                    changes.owner_keys,
                    exclude_row=receipt.row_id,
                )
                prior = Prior(tuple(map(_prior_message, stored.messages)), stored.owners)
                outcome = await self._process(data, identity.format, fhir_source, prior)
                # The ACK already sent (or about to be) is the one stored, byte for byte.
                handled, writes = self._answer(
                    receipt, identity, outcome, None, stored, handled.ack
                )
                try:
                    await self.committer.write(writes)
                except CaseConflict:
                    continue  # a message not yet in turn stored first: read the cases again
                _count_reports(identity, outcome)
                return handled
        raise StoreUnavailable(
            f"the cases of message row {receipt.row_id} kept changing; it stays received"
        )

    def _answer(
        self,
        receipt: Receipt,
        identity: Identity,
        outcome: Processed,
        ack_header: AckHeader | None,
        stored: StoredPrior | None = None,
        ack: bytes | None = None,
    ) -> tuple[Handled, list[WriteRequest]]:
        """A message's answer, and the writes that store its outcome.

        ``stored``: the cases the message was combined with (none: it was processed alone).
        ``ack``: the ACK already built for this message, kept when it is combined again.
        """
        error = outcome.error
        status = _status_of(error)
        if ack is None and ack_header is not None:
            ack = self._ack(ack_header, error)
        requests: list[WriteRequest] = []
        if outcome.cases is not None:
            # First in the group: a conflict leaves none of the message's outcome written.
            changes = outcome.cases
            requests.append(
                CaseWriteRequest(
                    receipt.row_id,
                    changes.lookup,
                    changes.owner_keys,
                    stored.cases if stored is not None else (),
                    tuple(
                        (key, owner)
                        for key in changes.owner_keys
                        if stored is not None and (owner := stored.owners.get(key)) is not None
                    ),
                    changes.claims,
                    changes.events,
                )
            )
        requests.append(
            OutcomeRequest(
                receipt.row_id,
                status,
                self.clock(),
                outcome.bundle_json,
                error.code if error else None,
                error.reason if error else None,
                ack,
            )
        )
        # Without a Bundle the index is emptied: a message processed again that is now refused
        # keeps no report of before (the index points into the outcome's Bundle).
        requests.append(IndexReportsRequest(receipt.row_id, outcome.reports, outcome.resources))
        if outcome.bundle_json is not None and self.forward:
            requests.append(EnqueueRequest(receipt.row_id, outcome.bundle_json, self.clock()))
        handled = Handled(
            receipt=receipt,
            status=status,
            message_id=outcome.message_id or identity.message_id,
            bundle_json=outcome.bundle_json,
            error=error,
            error_code=error.code if error else None,
            ack=ack,
            duplicate=False,
        )
        return handled, requests

    def _ack(self, header: AckHeader, error: AdapterError | None) -> bytes:
        """The application ACK, stored with the outcome: a resend is answered with it."""
        return application_ack(header, error, self.clock())


def _count_reports(identity: Identity, outcome: Processed) -> None:
    """The report metrics, once per message, for the outcome that was stored."""
    if outcome.bundle_json is not None:
        metrics.count_reports(
            identity.sender,
            (ReportFacts.from_json(r.audit) for r in outcome.reports if r.audit is not None),
        )


_CASE_ATTEMPTS = 20
"""Times a message, in its turn, is combined again with cases that still change (by messages
not yet in turn) before it is left received (the recovery sweep or the sender's retry takes it)."""

_CASE_LOCK_STRIPES = 64


def _prior_message(row: MessageRow) -> PriorMessage:
    """A stored message as a prior: FHIR keeps the sender the caller named, as reprocess does."""
    message_format = SourceFormat(row.message_format.value)
    fhir_source = None
    if (
        message_format is SourceFormat.FHIR
        and row.sender != identify(row.raw, message_format).sender
    ):
        fhir_source = row.sender
    return PriorMessage(row.raw, message_format, fhir_source)


_SEEN_LIMIT = 10_000
"""Control ids remembered for spotting resends: seconds of traffic at full speed, about 3 MB."""


def _abandon(processing: asyncio.Future[Processed] | None) -> None:
    """Drop a message's processing whose result will not be used (its failure included)."""
    if processing is None:
        return
    processing.cancel()
    processing.add_done_callback(_retrieve_quietly)


def _retrieve_quietly(processing: asyncio.Future[Processed]) -> None:
    if not processing.cancelled():
        processing.exception()  # retrieved, so asyncio does not log it as never retrieved


def _ack_header(data: bytes, identity: Identity) -> AckHeader | None:
    """The header an HL7 v2 message's ACK answers; None for FHIR input (no ACK)."""
    if identity.format is not SourceFormat.HL7V2:
        return None
    return header_from(data, identity.msh)


def _status_of(error: AdapterError | None) -> MessageStatus:
    if error is None:
        return MessageStatus.PROCESSED
    return MessageStatus.REJECTED if isinstance(error, InputError) else MessageStatus.FAILED


def _from_receipt(receipt: Receipt, identity: Identity) -> Handled:
    """A message already processed: answer exactly as the first time."""
    return Handled(
        receipt=receipt,
        status=receipt.status,
        message_id=identity.message_id,
        bundle_json=None,
        error=None,
        error_code=receipt.error_code,
        ack=receipt.ack,
        duplicate=True,
    )
