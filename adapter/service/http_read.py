"""The read side of the HTTP API that is not FHIR: message status, from the store (the FHIR reads
and searches are ``fhir_facade``).

Synchronous (the store is): the app runs these in a worker thread. Stored JSON is spliced into
the answers as it was stored, so a report reads byte for byte as the Bundle that carried it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from fastapi.responses import Response

from adapter.service.http_outcome import outcome_response
from adapter.store import MessageRow, OutboxItem, Store
from adapter.store.cases import timeline_json


def case(store: Store, case_id: str) -> Response:
    """One case over time (docs/cases.md): its versions, the message of each, what changed."""
    events = store.case_timeline(case_id)
    if not events:
        return _not_found(f"no case with id {case_id[:100]}")
    return Response(orjson.dumps(timeline_json(case_id, events)), media_type="application/json")


def cases(store: Store, number: str | None, message_id: str | None) -> Response:
    """The ids of the cases holding an order or specimen number, or touched by a message."""
    if (number is None) == (message_id is None):
        return outcome_response(
            400, "HTTP-BAD-REQUEST", "invalid", "give exactly one of number= and message="
        )
    found = store.find_cases(number=number, message_id=message_id)
    return Response(orjson.dumps({"cases": found}), media_type="application/json")


def message(store: Store, message_id: str, sender: str | None) -> Response:
    """The latest version's outcome, with every version listed, oldest first."""
    versions = store.message_versions(message_id, sender)
    if not versions:
        return _not_found(f"no stored message with id {message_id[:100]}")
    latest = versions[-1]
    view = {
        "message_id": latest.message_id,
        "sender": latest.sender,
        "transport": latest.transport.value,
        "format": latest.message_format.value,
        "version": latest.version,
        "status": latest.status.value,
        "error": _error(latest),
        "received_at": _time(latest.received_at),
        "processed_at": _time(latest.processed_at),
        "forwarding": _forwarding(store.outbox_items_for(latest.row_id)),
        "ack": None if latest.ack is None else latest.ack.decode("utf-8", "replace"),
        "versions": [_version(row) for row in versions],
    }
    body = orjson.dumps(view)
    bundle = latest.bundle if latest.bundle is not None else b"null"
    return Response(body[:-1] + b',"bundle":' + bundle + b"}", media_type="application/json")


def _version(row: MessageRow) -> dict[str, Any]:
    return {
        "version": row.version,
        "sender": row.sender,
        "status": row.status.value,
        "error_code": row.error_code,
        "received_at": _time(row.received_at),
        "processed_at": _time(row.processed_at),
    }


def _error(row: MessageRow) -> dict[str, str | None] | None:
    if row.error_code is None:
        return None
    return {"code": row.error_code, "text": row.error_text}


def _forwarding(items: list[OutboxItem]) -> dict[str, Any]:
    """The latest outbox item of the message (a reprocess queues the Bundle again)."""
    if not items:
        return {"status": "not-queued"}
    item = items[-1]
    return {
        "status": item.status.value,
        "attempts": item.attempts,
        "next_attempt_at": _time(item.next_attempt_at),
        "last_attempt_at": _time(item.last_attempt_at),
        "last_error": item.last_error,
        "sent_at": _time(item.sent_at),
    }


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _not_found(diagnostics: str) -> Response:
    return outcome_response(404, "HTTP-NOT-FOUND", "not-found", diagnostics)
