"""Cases in the store: their numbers, who first used each number, and every version (timeline).

Three tables (schema version 4): ``case_numbers`` finds a patient's cases by a number,
``case_owners`` remembers the first patient to use a number (resource ids, emit/ids.py), and
``case_events`` holds one row per message per case, in the order applied: the timeline, and the
order in which a case's messages are read again when the next one arrives.

A case write checks, inside the transaction that stores the message's outcome, that the cases
and owners are still those the message was combined with; a mismatch raises ``CaseConflict``.
The check and the write cannot be overtaken: in one service the group committer is the only
writer, and the transaction first locks every number and case it will check or write
(``lock_keys``; SQLite's write lock, PostgreSQL's advisory locks), so several services sharing
one database take turns on a case too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from adapter.store.records import CaseConflict, CaseEvent, CaseWriteRequest, OwnerKey

if TYPE_CHECKING:
    from adapter.store.base import _Session

_EVENT_COLUMNS = (
    "e.case_id, e.version, e.message_row_id, m.message_id, m.transport, m.received_at,"
    " e.sender, e.patient, e.report_id, e.category, e.official_result, e.status, e.changes"
)


def lock_keys(requests: Iterable[CaseWriteRequest]) -> list[str]:
    """What the requests' check and writes depend on: each (sender, number) and each case.

    The number without its patient: owners are per (sender, number), and a patient's cases are
    found by a number, so one key covers both.
    """
    keys: set[str] = set()
    for request in requests:
        keys.update(f"number\x1f{sender}\x1f{number}" for sender, _, number in request.lookup)
        keys.update(f"number\x1f{sender}\x1f{number}" for sender, number in request.owner_keys)
        keys.update(f"case\x1f{event.case_id}" for event in request.events)
    return sorted(keys)


def _rows(columns: int, rows: int) -> str:
    one = "(" + ", ".join("?" * columns) + ")"
    return ", ".join([one] * rows)


def _each(select: str, rows: int) -> str:
    """One indexed look-up per key, as a UNION ALL: row values ``IN (VALUES ...)`` scan in SQLite,
    and a plain UNION sorts into a temporary B-tree for every query."""
    return " UNION ALL ".join([select] * rows)


def current(
    session: _Session, lookup: Sequence[tuple[str, str, str]], owner_keys: Sequence[OwnerKey]
) -> tuple[tuple[tuple[str, int], ...], dict[OwnerKey, str]]:
    """The cases found by ``lookup`` with their latest versions, and the owners of the keys."""
    cases: tuple[tuple[str, int], ...] = ()
    if lookup:
        found = session.all(
            "SELECT case_id, MAX(version) FROM case_events WHERE case_id IN ("
            + _each(
                "SELECT case_id FROM case_numbers WHERE sender = ? AND patient = ? AND number = ?",
                len(lookup),
            )
            + ") GROUP BY case_id ORDER BY case_id",
            [part for key in lookup for part in key],
        )
        cases = tuple((str(case_id), int(version)) for case_id, version in found)
    return cases, owners(session, owner_keys)


def owners(session: _Session, keys: Sequence[OwnerKey]) -> dict[OwnerKey, str]:
    if not keys:
        return {}
    found = session.all(
        _each(
            "SELECT sender, number, patient FROM case_owners WHERE sender = ? AND number = ?",
            len(keys),
        ),
        [part for key in keys for part in key],
    )
    return {(sender, number): patient for sender, number, patient in found}


def check(session: _Session, request: CaseWriteRequest) -> None:
    """Raises CaseConflict unless the cases and owners are still those the message expects."""
    cases, found_owners = current(session, request.lookup, request.owner_keys)
    if cases != tuple(sorted(request.expected_cases)) or found_owners != dict(
        request.expected_owners
    ):
        raise CaseConflict(f"the cases of message row {request.message_row_id} changed")


def write(session: _Session, request: CaseWriteRequest) -> None:
    """Writes a message's cases; ``check`` has passed in the same transaction."""
    for event in request.events:
        # The version follows the stored ones, so a message read again (reprocess) adds one.
        session.run(
            "INSERT INTO case_events (case_id, version, message_row_id, sender, patient,"
            " report_id, category, official_result, status, changes)"
            " SELECT ?, COALESCE(MAX(version), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?"
            " FROM case_events WHERE case_id = ?",
            (
                event.case_id,
                request.message_row_id,
                event.sender,
                event.patient,
                event.report_id,
                event.category,
                event.official_result,
                event.status,
                event.changes,
                event.case_id,
            ),
        )
    numbers = [
        (event.sender, event.patient, number, event.case_id)
        for event in request.events
        if event.patient is not None
        for number in event.numbers
    ]
    if numbers:
        session.run(
            "INSERT INTO case_numbers (sender, patient, number, case_id)"
            f" VALUES {_rows(4, len(numbers))} ON CONFLICT DO NOTHING",
            [part for row in numbers for part in row],
        )
    if request.claims:
        session.run(
            "INSERT INTO case_owners (sender, number, patient)"
            f" VALUES {_rows(3, len(request.claims))} ON CONFLICT DO NOTHING",
            [
                part
                for (sender, number), patient in request.claims
                for part in (sender, number, patient)
            ],
        )


