"""Messages on N worker processes, every case on one of them (``convert`` / ``replay --jobs N``).

The messages of one run combine into cases in input order (docs/cases.md). Here every message
goes to a worker chosen by its numbers (``route.py``): a message sharing a number with an
earlier one goes to that one's worker, so a case's messages, and each number's first user, are
read by one process in input order, with the same ``CaseLog`` that one process would keep. A
message whose numbers were routed to two workers (a reference-lab order naming a parent seen
elsewhere) joins them: the worker holding the smaller group hands its cases over
(``CaseLog.take`` / ``merge``) before the message is sent. Messages sharing no number go to
the least busy worker. The output is byte for byte that of one process.

Results come back in input order. At most ``jobs * _WINDOW`` messages are in flight, so memory
stays bounded however the messages spread; each worker gets them in chunks, to keep the
per-message cost of the queues small.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any

from adapter import pickling
from adapter.cases.log import CaseLog, LogPart

Handler = Callable[[Any, CaseLog, int], Any]
"""What a worker does with one item: (item, the worker's cases, its place in the input)."""

Setup = Callable[[Any], Handler]
"""Builds a worker's handler from the options (a module-level function: it is pickled)."""

_CHUNK = 16
_WINDOW = 128
_POLL = 1.0  # seconds between checks that the workers are still alive


class WorkerFailed(RuntimeError):
    """A worker process stopped without answering (its start failed, or it was killed)."""


def by_case(
    items: Iterable[Any],
    route: Callable[[Any], frozenset[str]],
    setup: Setup,
    options: Any,
    jobs: int,
) -> Iterator[Any]:
    """Each item's result, in input order, from ``jobs`` worker processes."""
    pool = _Pool(setup, options, jobs)
    try:
        yield from pool.run(items, route)
    finally:
        pool.close()


class _Pool:
    def __init__(self, setup: Setup, options: Any, jobs: int) -> None:
        # spawn, not fork: the parent may run a progress thread, and forking threads is unsafe
        spawn = multiprocessing.get_context("spawn")
        pickling.register_compiled()  # the compiled build's case log parts (adapter/pickling.py)
        self._results: Any = spawn.Queue()
        self._inboxes: list[Any] = [spawn.Queue() for _ in range(jobs)]
        self._workers = [
            spawn.Process(
                target=_work,
                args=(index, inbox, self._results, setup, options),
                daemon=True,
                name=f"her2-adapter-job-{index}",
            )
            for index, inbox in enumerate(self._inboxes)
        ]
        for worker in self._workers:
            worker.start()
        self._buffers: list[list[tuple[int, Any]]] = [[] for _ in range(jobs)]
        self._load = [0] * jobs  # messages sent to each worker and not yet answered
        self._done: dict[int, Any] = {}
        self._taken: dict[int, LogPart] = {}
        # numbers -> group -> worker; a group is every number messages have used together
        self._group_of: dict[str, int] = {}
        self._members: dict[int, list[str]] = {}
        self._worker_of: dict[int, int] = {}
        self._next_group = 0

    def run(self, items: Iterable[Any], route: Callable[[Any], frozenset[str]]) -> Iterator[Any]:
        sent = given = 0
        for index, item in enumerate(items):
            worker = self._place(route(item))
            self._buffers[worker].append((index, item))
            self._load[worker] += 1
            if len(self._buffers[worker]) >= _CHUNK:
                self._flush(worker)
            sent = index + 1
            while sent - given >= _WINDOW * len(self._workers):
                self._wait()
                given = yield from self._ready(given)
            given = yield from self._ready(given)
        while given < sent:
            self._wait()
            given = yield from self._ready(given)

    def close(self) -> None:
        for inbox in self._inboxes:
            inbox.put(None)
        for worker in self._workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.terminate()
                worker.join()
        for channel in (*self._inboxes, self._results):
            channel.close()
            channel.join_thread()

    # -- routing ---------------------------------------------------------------------------------

    def _place(self, numbers: frozenset[str]) -> int:
        """The worker for a message with these numbers; joins their groups if it must."""
        groups = sorted({self._group_of[n] for n in numbers if n in self._group_of})
        if not groups:
            worker = min(range(len(self._load)), key=self._load.__getitem__)
            if numbers:
                self._add(self._new_group(worker), numbers)
            return worker
        # The largest group stays where it is; the others come to its worker.
        target = max(groups, key=lambda group: len(self._members[group]))
        worker = self._worker_of[target]
        for group in groups:
            if group != target:
                self._join(group, target)
        self._add(target, numbers)
        return worker

    def _new_group(self, worker: int) -> int:
        group = self._next_group
        self._next_group += 1
        self._members[group] = []
        self._worker_of[group] = worker
        return group

    def _add(self, group: int, numbers: Iterable[str]) -> None:
        for number in numbers:
            if number not in self._group_of:
                self._group_of[number] = group
                self._members[group].append(number)

    def _join(self, group: int, target: int) -> None:
        """Move ``group`` into ``target``: its cases too, when another worker holds them."""
        source, worker = self._worker_of.pop(group), self._worker_of[target]
        members = self._members.pop(group)
        if source != worker:
            self._flush(source)  # its earlier messages of the group are read first
            token = group
            self._inboxes[source].put(("take", token, members))
            while token not in self._taken:
                self._wait()
            self._inboxes[worker].put(("merge", self._taken.pop(token)))
        for number in members:
            self._group_of[number] = target
        self._members[target].extend(members)

    # -- results ---------------------------------------------------------------------------------

    def _flush(self, worker: int) -> None:
        if self._buffers[worker]:
            self._inboxes[worker].put(("run", self._buffers[worker]))
            self._buffers[worker] = []

    def _wait(self) -> None:
        """Take one answer from a worker (everything buffered is sent first: no deadlock)."""
        for worker in range(len(self._buffers)):
            self._flush(worker)
        while True:
            try:
                answer = self._results.get(timeout=_POLL)
                break
            except queue.Empty:
                stopped = [w.name for w in self._workers if not w.is_alive()]
                if stopped:
                    raise WorkerFailed(f"{', '.join(stopped)} stopped") from None
        kind = answer[0]
        if kind == "done":
            _, worker, results = answer
            self._load[worker] -= len(results)
            self._done.update(results)
        elif kind == "taken":
            self._taken[answer[1]] = answer[2]
        else:
            raise WorkerFailed(answer[1])

    def _ready(self, given: int) -> Generator[Any, None, int]:
        """Yield the results that are next in input order; returns how many were given."""
        while given in self._done:
            yield self._done.pop(given)
            given += 1
        return given


def _work(index: int, inbox: Any, results: Any, setup: Setup, options: Any) -> None:
    import gc
    import traceback

    try:
        handle = setup(options)
        pickling.register_compiled()
        gc.freeze()  # what was loaded lives as long as the worker: keep it out of collections
        cases = CaseLog()
        while (command := inbox.get()) is not None:
            kind = command[0]
            if kind == "run":
                done = [(place, handle(item, cases, place)) for place, item in command[1]]
                results.put(("done", index, done))
            elif kind == "take":
                results.put(("taken", command[1], cases.take(command[2])))
            else:
                cases.merge(command[1])
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which stops
        # The type and the frames only: an exception's text may quote a message.
        frames = traceback.extract_tb(error.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        results.put(("failed", f"worker {index}: {type(error).__name__} at {where}"))
