"""``pipeline.process`` in worker processes, so the service uses more than one core.

The event loop and the store writer stay in the service process; each worker runs the pure
pipeline on the Context it was started with and returns a small, picklable ``Processed``.

Each worker is connected by its own socket pair, read and written by the event loop itself
(length-prefixed pickles). A ``ProcessPoolExecutor`` was measured slower than no pool at all
on two cores: its manager and feeder threads cost more GIL hand-offs per message than the
pipeline saves.

Workers are fresh interpreters (never forked: the service process runs threads) started with
``subprocess`` rather than ``multiprocessing``, whose helper process would keep the service's
stdout open after the service is killed. They ignore SIGINT/SIGTERM (the service stops them
after its in-flight messages) and exit when their socket closes, so they never outlive it.

A worker that dies is replaced (a crash never stops the service), and each message it held is
sent once more, to another worker: most were only its neighbours in the queue. A message whose
second worker dies too is taken for poison: it gets an ``INTERNAL`` error (AE, stored as failed,
so ``her2-adapter reprocess`` can take it again after a fix) and no third worker is risked.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import pickle
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

import orjson

from adapter import logs, pickling
from adapter.audit.facts import ReportFacts, case_facts
from adapter.cases import NO_PRIOR, Prior
from adapter.cases.book import Application
from adapter.errors import AdapterError
from adapter.model import SourceFormat
from adapter.pipeline import Context, Outcome, RawMessage, process
from adapter.service.affinity import pin
from adapter.service.fhir_index import resource_rows
from adapter.store import CaseEventRow, ReportIndexRow, ResourceIndexRow

log = logging.getLogger("her2_adapter.workers")


@dataclass(frozen=True)
class CaseChanges:
    """What a message did to its cases, as the store writes it (store/cases.py)."""

    lookup: tuple[tuple[str, str, str], ...]
    owner_keys: tuple[tuple[str, str], ...]
    claims: tuple[tuple[tuple[str, str], str], ...]
    events: tuple[CaseEventRow, ...]


@dataclass(frozen=True)
class Processed:
    """What the service keeps of a pipeline Outcome: small and picklable."""

    message_id: str | None
    bundle_json: bytes | None  # set exactly when a Bundle was built
    reports: tuple[ReportIndexRow, ...]
    error: AdapterError | None
    resources: tuple[ResourceIndexRow, ...] = ()
    cases: CaseChanges | None = None  # set exactly when a Bundle was built


def processed(outcome: Outcome) -> Processed:
    """The parts of an Outcome the service stores and answers with."""
    application = outcome.application
    if outcome.bundle is None or application is None:
        return Processed(outcome.message_id, outcome.bundle_json, (), outcome.error)
    # Each case's DiagnosticReport bears the case's id: its facts are found by that id.
    facts = {view.report_id: case_facts(view) for view in application.cases}
    reports = tuple(report_rows(outcome.bundle, facts))
    resources = tuple(resource_rows(outcome.bundle))
    return Processed(
        outcome.message_id,
        outcome.bundle_json,
        reports,
        outcome.error,
        resources,
        case_changes(application),
    )


def case_changes(application: Application) -> CaseChanges:
    events = tuple(
        CaseEventRow(
            case_id=view.case_id,
            sender=view.sender,
            patient=view.patient,
            numbers=tuple(sorted(view.numbers)),
            report_id=view.report_id,
            category="" if view.empty else view.classification.category.value,
            official_result=""
            if view.empty or view.classification.official_result is None
            else view.classification.official_result.value,
            status=view.record.report_status.value,
            changes=orjson.dumps(
                {
                    kind: [{"id": oid, "analyte": analyte} for oid, analyte in changed]
                    for kind, changed in (
                        ("added", view.added),
                        ("replaced", view.replaced),
                        ("removed", view.removed),
                    )
                }
            ).decode(),
        )
        for view in application.cases
    )
    return CaseChanges(
        tuple(sorted(application.lookup, key=lambda key: tuple(map(str, key)))),
        tuple(sorted(application.owner_keys)),
        application.claims,
        events,
    )


def report_rows(bundle: dict[str, Any], facts: Mapping[str, ReportFacts]) -> list[ReportIndexRow]:
    """Index rows for every DiagnosticReport of a Bundle (for the HTTP search and the audit).

    ``facts`` are the audit facts by report id. Each report takes its own, whatever the number
    of reports in the Bundle, their order, or how many records made each one's case (several
    orders of one specimen give one case report). A report without facts is indexed with none,
    so the audit counts it as "not indexed" rather than under another report's figures.
    """
    entries = bundle.get("entry", [])
    by_url = {entry.get("fullUrl"): entry.get("resource", {}) for entry in entries}
    rows: list[ReportIndexRow] = []
    for entry in entries:
        resource = entry.get("resource", {})
        if resource.get("resourceType") != "DiagnosticReport":
            continue
        subject = by_url.get(resource.get("subject", {}).get("reference"), {})
        audit = facts.get(resource["id"])
        rows.append(
            ReportIndexRow(
                report_id=resource["id"],
                patient=f"Patient/{subject.get('id', '')}",
                category=_category_code(resource),
                status=resource.get("status", "unknown"),
                audit=None if audit is None else audit.to_json().decode(),
            )
        )
    return rows


def _category_code(report: dict[str, Any]) -> str:
    """The adapter category: the first conclusionCode coding (the emitter puts it first)."""
    for concept in report.get("conclusionCode", []):
        for coding in concept.get("coding", []):
            return str(coding.get("code", ""))
    return ""


_HEADER: Final = struct.Struct("!I")  # each pickle's length
_READ_SIZE: Final = 1 << 20
_STOP_GRACE: Final = 10.0
"""Seconds a worker gets to exit after its socket is closed, before it is killed."""
_POISON: Final = (
    "internal error (two worker processes died processing it: taken for poison);"
    " the message is kept"
)
_TRIES: Final = 2
"""Workers a message is given to: a second after a crash, not a third (poison)."""


class _WorkerDied(Exception):
    """The worker holding a message died before it answered."""


_ErrorParts = tuple[type[AdapterError], str, str | None]
_WorkResult = tuple[
    str | None,
    bytes | None,
    tuple[ReportIndexRow, ...],
    _ErrorParts | None,
    tuple[ResourceIndexRow, ...],
    CaseChanges | None,
]


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    cpus: frozenset[int] | None  # where it is pinned (adapter/service/affinity.py), if anywhere
    pending: dict[int, asyncio.Future[Processed]] = field(default_factory=dict)
    listener: asyncio.Task[None] | None = None


class WorkerPool:
    """Processes running the pipeline: ``await start()`` first, ``await close()`` last."""

    def __init__(
        self, context: Context, workers: int, *, cpus: Sequence[frozenset[int]] = ()
    ) -> None:
        """``cpus``: a CPU set per worker to pin it to (see ``affinity.py``); () pins none."""
        if workers < 1:
            raise ValueError("a worker pool needs at least one worker")
        if cpus and len(cpus) != workers:
            raise ValueError(f"{len(cpus)} CPU sets for {workers} workers")
        self._context = context
        self._size = workers
        self._cpus = tuple(cpus)
        self._workers: list[_Worker] = []  # the live ones
        self._spawning: set[asyncio.Task[None]] = set()  # replacements being started
        self._numbers = itertools.count()
        self._closing = False

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring)."""
        return [worker.process.pid for worker in self._workers]

    @property
    def in_flight(self) -> int:
        """Messages sent to a worker and not yet answered."""
        return sum(len(worker.pending) for worker in self._workers)

    async def start(self) -> None:
        """Start every worker and wait until each has built its Context."""
        self._workers = list(
            await asyncio.gather(
                *(self._spawn(self._cpus[n] if self._cpus else None) for n in range(self._size))
            )
        )

    @property
    def busy_pids(self) -> list[int]:
        """Process ids of the live workers holding a message now (for monitoring)."""
        return [worker.process.pid for worker in self._workers if worker.pending]

    async def process(
        self,
        data: bytes,
        message_format: SourceFormat,
        fhir_source: str | None = None,
        prior: Prior = NO_PRIOR,
    ) -> Processed:
        """The pipeline's Outcome for one message, from the least busy worker.

        If that worker dies first, the message goes to another; if that one dies too, the
        message is poison and gets an ``INTERNAL`` error.
        """
        for _ in range(_TRIES):
            worker = await self._live_worker()
            number = next(self._numbers)
            future: asyncio.Future[Processed] = asyncio.get_running_loop().create_future()
            worker.pending[number] = future
            payload = pickle.dumps((number, data, message_format, fhir_source, prior), _PROTOCOL)
            worker.writer.write(_frame(payload))
            try:
                return await future
            except _WorkerDied:
                continue  # the dead worker is out of the list: another one gets it
        log.error("a message crashed %d worker processes: taken for poison", _TRIES)
        return Processed(None, None, (), AdapterError(_POISON))

    async def _live_worker(self) -> _Worker:
        while not self._workers:  # every worker died: wait for a replacement
            if self._closing:
                raise RuntimeError("the worker pool is closed")
            if not self._spawning:
                self._replace()  # an earlier replacement failed to start: try again
            await asyncio.wait(set(self._spawning))
        return min(self._workers, key=lambda each: len(each.pending))

    async def reload(self, context: Context) -> None:
        """Carry on with a new Context (new mappings): new workers are started with it, then
        the old ones are stopped once they have answered what was sent to them."""
        self._context = context
        fresh = await asyncio.gather(*(self._spawn(worker.cpus) for worker in self._workers))
        old, self._workers = self._workers, list(fresh)
        await asyncio.gather(*(self._stop(worker) for worker in old))

    async def close(self) -> None:
        """Stop the workers once they have answered what was sent to them."""
        self._closing = True
        if self._spawning:
            await asyncio.wait(set(self._spawning))
        workers, self._workers = self._workers, []
        await asyncio.gather(*(self._stop(worker) for worker in workers))

    async def _spawn(self, cpus: frozenset[int] | None) -> _Worker:
        ours, theirs = socket.socketpair()
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-c", _WORKER_MAIN, str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # stderr is the service's: the pipeline logs there
                pass_fds=(theirs.fileno(),),
            )
        if cpus is not None:
            pin(process.pid, cpus)
        reader, writer = await asyncio.open_connection(sock=ours)
        pickling.register_compiled()  # the compiled build's Context (adapter/pickling.py)
        writer.write(_frame(pickle.dumps((self._context, logs.current()), _PROTOCOL)))
        try:
            await reader.readexactly(_HEADER.size)  # the worker's "ready": an empty frame
        except asyncio.IncompleteReadError:
            writer.close()
            await asyncio.to_thread(process.wait)
            raise RuntimeError("a worker process failed to start") from None
        worker = _Worker(process, reader, writer, cpus)
        worker.listener = asyncio.create_task(self._listen(worker), name="worker-results")
        return worker

    async def _listen(self, worker: _Worker) -> None:
        try:
            while True:
                (length,) = _HEADER.unpack(await worker.reader.readexactly(_HEADER.size))
                number, result = pickle.loads(await worker.reader.readexactly(length))
                future = worker.pending.pop(number)
                if not future.done():
                    future.set_result(_rebuilt(result))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the worker exited (closed by us) or died
        # No await from here until the worker is out of the list, so no message is sent to it.
        for future in worker.pending.values():
            if not future.done():
                future.set_exception(_WorkerDied())  # its caller gives it to another worker
        worker.pending.clear()
        if worker in self._workers:
            self._workers.remove(worker)
            worker.writer.close()
            if not self._closing:
                self._replace()
            # Its socket is closed, so it is gone or going: reap it (poll() alone can be too
            # early, and a process never waited for stays a zombie).
            log.error("a worker process died (exit code %s)", await _reap(worker.process))

    def _replace(self) -> None:
        task = asyncio.create_task(self._add_worker(), name="worker-start")
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def _add_worker(self) -> None:
        try:
            self._workers.append(await self._spawn(self._least_used_cpus()))
        except (OSError, RuntimeError) as failure:  # tried again with the next message
            log.error("a worker process could not be started: %s", type(failure).__name__)

    def _least_used_cpus(self) -> frozenset[int] | None:
        """For a replacement worker: the CPU set that the fewest live workers are pinned to."""
        if not self._cpus:
            return None
        return min(self._cpus, key=lambda cpus: sum(w.cpus == cpus for w in self._workers))

    async def _stop(self, worker: _Worker) -> None:
        # Half-close: the worker answers what it was sent, then reads end-of-file and exits.
        worker.writer.write_eof()
        if worker.listener is not None:
            await worker.listener
        worker.writer.close()
        await _reap(worker.process)


