"""The cases of one ``convert`` run, kept as the messages that made them, in a temporary file.

A message that touches a case gets that case's earlier messages back (``prior``), exactly as the
service gets them from its store. What a later message may need is every earlier message of a
case it can join, the numbers cases are found by and each number's first user: kept in a private
temporary SQLite database (deleted when the log is closed, or its process ends; no durability),
so a run of a million messages stays as small in memory as a run of a thousand. Its page cache
(``_CACHE_KIB``) is the part held in memory; the rest is on disk, which serves the few follow-ups
a large run has from the operating system's file cache. A message that only touched cases no
later message can join (no patient) is not kept.

Reading a case's earlier messages again is what a follow-up message costs beyond itself (a reflex
ISH reads its IHC again: about 1.5 times the work of the message alone). Keeping each recent
case's book (its read records) in memory instead was measured: follow-ups were a third cheaper,
every other message 10-30 % dearer, since each collection walks the records kept
(docs/performance.md); so it is not kept.

With ``--jobs N`` each worker process keeps a log of the cases routed to it (``parallel.py``);
when a message joins cases of two workers, one hands them to the other (``take`` / ``merge``).
Messages are kept by their place in the run's input, so merged logs keep the order applied.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass

from adapter.cases import Prior, PriorMessage
from adapter.cases.book import Application
from adapter.cases.keys import Lookup, untagged
from adapter.model import SourceFormat

CaseKey = tuple[str, str, str]  # (sender, patient, number)
OwnerKey = tuple[str, str]  # (sender, number)

_CACHE_KIB = 8192
"""The in-memory part: SQLite's page cache. Pages beyond it go to the temporary file."""

# ``plain`` is the number as sent (``keys.untagged``), first in each key so that ``take`` finds
# a worker's group of numbers on the same B-tree as the look-ups.
# A message of two cases (two specimens in one message) is kept once for each.
_SCHEMA = (
    "CREATE TABLE case_message (case_id TEXT NOT NULL, position INTEGER NOT NULL,"
    " data BLOB NOT NULL, format TEXT NOT NULL, fhir_source TEXT,"
    " PRIMARY KEY (case_id, position)) WITHOUT ROWID",
    "CREATE TABLE case_number (plain TEXT NOT NULL, number TEXT NOT NULL, sender TEXT NOT NULL,"
    " patient TEXT NOT NULL, case_id TEXT NOT NULL,"
    " PRIMARY KEY (plain, number, sender, patient, case_id)) WITHOUT ROWID",
    "CREATE TABLE owner (plain TEXT NOT NULL, number TEXT NOT NULL, sender TEXT NOT NULL,"
    " patient TEXT NOT NULL, PRIMARY KEY (plain, number, sender)) WITHOUT ROWID",
)

_FIND = (
    "SELECT case_id FROM case_number WHERE plain = ? AND number = ? AND sender = ? AND patient = ?"
)
_PRIOR = "SELECT position, data, format, fhir_source FROM case_message WHERE case_id IN ({})"
_ADD_CASE_MESSAGE = "INSERT OR IGNORE INTO case_message VALUES (?, ?, ?, ?, ?)"
_ADD_NUMBER = "INSERT OR IGNORE INTO case_number VALUES (?, ?, ?, ?, ?)"
_ADD_OWNER = "INSERT OR REPLACE INTO owner VALUES (?, ?, ?, ?)"
_OWNER = "SELECT patient FROM owner WHERE plain = ? AND number = ? AND sender = ?"


@dataclass(frozen=True, slots=True)
class LogPart:
    """The cases of some numbers, taken out of one log to be merged into another."""

    messages: dict[int, PriorMessage]
    case_messages: dict[str, list[int]]
    cases: dict[CaseKey, list[str]]
    owners: dict[OwnerKey, str]


