"""The cases of one ``convert`` run, kept as the messages that made them.

Raw bytes and a few indexes per case, not the read records: a long run stays small in memory and
the garbage collector has almost nothing more to walk. A message that touches a case gets that
case's earlier messages back (``prior``), exactly as the service gets them from its store.
"""

from __future__ import annotations

from adapter.cases import Prior, PriorMessage
from adapter.cases.book import Application
from adapter.cases.keys import Lookup


class CaseLog:
    def __init__(self) -> None:
        self._messages: list[PriorMessage] = []
        self._case_messages: dict[str, list[int]] = {}  # case id -> message positions
        self._cases: dict[tuple[str, str, str], list[str]] = {}  # (sender, patient, number)
        self._owners: dict[tuple[str, str], str] = {}

    def prior(self, lookup: Lookup) -> Prior:
        """The earlier messages of every case holding one of the numbers, in the order applied."""
        positions: set[int] = set()
        for key in lookup:
            for case_id in self._cases.get(key, ()):
                positions.update(self._case_messages[case_id])
        if not positions:
            return Prior(owners=self._owners)
        return Prior(tuple(self._messages[p] for p in sorted(positions)), self._owners)

    def add(self, message: PriorMessage, application: Application) -> None:
        """Keep a message that was processed, with the cases it touched."""
        position = len(self._messages)
        self._messages.append(message)
        for view in application.cases:
            self._case_messages.setdefault(view.case_id, []).append(position)
            if view.patient is None:
                continue  # a case of its own: no later message can join it
            for number in view.numbers:
                found = self._cases.setdefault((view.sender, view.patient, number), [])
                if view.case_id not in found:
                    found.append(view.case_id)
        self._owners.update(application.claims)
