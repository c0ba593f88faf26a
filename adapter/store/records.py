"""The rows the store hands out and the write requests it takes.

Plain frozen dataclasses: the store is I/O at the edge, and these travel through hot paths where
pydantic validation would only cost time. Times are aware UTC datetimes supplied by the caller
(the clock is injected); a naive datetime is refused because its zone would be a guess.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class Transport(StrEnum):
    MLLP = "mllp"
    HTTP = "http"
    CLI = "cli"
    REPLAY = "replay"


class MessageFormat(StrEnum):
    HL7V2 = "hl7v2"
    FHIR = "fhir"
    UNKNOWN = "unknown"
    TRUNCATED = "truncated"  # the first bytes of a message over the size limit: never processed


class MessageStatus(StrEnum):
    RECEIVED = "received"  # durably stored, not yet processed (or processing crashed)
    PROCESSED = "processed"
    REJECTED = "rejected"  # permanent input error: resending will not help
    FAILED = "failed"  # the adapter could not finish (e.g. OUTPUT-INVALID); reprocess later


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


def utc(moment: datetime) -> datetime:
    """The same instant in UTC; refuses naive datetimes rather than guess their zone."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("store times must be timezone-aware")
    return moment.astimezone(UTC)


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class MessageRow:
    row_id: int
    transport: Transport
    message_format: MessageFormat
    sender: str
    message_id: str | None
    content_hash: str
    raw: bytes = field(repr=False)
    received_at: datetime
    version: int
    status: MessageStatus
    error_code: str | None
    error_text: str | None
    bundle: bytes | None = field(repr=False)
    ack: bytes | None = field(repr=False)
    processed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Receipt:
    """What ``receive`` did: stored a new row, a new version of one, or found a duplicate.

    For a duplicate, ``status``/``error_code``/``ack`` are the stored outcome of the earlier copy,
    so a transport can answer a retransmission with the ACK it already sent.
    """

    row_id: int
    version: int
    duplicate: bool
    supersedes: int | None  # row id of the previous latest version, for a correction
    status: MessageStatus
    error_code: str | None
    error_text: str | None
    ack: bytes | None = field(repr=False)

    @property
    def is_correction(self) -> bool:
        return not self.duplicate and self.supersedes is not None


@dataclass(frozen=True, slots=True)
class ReportIndexRow:
    """One DiagnosticReport of a processed message, indexed for the HTTP queries.

    The report itself is not copied here: it is read from the Bundle of the message's outcome.
    """

    report_id: str
    patient: str  # patient reference or identifier string, matched exactly
    category: str
    status: str
    audit: str | None = field(default=None, repr=False)  # adapter.audit.facts.ReportFacts JSON

    def __reduce__(self) -> tuple[type[ReportIndexRow], tuple[str, str, str, str, str | None]]:
        # Pickled as its fields (each worker process sends its rows to the service), at half
        # the cost of the state functions dataclasses give a class with slots.
        return (
            ReportIndexRow,
            (self.report_id, self.patient, self.category, self.status, self.audit),
        )


@dataclass(frozen=True, slots=True)
class AuditRow:
    """The latest version of one indexed report, as the audit reads it: no patient data."""

    sender: str
    received_at: datetime
    audit: str | None  # None: indexed before the store kept audit facts (schema version 1)


@dataclass(frozen=True, slots=True)
class UnprocessedRow:
    """A stored message that gave no report (rejected or failed), as the audit counts it."""

    sender: str
    received_at: datetime
    status: MessageStatus
    error_code: str | None


@dataclass(frozen=True, slots=True)
class ResourceIndexRow:
    """One resource of a processed message, indexed for the FHIR facade's reads and searches.

    Its body is not copied here: the facade reads it from the Bundle of the message's outcome
    (``StoredResource``), the one stored copy. ``tokens`` holds every searchable token as
    `` param:value `` words (space-delimited, each value percent-encoded), so one LIKE finds a
    code with or without its system; ``moment`` is the resource's clinically relevant time in
    UTC (``YYYY-MM-DDTHH:MM:SSZ``), or ``""``.
    """

    resource_type: str
    resource_id: str
    patient: str  # "Patient/<id>", or ""
    tokens: str
    moment: str

    def __reduce__(self) -> tuple[type[ResourceIndexRow], tuple[str, str, str, str, str]]:
        # As ReportIndexRow: pickled as its fields.
        return (
            ResourceIndexRow,
            (self.resource_type, self.resource_id, self.patient, self.tokens, self.moment),
        )


@dataclass(frozen=True, slots=True)
class StoredResource:
    """A resource the index found: its id and the stored Bundle of the message carrying it."""

    resource_type: str
    resource_id: str
    bundle: bytes = field(repr=False)


MOMENT_OPERATORS = frozenset({"=", "<", "<=", ">", ">="})


@dataclass(frozen=True, slots=True)
class ResourceSearch:
    """What the FHIR facade asks of the resource index; every filter must hold.

    ``tokens``: each item is a set of alternatives (a comma-separated search value), any of which
    matches. ``moments``: (operator, UTC moment) pairs compared with the resource's moment.
    """

    resource_type: str
    resource_id: str | None = None
    patient: str | None = None
    tokens: tuple[tuple[str, ...], ...] = ()
    moments: tuple[tuple[str, str], ...] = ()
    count: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        for operator, _ in self.moments:
            if operator not in MOMENT_OPERATORS:
                raise ValueError(f"not a comparison operator: {operator!r}")
        if self.count < 0 or self.offset < 0:
            raise ValueError("count and offset cannot be negative")