class _Seen:
    """A Bloom filter of the numbers and case ids on disk: one it has not seen needs no query.

    Most look-ups are for numbers no earlier message used; this answers them in memory, in a
    fixed 8 MiB (two bits per string: at a million messages, about 1 % of the unseen still
    query the disk, and find nothing). Strings keep their hash, so a test is two bit reads;
    ``hash`` is per process, as the filter is.
    """

    _MASK = (1 << 26) - 1

    def __init__(self) -> None:
        self._bits = bytearray()  # allocated at the first write to disk: most runs never make one

    def update(self, keys: Iterable[str]) -> None:
        if not self._bits:
            self._bits = bytearray((self._MASK + 1) >> 3)
        bits, mask = self._bits, self._MASK
        for key in keys:
            h = hash(key)
            a, b = h & mask, (h >> 32) & mask
            bits[a >> 3] |= 1 << (a & 7)
            bits[b >> 3] |= 1 << (b & 7)

    def __contains__(self, key: str) -> bool:
        bits = self._bits
        if not bits:
            return False
        h = hash(key)
        a, b = h & self._MASK, (h >> 32) & self._MASK
        return bool(bits[a >> 3] & (1 << (a & 7))) and bool(bits[b >> 3] & (1 << (b & 7)))


class _Owners(Mapping[OwnerKey, str]):
    """(sender, number) -> its first patient, as the case book asks for them (``CaseLog.owner``)."""

    def __init__(self, log: CaseLog) -> None:
        self._log = log

    def get(self, key: OwnerKey, default: str | None = None) -> str | None:  # type: ignore[override]
        found = self._log.owner(key)
        return default if found is None else found

    def __getitem__(self, key: OwnerKey) -> str:
        found = self._log.owner(key)
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[OwnerKey]:
        return iter(self._log.owner_keys())

    def __len__(self) -> int:
        return len(self._log.owner_keys())


