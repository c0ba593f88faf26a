"""The cases of one ``convert`` run, kept as the messages that made them.

Raw bytes and a few indexes per case, not the read records: a long run stays small in memory and
the garbage collector has almost nothing more to walk. A message that touches a case gets that
case's earlier messages back (``prior``), exactly as the service gets them from its store.

Reading them again is what a follow-up message costs beyond itself (a reflex ISH reads its IHC
again: about 1.5 times the work of the message alone). Keeping each recent case's book (its read
records) instead was measured: follow-ups were a third cheaper, every other message 10-30 %
dearer, since each collection walks the records kept (docs/performance.md); so it is not kept.

With ``--jobs N`` each worker process keeps a log of the cases routed to it (``parallel.py``);
when a message joins cases of two workers, one hands them to the other (``take`` / ``merge``).
Messages are kept by their place in the run's input, so merged logs keep the order applied.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from adapter.cases import Prior, PriorMessage
from adapter.cases.book import Application
from adapter.cases.keys import Lookup, untagged

CaseKey = tuple[str, str, str]  # (sender, patient, number)
OwnerKey = tuple[str, str]  # (sender, number)


@dataclass(frozen=True, slots=True)
class LogPart:
    """The cases of some numbers, taken out of one log to be merged into another."""

    messages: dict[int, PriorMessage]
    case_messages: dict[str, list[int]]
    cases: dict[CaseKey, list[str]]
    owners: dict[OwnerKey, str]


class CaseLog:
    def __init__(self) -> None:
        self._messages: dict[int, PriorMessage] = {}  # place in the input -> message
        self._case_messages: dict[str, list[int]] = {}  # case id -> places, ascending
        self._cases: dict[CaseKey, list[str]] = {}
        self._owners: dict[OwnerKey, str] = {}
        self._next = 0

    def prior(self, lookup: Lookup) -> Prior:
        """The earlier messages of every case holding one of the numbers, in the order applied."""
        positions: set[int] = set()
        for key in lookup:
            for case_id in self._cases.get(key, ()):
                positions.update(self._case_messages[case_id])
        if not positions:
            return Prior(owners=self._owners)
        return Prior(tuple(self._messages[p] for p in sorted(positions)), self._owners)

    def add(
        self, message: PriorMessage, application: Application, position: int | None = None
    ) -> None:
        """Keep a message that was processed, with the cases it touched.

        ``position``: its place in the input, when messages are not all added here in order.
        """
        if position is None:
            position = self._next
        self._next = position + 1
        self._messages[position] = message
        for view in application.cases:
            self._case_messages.setdefault(view.case_id, []).append(position)
            if view.patient is None:
                continue  # a case of its own: no later message can join it
            for number in view.numbers:
                found = self._cases.setdefault((view.sender, view.patient, number), [])
                if view.case_id not in found:
                    found.append(view.case_id)
        self._owners.update(application.claims)

    def take(self, numbers: Collection[str]) -> LogPart:
        """Remove and return every case and owner of these numbers (as sent, without kind).

        The caller hands over a whole group of numbers that only messages routed here used,
        so no case left here holds one of them.
        """
        keys = [key for key in self._cases if untagged(key[2]) in numbers]
        cases = {key: self._cases.pop(key) for key in keys}
        case_ids = {case_id for found in cases.values() for case_id in found}
        case_messages = {
            case_id: self._case_messages.pop(case_id)
            for case_id in sorted(case_ids)
            if case_id in self._case_messages
        }
        positions = {p for found in case_messages.values() for p in found}
        owner_keys = [key for key in self._owners if untagged(key[1]) in numbers]
        owners = {key: self._owners.pop(key) for key in owner_keys}
        # A message may also have made cases that stay (another order of it): kept for them.
        still_used = {p for found in self._case_messages.values() for p in found}
        messages = {
            p: (self._messages[p] if p in still_used else self._messages.pop(p))
            for p in sorted(positions)
        }
        return LogPart(messages, case_messages, cases, owners)

    def merge(self, part: LogPart) -> None:
        """Take in cases another log gave up (``take``)."""
        self._messages.update(part.messages)
        for case_id, positions in part.case_messages.items():
            mine = self._case_messages.setdefault(case_id, [])
            mine[:] = sorted({*mine, *positions})
        for key, case_ids in part.cases.items():
            found = self._cases.setdefault(key, [])
            found.extend(case_id for case_id in case_ids if case_id not in found)
        self._owners.update(part.owners)