def purge_lock_keys(session: _Session, message_ids: Sequence[int]) -> list[str]:
    """``lock_keys`` of the cases the messages are in: what a purge of them must lock, so
    that a case write of another connection adding to one of those cases is not lost."""
    marks = ", ".join("?" * len(message_ids))
    case_ids = [
        str(row[0])
        for row in session.all(
            f"SELECT DISTINCT case_id FROM case_events WHERE message_row_id IN ({marks})",
            list(message_ids),
        )
    ]
    if not case_ids:
        return []
    _, numbers = prior_rows(session, case_ids, None)
    keys = {f"case\x1f{case_id}" for case_id in case_ids}
    keys.update(f"number\x1f{sender}\x1f{number}" for sender, number in numbers)
    return sorted(keys)


def prior_rows(
    session: _Session, case_ids: Sequence[str], exclude_row: int | None
) -> tuple[list[int], list[OwnerKey]]:
    """The message rows that made the cases, in the order applied, and every number they hold."""
    if not case_ids:
        return [], []
    marks = ", ".join("?" * len(case_ids))
    rows = session.all(
        "SELECT message_row_id, MIN(id) FROM case_events"
        f" WHERE case_id IN ({marks}) GROUP BY message_row_id ORDER BY MIN(id)",
        list(case_ids),
    )
    numbers = session.all(
        f"SELECT DISTINCT sender, number FROM case_numbers WHERE case_id IN ({marks})",
        list(case_ids),
    )
    return (
        [int(row_id) for row_id, _ in rows if row_id != exclude_row],
        [(str(sender), str(number)) for sender, number in numbers],
    )


def timeline_query() -> str:
    return (
        f"SELECT {_EVENT_COLUMNS} FROM case_events e JOIN messages m ON m.id = e.message_row_id"
        " WHERE e.case_id = ? ORDER BY e.version, e.id"
    )


def find_query(by: str) -> str:
    """Case ids by a number (any sender, patient) or by the control id of a message."""
    if by == "number":
        return "SELECT DISTINCT case_id FROM case_numbers WHERE number = ? ORDER BY case_id"
    return (
        "SELECT DISTINCT e.case_id FROM case_events e JOIN messages m"
        " ON m.id = e.message_row_id WHERE m.message_id = ? ORDER BY e.case_id"
    )


def timeline_json(case_id: str, events: Sequence[CaseEvent]) -> dict[str, Any]:
    """A case over time, as ``case show`` prints it and ``GET /cases/{id}`` answers.

    Which message brought which results (analytes, observation ids), and how the category
    changed; never the patient's identifiers.
    """
    return {
        "case": case_id,
        "report": events[-1].report_id if events else None,
        "sender": events[-1].sender if events else None,
        "versions": [
            {
                "version": event.version,
                "message_id": event.message_id,
                "transport": event.transport.value,
                "received_at": event.received_at.isoformat(),
                "status": event.status,
                "category": event.category or None,
                "official_result": event.official_result or None,
                **orjson.loads(event.changes),
            }
            for event in events
        ],
    }