class CaseLog:
    """The recent messages' cases in memory (as dicts), the older ones in a temporary file.

    Every ``_RECENT`` messages kept, the memory part goes to disk in one batch (``_spill``),
    which is cheaper per row than a write per message.
    """

    _RECENT = 2048

    def __init__(self) -> None:
        # "": a private temporary database, its file removed as soon as it is opened (Unix)
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", f"cache_size = -{_CACHE_KIB}"):
            self._db.execute(f"PRAGMA {pragma}")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._db.execute("BEGIN")  # one transaction for the run: nothing is ever committed
        self._seen = _Seen()  # every number and case id on disk
        self._messages: dict[int, PriorMessage] = {}  # place in the input -> message
        self._case_messages: dict[str, list[int]] = {}  # case id -> places, ascending
        self._cases: dict[CaseKey, list[str]] = {}
        self._owners: dict[OwnerKey, str] = {}
        self._read_owners: dict[OwnerKey, str] = {}  # owners read from disk, a bounded few
        self._owner_view = _Owners(self)
        self._next = 0

    def close(self) -> None:
        self._db.close()

    def owner(self, key: OwnerKey) -> str | None:
        """The first patient of a (sender, number), if any message used it."""
        found = self._owners.get(key)
        if found is not None or key[1] not in self._seen:
            return found
        # A number's first user never changes: one read from disk serves its later messages.
        found = self._read_owners.get(key)
        if found is None:
            sender, number = key
            row = self._db.execute(_OWNER, (untagged(number), number, sender)).fetchone()
            if row is None:
                return None
            if len(self._read_owners) >= self._RECENT:
                self._read_owners.clear()
            found = self._read_owners[key] = str(row[0])
        return found

    def owner_keys(self) -> list[OwnerKey]:
        """Every (sender, number) with an owner (not on the hot path: it reads the disk)."""
        self._spill()
        rows = self._db.execute("SELECT sender, number FROM owner ORDER BY sender, number")
        return [(str(sender), str(number)) for sender, number in rows]

    def prior(self, lookup: Lookup) -> Prior:
        """The earlier messages of every case holding one of the numbers, in the order applied."""
        case_ids: set[str] = set()
        on_disk = []
        for key in lookup:
            case_ids.update(self._cases.get(key, ()))
            if key[2] in self._seen:
                on_disk.append(key)
        if on_disk:
            params = [
                part
                for sender, patient, number in on_disk
                for part in (untagged(number), number, sender, patient)
            ]
            found = self._db.execute(" UNION ALL ".join([_FIND] * len(on_disk)), params)
            case_ids.update(row[0] for row in found)
        if not case_ids:
            return Prior(owners=self._owner_view)
        messages: dict[int, PriorMessage] = {}
        for case_id in case_ids:
            for position in self._case_messages.get(case_id, ()):
                messages[position] = self._messages[position]
        spilled = sorted(case_id for case_id in case_ids if case_id in self._seen)
        if spilled:
            marks = ", ".join("?" * len(spilled))
            for position, data, kind, source in self._db.execute(_PRIOR.format(marks), spilled):
                messages[position] = PriorMessage(data, SourceFormat(kind), source)
        return Prior(tuple(messages[p] for p in sorted(messages)), self._owner_view)

    def add(
        self, message: PriorMessage, application: Application, position: int | None = None
    ) -> None:
        """Keep a message that was processed, with the cases it touched.

        ``position``: its place in the input, when messages are not all added here in order.
        """
        if position is None:
            position = self._next
        self._next = position + 1
        self._owners.update(application.claims)
        kept = False
        for view in application.cases:
            if view.patient is None or not view.numbers:
                continue  # a case of its own: no later message can join it
            kept = True
            self._case_messages.setdefault(view.case_id, []).append(position)
            for number in view.numbers:
                found = self._cases.setdefault((view.sender, view.patient, number), [])
                if view.case_id not in found:
                    found.append(view.case_id)
        if kept:
            self._messages[position] = message
            if len(self._messages) >= self._RECENT:
                self._spill()

    def _spill(self) -> None:
        """The memory part to disk, and cleared."""
        self._write(LogPart(self._messages, self._case_messages, self._cases, self._owners))
        self._messages, self._case_messages, self._cases, self._owners = {}, {}, {}, {}

    def _write(self, part: LogPart) -> None:
        db, messages = self._db, part.messages
        db.executemany(
            _ADD_CASE_MESSAGE,
            [
                (case_id, p, messages[p].data, messages[p].format.value, messages[p].fhir_source)
                for case_id, positions in part.case_messages.items()
                for p in positions
            ],
        )
        db.executemany(
            _ADD_NUMBER,
            [
                (number.partition(":")[2], number, sender, patient, case_id)
                for (sender, patient, number), case_ids in part.cases.items()
                for case_id in case_ids
            ],
        )
        db.executemany(
            _ADD_OWNER,
            [
                (number.partition(":")[2], number, sender, patient)
                for (sender, number), patient in part.owners.items()
            ],
        )
        self._seen.update(part.case_messages)
        self._seen.update(number for _, _, number in part.cases)
        self._seen.update(number for _, number in part.owners)

    def take(self, numbers: Collection[str]) -> LogPart:
        """Remove and return every case and owner of these numbers (as sent, without kind).

        The caller hands over a whole group of numbers that only messages routed here used,
        so no case left here holds one of them.
        """
        self._spill()  # rare (a message joining two workers' cases): taken from disk alone
        self._read_owners.clear()
        db = self._db
        plain = sorted(numbers)
        marks = ", ".join("?" * len(plain))
        cases: dict[CaseKey, list[str]] = {}
        for sender, patient, number, case_id in db.execute(
            f"SELECT sender, patient, number, case_id FROM case_number WHERE plain IN ({marks})",
            plain,
        ).fetchall():
            cases.setdefault((sender, patient, number), []).append(case_id)
        db.execute(f"DELETE FROM case_number WHERE plain IN ({marks})", plain)
        case_ids = sorted({case_id for found in cases.values() for case_id in found})
        case_messages: dict[str, list[int]] = {}
        messages: dict[int, PriorMessage] = {}
        for case_id in case_ids:
            rows = db.execute(
                "SELECT position, data, format, fhir_source FROM case_message"
                " WHERE case_id = ? ORDER BY position",
                (case_id,),
            ).fetchall()
            db.execute("DELETE FROM case_message WHERE case_id = ?", (case_id,))
            if rows:
                case_messages[case_id] = [int(row[0]) for row in rows]
            for position, data, kind, source in rows:
                messages[int(position)] = PriorMessage(data, SourceFormat(kind), source)
        owners: dict[OwnerKey, str] = {
            (sender, number): patient
            for sender, number, patient in db.execute(
                f"SELECT sender, number, patient FROM owner WHERE plain IN ({marks})", plain
            ).fetchall()
        }
        db.execute(f"DELETE FROM owner WHERE plain IN ({marks})", plain)
        return LogPart(messages, case_messages, cases, owners)

    def merge(self, part: LogPart) -> None:
        """Take in cases another log gave up (``take``)."""
        self._write(part)