_PROTOCOL: Final = pickle.HIGHEST_PROTOCOL
_WORKER_MAIN: Final = (
    "import sys; from adapter.service.workers import serve; serve(int(sys.argv[1]))"
)


async def _reap(process: subprocess.Popen[bytes]) -> int:
    """The exit code of a worker told to stop (or found dead), killed after the grace period."""
    try:
        return await asyncio.to_thread(process.wait, _STOP_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        return await asyncio.to_thread(process.wait)


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def _rebuilt(result: _WorkResult) -> Processed:
    message_id, bundle_json, reports, parts, resources, cases = result
    error: AdapterError | None = None
    if parts is not None:
        kind, reason, location = parts
        # Built past the subclass's __init__, whose signature may differ (MappingFileError).
        error = kind.__new__(kind)
        AdapterError.__init__(error, reason, location=location)
    return Processed(message_id, bundle_json, reports, error, resources, cases)


def serve(descriptor: int) -> None:
    """A worker process: answer requests in order until the service closes the socket."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)  # the service stops its workers in its own order
    channel = socket.socket(fileno=descriptor)
    frames = _Frames(channel)
    first = frames.next_batch()
    if not first:
        return
    context, log_setup = pickle.loads(first[0])
    if log_setup is not None:  # the pipeline's logs go where the service's go, laid out alike
        logs.configure(*log_setup)
    # The Context (mappings, decision table) and the imported modules live as long as the
    # worker: keep them out of every garbage collection, which otherwise walks them again and
    # again for the short-lived objects each message makes.
    gc.freeze()
    channel.sendall(_frame(b""))
    requests = first[1:]  # empty: the service sends work only after the "ready" above
    while requests or (requests := frames.next_batch()):
        # Every request that has arrived is answered in one write: under load that is one
        # wake-up of the service's event loop for several messages instead of one each.
        replies = []
        for request in requests:
            number, data, message_format, fhir_source, prior = pickle.loads(request)
            result = _work(data, message_format, fhir_source, prior, context)
            replies.append(_frame(pickle.dumps((number, result), _PROTOCOL)))
        channel.sendall(b"".join(replies))
        requests = []


class _Frames:
    """Length-prefixed frames read from a socket, as many at a time as have arrived."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel
        self._buffer = bytearray()

    def next_batch(self) -> list[bytes]:
        """The complete frames received so far (waiting for one); ``[]`` at the end."""
        while True:
            frames = self._complete()
            if frames:
                return frames
            chunk = self._channel.recv(_READ_SIZE)
            if not chunk:
                return []
            self._buffer += chunk

    def _complete(self) -> list[bytes]:
        frames: list[bytes] = []
        start, buffer = 0, self._buffer
        while len(buffer) - start >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buffer, start)
            end = start + _HEADER.size + length
            if len(buffer) < end:
                break
            frames.append(bytes(buffer[start + _HEADER.size : end]))
            start = end
        del buffer[:start]
        return frames


def _work(
    data: bytes,
    message_format: SourceFormat,
    fhir_source: str | None,
    prior: Prior,
    context: Context,
) -> _WorkResult:
    if fhir_source is not None:
        context = replace(context, fhir_source=fhir_source)
    done = processed(process(RawMessage(data, message_format), context, prior))
    error = done.error
    # Errors travel as their parts: an exception's pickling depends on its __init__.
    parts = None if error is None else (type(error), error.reason, error.location)
    return done.message_id, done.bundle_json, done.reports, parts, done.resources, done.cases
