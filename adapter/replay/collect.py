"""Replay stored traffic and report, per message, whether its outcome changed and why.

A replay takes messages (:mod:`adapter.replay.sources`), obtains an outcome for each
(:mod:`adapter.replay.targets`: in-process, or a live MLLP / HTTP endpoint) and compares it with
the expected file of the message's key (:mod:`adapter.replay.expected`). Each message is:

=========  ===================================================================
same       the outcome equals the expected file (semantically)
changed    it differs; the field-level differences (and rule ids) are listed
new        there is no expected file for its key
missing    an expected file that no replayed message had the key of
error      no outcome could be obtained (connection refused, timeout, ...)
=========  ===================================================================

With ``record`` the expected file of each new or changed message is (re)written; unchanged files
are not touched. Two messages with one key are told apart deterministically (``key``, ``key.2``
...), and the result says so. Results are kept in input order, expected-only keys last.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from adapter.replay.diff import DEFAULT_IGNORE
from adapter.replay.expected import ExpectedDir, Observed, compare
from adapter.replay.sources import SourceMessage


class Status(StrEnum):
    SAME = "same"
    CHANGED = "changed"
    NEW = "new"
    MISSING = "missing"
    ERROR = "error"


@dataclass(frozen=True)
class MessageResult:
    key: str  # the expected file's name without .json
    status: Status
    origin: str  # "file#position", "store row N", or the expected file for a missing one
    details: tuple[str, ...] = ()  # differences, the failure, or what a new message produced
    recorded: bool = False
    note: str | None = None  # e.g. a duplicate key that was renamed


@dataclass
class Summary:
    results: list[MessageResult] = field(default_factory=list)
    record: bool = False

    @property
    def counts(self) -> dict[Status, int]:
        counted = Counter(result.status for result in self.results)
        return {status: counted.get(status, 0) for status in Status}

    @property
    def recorded(self) -> int:
        return sum(result.recorded for result in self.results)

    @property
    def exit_code(self) -> int:
        """0 when every message is the same; when recording, 0 unless a replay failed."""
        counts = self.counts
        if self.record:
            return 1 if counts[Status.ERROR] else 0
        return 0 if counts[Status.SAME] == len(self.results) else 1


class Collector:
    """Compares each outcome with its expected file as it arrives, in input order."""

    def __init__(
        self,
        expected: ExpectedDir,
        *,
        record: bool = False,
        ignore: Sequence[str] = DEFAULT_IGNORE,
        on_result: Callable[[MessageResult], None] | None = None,
    ) -> None:
        self.expected = expected
        self.on_result = on_result
        self.ignore = tuple(ignore)
        self.summary = Summary(record=record)
        self._seen: set[str] = set()

    def add(self, message: SourceMessage, key: str | None, observed: Observed) -> MessageResult:
        stem, note = self._stem(key, message)
        result = self._judge(stem, message.where, observed, note)
        self.summary.results.append(result)
        if self.on_result is not None:
            self.on_result(result)
        return result

    def finish(self) -> Summary:
        """Adds an expected file that no message matched as missing (never deleted)."""
        for stem in self.expected.stems():
            if stem not in self._seen:
                origin = str(self.expected.file(stem))
                self.summary.results.append(MessageResult(stem, Status.MISSING, origin))
        return self.summary

    def _stem(self, key: str | None, message: SourceMessage) -> tuple[str, str | None]:
        base = (
            safe_name(key) if key else safe_name(f"{Path(message.origin).name}-{message.position}")
        )
        note = None if key else "no key in the message: named by its place"
        stem, number = base, 1
        while stem in self._seen:
            number += 1
            stem = f"{base}.{number}"
        if number > 1:
            note = f"duplicate key {base!r}: replayed as {stem!r}"
        self._seen.add(stem)
        return stem, note

    def _judge(self, stem: str, origin: str, observed: Observed, note: str | None) -> MessageResult:
        if observed.failure is not None:
            return MessageResult(stem, Status.ERROR, origin, (observed.failure,), note=note)
        try:
            expected = self.expected.load(stem)
        except ValueError as error:
            detail = f"expected file {self.expected.file(stem)} is not JSON: {error}"
            return MessageResult(stem, Status.ERROR, origin, (detail,), note=note)
        if expected is None:
            details: tuple[str, ...] = (_outcome_line(observed),)
            status = Status.NEW
        else:
            lines = compare(expected, observed, self.ignore)
            details = tuple(lines)
            status = Status.CHANGED if lines else Status.SAME
        recorded = self.summary.record and status is not Status.SAME
        if recorded:
            self.expected.write(stem, observed.document())
        return MessageResult(stem, status, origin, details, recorded, note)


def collect(
    results: Iterable[tuple[SourceMessage, str | None, Observed]], collector: Collector
) -> Summary:
    for message, key, observed in results:
        collector.add(message, key, observed)
    return collector.finish()


def _outcome_line(observed: Observed) -> str:
    if observed.bundle_json is not None:
        return "outcome: Bundle"
    if observed.error_code is not None:
        return f"outcome: error {observed.error_code}"
    return f"outcome: ACK {observed.ack}"


def safe_name(key: str) -> str:
    """A key as a file name (keys may hold any character, e.g. ``/`` in a FHIR identifier)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key).strip(".")
    return safe or "message"