@dataclass(frozen=True, slots=True)
class StoredReport:
    message_row_id: int
    received_at: datetime
    report_id: str
    patient: str
    category: str
    status: str
    bundle: bytes = field(repr=False)  # the Bundle of the message that carried the report


@dataclass(frozen=True, slots=True)
class OutboxItem:
    outbox_id: int
    message_row_id: int
    bundle: bytes = field(repr=False)
    status: OutboxStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoreCounts:
    messages: dict[MessageStatus, int]
    outbox: dict[OutboxStatus, int]


@dataclass(frozen=True, slots=True)
class Purged:
    """What ``Store.purge`` deleted, and what it kept although it was old enough."""

    messages: int  # with their raw content, Bundle, ACK, report index rows and outbox items
    kept_unfinished: int  # received or failed: reprocess (and the recovery sweep) needs them
    kept_forwarding: int  # a Bundle still pending in the outbox
    kept_in_open_cases: int = 0  # a case of theirs has a message that must stay


# --------------------------------------------------------------------------------------------
# Write requests: validated when built, so a bad request never reaches a shared transaction.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReceiveRequest:
    transport: Transport
    message_format: MessageFormat
    sender: str
    message_id: str | None
    raw: bytes = field(repr=False)
    received_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "transport", Transport(self.transport))
        object.__setattr__(self, "message_format", MessageFormat(self.message_format))
        object.__setattr__(self, "received_at", utc(self.received_at))


@dataclass(frozen=True, slots=True)
class OutcomeRequest:
    message_row_id: int
    status: MessageStatus
    processed_at: datetime
    bundle: bytes | None = field(default=None, repr=False)
    error_code: str | None = None
    error_text: str | None = None
    ack: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        status = MessageStatus(self.status)
        if status is MessageStatus.RECEIVED:
            raise ValueError("an outcome is processed, rejected or failed")
        if status is not MessageStatus.PROCESSED and not self.error_code:
            raise ValueError(f"a {status} message keeps its error code")
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "processed_at", utc(self.processed_at))


@dataclass(frozen=True, slots=True)
class IndexReportsRequest:
    """Replaces the message's indexed reports (reprocessing must not leave stale rows)."""

    message_row_id: int
    reports: Sequence[ReportIndexRow]
    resources: Sequence[ResourceIndexRow] = ()


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    message_row_id: int
    bundle: bytes = field(repr=False)
    now: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", utc(self.now))


@dataclass(frozen=True, slots=True)
class CaseEventRow:
    """One case as a message left it: a line of the case's timeline (adapter/cases)."""

    case_id: str
    sender: str
    patient: str | None  # the patient key; None for a case of one order (never joined)
    numbers: tuple[str, ...]  # every number the case is found by
    report_id: str
    category: str
    official_result: str
    status: str
    changes: str  # JSON: {"added": [...], "replaced": [...], "removed": [...]}

    def __reduce__(self) -> tuple[type[CaseEventRow], tuple[object, ...]]:
        # As ReportIndexRow: pickled as its fields.
        return (
            CaseEventRow,
            (
                self.case_id,
                self.sender,
                self.patient,
                self.numbers,
                self.report_id,
                self.category,
                self.official_result,
                self.status,
                self.changes,
            ),
        )


OwnerKey = tuple[str, str]
"""(sender, number)."""


@dataclass(frozen=True, slots=True)
class CaseWriteRequest:
    """A message's cases, written only if the store still holds what it was combined with.

    ``expected_cases`` (case id -> version) and ``expected_owners`` are what the message was
    processed against; if another message changed them meanwhile the request raises
    ``CaseConflict`` and writes nothing, and the caller processes the message again.
    """

    message_row_id: int
    lookup: tuple[tuple[str, str, str], ...]  # (sender, patient, number) the cases are found by
    owner_keys: tuple[OwnerKey, ...]  # the numbers whose first user decided the message's ids
    expected_cases: tuple[tuple[str, int], ...]
    expected_owners: tuple[tuple[OwnerKey, str], ...]
    claims: tuple[tuple[OwnerKey, str], ...]  # numbers this message used first
    events: tuple[CaseEventRow, ...]


class CaseConflict(LookupError):
    """The cases changed since the message was combined with them: process it again."""


@dataclass(frozen=True, slots=True)
class StoredPrior:
    """What a message is combined with, as the store holds it."""

    messages: tuple[MessageRow, ...]  # the cases' earlier messages, in the order applied
    owners: dict[OwnerKey, str]
    cases: tuple[tuple[str, int], ...]  # case id -> latest version


@dataclass(frozen=True, slots=True)
class CaseEvent:
    """One line of a case's timeline, with the message that brought it."""

    case_id: str
    version: int
    message_row_id: int
    message_id: str | None
    transport: Transport
    received_at: datetime
    sender: str
    patient: str | None
    report_id: str
    category: str
    official_result: str
    status: str
    changes: str


WriteRequest = (
    ReceiveRequest | OutcomeRequest | IndexReportsRequest | EnqueueRequest | CaseWriteRequest
)
WriteResult = Receipt | int | None
"""Receipt for a receive, the outbox id for an enqueue, None for the others."""
