"""The store: one implementation in portable SQL over a small per-database ``Backend``.

Every driver error is turned into ``StoreUnavailable`` here, at the boundary, so that a transport
never ACKs a message that is not durably stored: it sends no ACK and the engine retries.

One connection per store, guarded by a lock: writes come from one writer (the group committer)
and reads from the HTTP API are short. A broken Postgres connection is dropped and reopened on the
next call, so the store recovers when the database comes back.
"""

from __future__ import annotations

import errno
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from adapter.errors import ConfigError, StoreUnavailable
from adapter.store import cases as case_sql
from adapter.store.records import (
    AuditRow,
    CaseEvent,
    CaseWriteRequest,
    EnqueueRequest,
    IndexReportsRequest,
    MessageFormat,
    MessageRow,
    MessageStatus,
    OutboxItem,
    OutboxStatus,
    OutcomeRequest,
    Purged,
    Receipt,
    ReceiveRequest,
    ReportIndexRow,
    ResourceIndexRow,
    ResourceSearch,
    StoreCounts,
    StoredPrior,
    StoredReport,
    StoredResource,
    Transport,
    UnprocessedRow,
    WriteRequest,
    WriteResult,
    content_hash,
    utc,
)

Connection = Any
"""A DB-API 2 connection (sqlite3 or psycopg); only ``execute``/``rollback``/``close`` are used."""

Row = tuple[Any, ...]
_T = TypeVar("_T")


class Backend(ABC):
    """What differs between databases: connecting, transactions, types and DDL."""

    name: ClassVar[str]
    driver_errors: ClassVar[tuple[type[BaseException], ...]]
    """Every error of the driver (and OSError): all mean "could not durably record"."""

    @abstractmethod
    def connect(self) -> Connection: ...

    @abstractmethod
    def begin(self, conn: Connection, *, write: bool) -> None: ...

    @abstractmethod
    def is_broken(self, conn: Connection, error: BaseException) -> bool:
        """True when the connection cannot be used again after ``error`` and must be reopened."""

    @abstractmethod
    def sql(self, text: str) -> str:
        """Adapts portable SQL written with ``?`` placeholders."""

    @abstractmethod
    def time_to_db(self, moment: datetime) -> object: ...

    @abstractmethod
    def time_from_db(self, value: Any) -> datetime: ...

    @abstractmethod
    def has_table(self, conn: Connection, table: str) -> bool: ...

    @abstractmethod
    def migrations(self) -> Sequence[Sequence[str]]:
        """DDL per schema version: item 0 brings an empty database to version 1, and so on."""

    @abstractmethod
    def lock_schema(self, conn: Connection) -> None:
        """Serialises schema upgrades by concurrent processes, inside the open transaction."""

    @abstractmethod
    def lock_cases(self, conn: Connection, keys: Sequence[str]) -> None:
        """Holds, until the open transaction ends, a lock on each key (``cases.lock_keys``).

        Another process writing cases with one of the keys waits for this transaction to end,
        so its check sees what this one wrote: several services may share one database.
        """

    @abstractmethod
    def cause_of(self, error: BaseException) -> str:
        """A driver error in a few words (``read-only``, ``disk full``...): ``StoreUnavailable``."""

    @abstractmethod
    def check_room(self) -> None:
        """Raises OSError (ENOSPC) when the store has no room for a message: ``probe_write``.

        A write that changes nothing can succeed on a full disk (it rewrites space it already
        holds) while every message, which needs new space, fails.
        """


def os_cause(error: OSError) -> str:
    """What an operating-system error says about a store, in a few words."""
    return _OS_CAUSES.get(error.errno or 0, "operating-system error")


_OS_CAUSES = {
    errno.ENOSPC: "disk full",
    errno.ENOENT: "no such file or directory",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "I/O error",
    errno.ECONNREFUSED: "unreachable",
    errno.ETIMEDOUT: "unreachable",
    errno.EHOSTUNREACH: "unreachable",
}


_MESSAGE_COLUMNS = (
    "id, transport, format, sender, message_id, content_hash, raw, received_at, version, status,"
    " error_code, error_text, bundle, ack, processed_at"
)
_OUTBOX_COLUMNS = (
    "id, message_row_id, bundle, status, attempts, created_at, next_attempt_at, last_attempt_at,"
    " last_error, sent_at"
)
_LATEST_REPORTS = (
    "SELECT ranked.* FROM (SELECT reports.*, ROW_NUMBER() OVER ("
    " PARTITION BY reports.report_id"
    " ORDER BY messages.received_at DESC, messages.id DESC) AS recency"
    " FROM reports JOIN messages ON messages.id = reports.message_row_id"
    " WHERE messages.bundle IS NOT NULL) ranked"
    " WHERE ranked.recency = 1"
)
"""Each report id's row from the most recently received message that carried it; only messages
with a Bundle count (the report is read from it: the index holds no copy, and the service
empties the index of a message whose outcome has none)."""
_LATEST_RESOURCES = (
    "SELECT ranked.* FROM (SELECT resources.*, ROW_NUMBER() OVER ("
    " PARTITION BY resources.resource_type, resources.resource_id"
    " ORDER BY messages.received_at DESC, messages.id DESC) AS recency"
    " FROM resources JOIN messages ON messages.id = resources.message_row_id"
    " WHERE resources.resource_type = ? AND resources.resource_id = ?"
    " AND messages.bundle IS NOT NULL) ranked"
    " WHERE ranked.recency = 1"
)
"""One resource's row from the most recently received message that carried it (and has a
Bundle, the resource's one stored copy)."""
_LATEST_RESOURCES_OF_TYPE = (
    "SELECT ranked.* FROM (SELECT resources.*, ROW_NUMBER() OVER ("
    " PARTITION BY resources.resource_id"
    " ORDER BY messages.received_at DESC, messages.id DESC) AS recency"
    " FROM resources JOIN messages ON messages.id = resources.message_row_id"
    " WHERE resources.resource_type = ? AND (? = '' OR resources.resource_id = ?)"
    " AND messages.bundle IS NOT NULL) ranked"
    " WHERE ranked.recency = 1"
)
"""Each resource of one type (or the one id given) in its latest version."""
_REPORT_COLUMNS = (
    "r.message_row_id, m.received_at, r.report_id, r.patient, r.category, r.status, m.bundle"
)


class Store:
    """Durable messages, their outcomes, the report index and the forwarding outbox."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.RLock()
        self._conn: Connection | None = None
        self._closed = False
        self._migrate()

    @property
    def backend_name(self) -> str:
        return self._backend.name

    # ----------------------------------------------------------------------------------------
    # Connection and transaction plumbing
    # ----------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._drop_connection(self._conn)

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[_Session]:
        backend = self._backend
        with self._lock:
            if self._closed:
                raise StoreUnavailable("the store is closed")
            conn = self._conn
            try:
                if conn is None:
                    conn = self._conn = backend.connect()
                backend.begin(conn, write=write)
                try:
                    yield _Session(conn, backend)
                    conn.commit()
                except BaseException:
                    self._rollback_quietly(conn)
                    raise
            except backend.driver_errors as exc:
                if conn is not None and backend.is_broken(conn, exc):
                    self._drop_connection(conn)
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise StoreUnavailable(
                    f"{backend.name}: {type(exc).__name__}: {first_line}".rstrip(": "),
                    cause=backend.cause_of(exc),
                ) from exc

    def _rollback_quietly(self, conn: Connection) -> None:
        # The original error is the one to report; a dead connection is dropped after.
        with suppress(*self._backend.driver_errors):
            conn.rollback()

    def _drop_connection(self, conn: Connection) -> None:
        self._conn = None
        with suppress(*self._backend.driver_errors):  # closing a dead connection may fail
            conn.close()

    def _migrate(self) -> None:
        migrations = self._backend.migrations()
        latest = len(migrations)
        with self._transaction(write=False) as session:
            current = self._schema_version(session)
        if current == latest:
            return  # nothing to write: a read-only database opens too
        if current > latest:
            raise ConfigError(
                f"the store's schema version {current} is newer than this adapter's {latest}"
            )
        with self._transaction(write=True) as session:
            self._backend.lock_schema(session.conn)
            current = self._schema_version(session)
            for statements in migrations[current:]:
                for statement in statements:
                    session.run(statement)
            if current < latest:
                session.run("DELETE FROM schema_version")
                session.run("INSERT INTO schema_version (version) VALUES (?)", (latest,))

    def _schema_version(self, session: _Session) -> int:
        if not self._backend.has_table(session.conn, "schema_version"):
            return 0
        row = session.one("SELECT MAX(version) FROM schema_version")
        return int(row[0]) if row and row[0] is not None else 0

    def ping(self) -> None:
        """Raises StoreUnavailable unless the database answers."""
        with self._transaction(write=False) as session:
            session.one("SELECT 1")

    def probe_write(self) -> None:
        """Raises StoreUnavailable unless the database takes a committed write.

        The write changes nothing but is real (a row rewritten and committed), so a read-only
        database or a lost connection fails it as they would fail a message; a full disk is
        asked of the backend (``check_room``), since a rewrite needs no new space.
        """
        with self._transaction(write=True) as session:
            self._backend.check_room()
            session.run("UPDATE schema_version SET version = version")

    # ----------------------------------------------------------------------------------------
    # Writes
    # ----------------------------------------------------------------------------------------

    def write(self, requests: Sequence[WriteRequest]) -> list[WriteResult]:
        """Applies the requests in one transaction, all or nothing.

        Raises LookupError (and writes nothing) when a request names a row that does not exist.
        """
        (outcome,) = self.write_batch([requests])
        if isinstance(outcome, LookupError):
            raise outcome
        return outcome

    def write_batch(
        self, groups: Sequence[Sequence[WriteRequest]]
    ) -> list[list[WriteResult] | LookupError]:
        """Applies many callers' groups of requests in ONE transaction (group commit).

        Each group is atomic on its own (checked before it writes, or in a savepoint): a group
        that names a missing row gets a LookupError and leaves no trace, without failing the
        others. Any database error fails
        the whole transaction with StoreUnavailable, and nothing of the batch is stored.
        """
        outcomes: list[list[WriteResult] | LookupError] = []
        case_keys = case_sql.lock_keys(
            each for group in groups for each in group if isinstance(each, CaseWriteRequest)
        )
        # The index rows of the batch's messages, by message: written after every group (see
        # _write_index), the last request for a message replacing an earlier one as it would
        # have written over it.
        index: dict[int, IndexReportsRequest] = {}
        with self._transaction(write=True) as session:
            if case_keys:
                # All of the batch's keys at once, in one order: two writers never deadlock.
                self._backend.lock_cases(session.conn, case_keys)
            for group in groups:
                if _checks_first(group):
                    # Every check before any write: a group that fails one has written
                    # nothing, with no savepoint. (A savepoint copies each page the group
                    # changes into SQLite's sub-journal: most of what the writer wrote.)
                    known: set[int] = set()
                    try:
                        for request in group:
                            self._check(session, request, known)
                    except LookupError as missing:
                        outcomes.append(missing)
                    else:
                        outcomes.append(
                            [self._perform(session, request, index) for request in group]
                        )
                    continue
                session.run("SAVEPOINT write_group")
                known = set()
                indexed: dict[int, IndexReportsRequest] = {}
                try:
                    results = []
                    for request in group:
                        self._check(session, request, known)
                        results.append(self._perform(session, request, indexed))
                except LookupError as missing:
                    session.run("ROLLBACK TO SAVEPOINT write_group")
                    outcomes.append(missing)
                else:
                    index.update(indexed)
                    outcomes.append(results)
                session.run("RELEASE SAVEPOINT write_group")
            if index:
                self._write_index(session, list(index.values()))
        return outcomes

    def receive(
        self,
        *,
        transport: Transport | str,
        message_format: MessageFormat | str,
        sender: str,
        message_id: str | None,
        raw: bytes,
        received_at: datetime,
    ) -> Receipt:
        """Durably stores the raw message, or finds the identical copy already stored."""
        request = ReceiveRequest(
            Transport(transport),
            MessageFormat(message_format),
            sender,
            message_id,
            raw,
            received_at,
        )
        with self._transaction(write=True) as session:
            return self._insert_message(session, request)

    def record_outcome(
        self,
        message_row_id: int,
        status: MessageStatus | str,
        *,
        processed_at: datetime,
        bundle: bytes | None = None,
        error_code: str | None = None,
        error_text: str | None = None,
        ack: bytes | None = None,
    ) -> None:
        """Stores the outcome of processing (again, when reprocessed)."""
        self.write(
            [
                OutcomeRequest(
                    message_row_id,
                    MessageStatus(status),
                    processed_at,
                    bundle,
                    error_code,
                    error_text,
                    ack,
                )
            ]
        )

    def index_reports(
        self,
        message_row_id: int,
        reports: Sequence[ReportIndexRow],
        resources: Sequence[ResourceIndexRow] = (),
    ) -> None:
        """Replaces the reports and resources indexed for this message (empty clears them)."""
        self.write([IndexReportsRequest(message_row_id, tuple(reports), tuple(resources))])

    def enqueue(self, message_row_id: int, bundle: bytes, *, now: datetime) -> int:
        """Queues a Bundle for forwarding, due at once; returns the outbox id."""
        request = EnqueueRequest(message_row_id, bundle, now)
        with self._transaction(write=True) as session:
            self._require_message(session, message_row_id)
            return self._insert_outbox(session, request)

    def _check(self, session: _Session, request: WriteRequest, known: set[int]) -> None:
        """Raises LookupError if the request cannot be applied; writes nothing.

        ``known`` holds the rows this group has already found to exist.
        """
        if isinstance(request, ReceiveRequest):
            return
        if request.message_row_id not in known:
            self._require_message(session, request.message_row_id)
            known.add(request.message_row_id)
        if isinstance(request, CaseWriteRequest):
            case_sql.check(session, request)

    def _perform(
        self, session: _Session, request: WriteRequest, index: dict[int, IndexReportsRequest]
    ) -> WriteResult:
        """Applies a request whose check has passed; an index request goes into ``index``."""
        if isinstance(request, ReceiveRequest):
            return self._insert_message(session, request)
        if isinstance(request, OutcomeRequest):
            self._update_outcome(session, request)
            return None
        if isinstance(request, IndexReportsRequest):
            index[request.message_row_id] = request
            return None
        if isinstance(request, CaseWriteRequest):
            case_sql.write(session, request)
            return None
        return self._insert_outbox(session, request)

    def _require_message(self, session: _Session, row_id: int) -> None:
        if session.one("SELECT 1 FROM messages WHERE id = ?", (row_id,)) is None:
            raise LookupError(f"no stored message with row id {row_id}")

    def _insert_message(self, session: _Session, request: ReceiveRequest) -> Receipt:
        digest = content_hash(request.raw)
        version, supersedes = 1, None
        if request.message_id is None:
            same_copy = session.one(
                "SELECT id, version, status, error_code, error_text, ack FROM messages"
                " WHERE sender = ? AND message_id IS NULL AND content_hash = ?"
                " ORDER BY id LIMIT 1",
                (request.sender, digest),
            )
        else:
            # Most messages are new: one look-up finds that no version exists, and the copy
            # look-up runs only when one does (a resend, or a correction).
            latest = session.one(
                "SELECT id, version FROM messages WHERE sender = ? AND message_id = ?"
                " ORDER BY version DESC LIMIT 1",
                (request.sender, request.message_id),
            )
            same_copy = None
            if latest is not None:
                supersedes, version = latest[0], latest[1] + 1
                same_copy = session.one(
                    "SELECT id, version, status, error_code, error_text, ack FROM messages"
                    " WHERE sender = ? AND message_id = ? AND content_hash = ?"
                    " ORDER BY version DESC LIMIT 1",
                    (request.sender, request.message_id, digest),
                )
        if same_copy is not None:
            row_id, same_version, status, error_code, error_text, ack = same_copy
            return Receipt(
                row_id, same_version, True, None, MessageStatus(status), error_code, error_text, ack
            )
        row_id = session.insert(
            "INSERT INTO messages (transport, format, sender, message_id, content_hash, raw,"
            " received_at, version, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                request.transport.value,
                request.message_format.value,
                request.sender,
                request.message_id,
                digest,
                request.raw,
                self._backend.time_to_db(request.received_at),
                version,
                MessageStatus.RECEIVED.value,
            ),
        )
        return Receipt(row_id, version, False, supersedes, MessageStatus.RECEIVED, None, None, None)

    def _update_outcome(self, session: _Session, request: OutcomeRequest) -> None:
        session.run(
            "UPDATE messages SET status = ?, error_code = ?, error_text = ?, bundle = ?, ack = ?,"
            " processed_at = ? WHERE id = ?",
            (
                request.status.value,
                request.error_code,
                request.error_text,
                request.bundle,
                request.ack,
                self._backend.time_to_db(request.processed_at),
                request.message_row_id,
            ),
        )

    def _write_index(self, session: _Session, requests: Sequence[IndexReportsRequest]) -> None:
        """Replaces the indexed reports and resources of the messages, a few statements in all.

        Run once a batch's groups are applied (no check reads these tables, so nothing in the
        transaction sees the difference): each table takes the rows of all the batch's
        messages in multi-row statements, instead of a statement (and a release of the GIL
        the event loop is waiting for) per row. The rows name where the content is (the
        message's outcome Bundle): none is copied.
        """
        row_ids = [request.message_row_id for request in requests]
        for table in ("resources", "reports", "report_facts"):
            for ids in _chunks(row_ids):
                session.run(
                    f"DELETE FROM {table} WHERE message_row_id IN ({_marks(len(ids))})", ids
                )
        resources = [
            (
                request.message_row_id,
                resource.resource_type,
                resource.resource_id,
                resource.patient,
                resource.tokens,
                resource.moment,
            )
            for request in requests
            for resource in request.resources
        ]
        for rows in _chunks(resources):
            session.run(
                "INSERT INTO resources (message_row_id, resource_type, resource_id, patient,"
                f" tokens, moment) VALUES {_value_rows(6, len(rows))}",
                [part for row in rows for part in row],
            )
        reports = [
            (request.message_row_id, report) for request in requests for report in request.reports
        ]
        for chunk in _chunks(reports):
            session.run(
                "INSERT INTO reports (message_row_id, report_id, patient, category, status)"
                f" VALUES {_value_rows(5, len(chunk))}",
                [
                    part
                    for row_id, report in chunk
                    for part in (
                        row_id,
                        report.report_id,
                        report.patient,
                        report.category,
                        report.status,
                    )
                ],
            )
            # The message's sender and time come along in the same statement (no round trip).
            session.run(
                "INSERT INTO report_facts (message_row_id, report_id, sender, received_at, facts)"
                " SELECT m.id, v.column2, m.sender, m.received_at, v.column3"
                f" FROM (VALUES {_value_rows(3, len(chunk))}) AS v"
                " JOIN messages m ON m.id = v.column1",
                [
                    part
                    for row_id, report in chunk
                    for part in (row_id, report.report_id, report.audit)
                ],
            )

    def _insert_outbox(self, session: _Session, request: EnqueueRequest) -> int:
        now = self._backend.time_to_db(request.now)
        return session.insert(
            "INSERT INTO outbox (message_row_id, bundle, status, attempts, created_at,"
            " next_attempt_at) VALUES (?, ?, ?, 0, ?, ?) RETURNING id",
            (request.message_row_id, request.bundle, OutboxStatus.PENDING.value, now, now),
        )

    # ----------------------------------------------------------------------------------------
    # Message reads
    # ----------------------------------------------------------------------------------------

    def get_message_row(self, row_id: int) -> MessageRow | None:
        with self._transaction(write=False) as session:
            row = session.one(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (row_id,))
        return None if row is None else self._message(row)

    def get_message(self, message_id: str, sender: str | None = None) -> MessageRow | None:
        """The latest version of a message (the latest received, when no sender is given)."""
        versions = self.message_versions(message_id, sender)
        return versions[-1] if versions else None

    def message_versions(self, message_id: str, sender: str | None = None) -> list[MessageRow]:
        """Every stored version, oldest first (by version; across senders, by time received)."""
        query = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE message_id = ?"
        params: list[object] = [message_id]
        if sender is None:
            query += " ORDER BY received_at, version, id"
        else:
            query += " AND sender = ? ORDER BY version"
            params.append(sender)
        with self._transaction(write=False) as session:
            rows = session.all(query, params)
        return [self._message(row) for row in rows]

    def iter_messages(
        self,
        *,
        status: MessageStatus | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        sender: str | None = None,
        page_size: int = 200,
    ) -> Iterator[MessageRow]:
        """Messages in the order received (row id), ``since`` inclusive, ``until`` exclusive.

        Fetched a page at a time in short transactions, so memory stays constant and no lock is
        held while the caller works on a page.
        """
        if page_size < 1:
            raise ValueError("page_size must be positive")
        filters: list[str] = ["id > ?"]
        params: list[object] = []
        if status is not None:
            filters.append("status = ?")
            params.append(MessageStatus(status).value)
        if since is not None:
            filters.append("received_at >= ?")
            params.append(self._backend.time_to_db(utc(since)))
        if until is not None:
            filters.append("received_at < ?")
            params.append(self._backend.time_to_db(utc(until)))
        if sender is not None:
            filters.append("sender = ?")
            params.append(sender)
        query = (
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE {' AND '.join(filters)}"
            " ORDER BY id LIMIT ?"
        )
        after = 0
        while True:
            with self._transaction(write=False) as session:
                rows = session.all(query, [after, *params, page_size])
            for row in rows:
                yield self._message(row)
            if len(rows) < page_size:
                return
            after = rows[-1][0]

    def counts(self) -> StoreCounts:
        """Messages by status and outbox items by status, zeros included, for metrics."""
        with self._transaction(write=False) as session:
            by_status: dict[str, int] = dict(
                session.all("SELECT status, COUNT(*) FROM messages GROUP BY status")
            )
            by_outbox: dict[str, int] = dict(
                session.all("SELECT status, COUNT(*) FROM outbox GROUP BY status")
            )
        return StoreCounts(
            messages={status: int(by_status.get(status.value, 0)) for status in MessageStatus},
            outbox={status: int(by_outbox.get(status.value, 0)) for status in OutboxStatus},
        )

    def purge(self, received_before: datetime, *, batch: int = 500) -> Purged:
        """Delete messages received before the cutoff that nothing needs any more.

        Deleted: finished messages (processed or rejected) with their raw content, Bundle, ACK,
        report and resource index rows, audit facts and outbox items. Kept however old:
        messages still ``received`` or ``failed`` (reprocess and the recovery sweep need their
        raw content), those with a Bundle still pending in the outbox, and those of a case that
        is still open. A case goes whole (its timeline and numbers with its messages) once
        every one of its messages may go: the next message of an open case is combined with
        all of its earlier ones, never with part of them. Who first used each number
        (``case_owners``) is kept, so that another patient reusing a number never takes over
        the resource ids a receiver holds for the first. Short transactions of ``batch``
        messages each, so the writer is never held for long.
        """
        cutoff = self._backend.time_to_db(utc(received_before))
        finished = (MessageStatus.PROCESSED.value, MessageStatus.REJECTED.value)
        pending = OutboxStatus.PENDING.value

        def may_go(m: str) -> tuple[str, tuple[object, ...]]:
            return (
                f"{m}.received_at < ? AND {m}.status IN (?, ?) AND NOT EXISTS (SELECT 1 FROM"
                f" outbox o WHERE o.message_row_id = {m}.id AND o.status = ?)",
                (cutoff, *finished, pending),
            )

        alone, alone_params = may_go("m")
        other, other_params = may_go("m2")
        # ... and no case it touched has a message that must stay (an open case)
        candidates = (
            f"FROM messages m WHERE {alone} AND NOT EXISTS (SELECT 1 FROM case_events e"
            " JOIN case_events e2 ON e2.case_id = e.case_id"
            " JOIN messages m2 ON m2.id = e2.message_row_id"
            f" WHERE e.message_row_id = m.id AND NOT ({other}))"
        )
        params = (*alone_params, *other_params)
        deleted = 0
        while True:
            with self._transaction(write=True) as session:
                rows = session.all(
                    f"SELECT m.id {candidates} ORDER BY m.id LIMIT ?", (*params, batch)
                )
                found = ids = [row[0] for row in rows]
                keys = case_sql.purge_lock_keys(session, ids) if ids else []
                if keys:
                    # Another service on this database may be adding a message to one of these
                    # cases now: lock them as its case write does, then keep only what still
                    # may go (PostgreSQL's READ COMMITTED: each statement sees its commit).
                    self._backend.lock_cases(session.conn, keys)
                    marks = ", ".join("?" * len(ids))
                    ids = [
                        row[0]
                        for row in session.all(
                            f"SELECT m.id {candidates} AND m.id IN ({marks}) ORDER BY m.id",
                            (*params, *ids),
                        )
                    ]
                if ids:
                    self._delete_messages(session, ids)
            deleted += len(ids)
            if len(found) < batch:
                break
        with self._transaction(write=False) as session:
            counted = {
                name: session.one(f"SELECT COUNT(*) FROM messages m WHERE {where}", where_params)
                for name, where, where_params in (
                    ("unfinished", "received_at < ? AND status NOT IN (?, ?)", (cutoff, *finished)),
                    (
                        "forwarding",
                        "m.received_at < ? AND m.status IN (?, ?) AND EXISTS (SELECT 1 FROM"
                        " outbox o WHERE o.message_row_id = m.id AND o.status = ?)",
                        (cutoff, *finished, pending),
                    ),
                    ("open cases", alone, alone_params),  # what may go alone, and stayed
                )
            }
        kept = {name: int(row[0]) if row else 0 for name, row in counted.items()}
        return Purged(deleted, kept["unfinished"], kept["forwarding"], kept["open cases"])

    def _delete_messages(self, session: _Session, ids: list[int]) -> None:
        """Messages, with what refers to them: their cases are closed (every message of them
        goes), so the cases' timelines and numbers go too, first (they refer to messages)."""
        marks = ", ".join("?" * len(ids))
        cases = [
            row[0]
            for row in session.all(
                f"SELECT DISTINCT case_id FROM case_events WHERE message_row_id IN ({marks})", ids
            )
        ]
        if cases:
            case_marks = ", ".join("?" * len(cases))
            for table in ("case_events", "case_numbers"):
                session.run(f"DELETE FROM {table} WHERE case_id IN ({case_marks})", cases)
        for table in ("reports", "report_facts", "resources", "outbox"):
            session.run(f"DELETE FROM {table} WHERE message_row_id IN ({marks})", ids)
        session.run(f"DELETE FROM messages WHERE id IN ({marks})", ids)

    def _message(self, row: Row) -> MessageRow:
        to_time = self._backend.time_from_db
        return MessageRow(
            row_id=row[0],
            transport=Transport(row[1]),
            message_format=MessageFormat(row[2]),
            sender=row[3],
            message_id=row[4],
            content_hash=row[5],
            raw=bytes(row[6]),
            received_at=to_time(row[7]),
            version=row[8],
            status=MessageStatus(row[9]),
            error_code=row[10],
            error_text=row[11],
            bundle=None if row[12] is None else bytes(row[12]),
            ack=None if row[13] is None else bytes(row[13]),
            processed_at=None if row[14] is None else to_time(row[14]),
        )

    # ----------------------------------------------------------------------------------------
    # Report index
    # ----------------------------------------------------------------------------------------

    def find_reports(
        self,
        *,
        patient: str | None = None,
        category: str | None = None,
        status: str | None = None,
    ) -> list[StoredReport]:
        """The latest version of each report matching every given filter, by report id."""
        filters, params = [], []
        for column, value in (("patient", patient), ("category", category), ("status", status)):
            if value is not None:
                filters.append(f"{column} = ?")
                params.append(value)
        query = (
            f"SELECT {_REPORT_COLUMNS} FROM ({_LATEST_REPORTS}) r"
            " JOIN messages m ON m.id = r.message_row_id"
        )
        if filters:
            # Narrow to matching report ids first (indexed), then filter the latest versions
            # again: a corrected report moved to another patient must not be found under the
            # old one.
            outer = " AND ".join(f"r.{condition}" for condition in filters)
            query += (
                f" WHERE r.report_id IN (SELECT report_id FROM reports"
                f" WHERE {' AND '.join(filters)}) AND {outer}"
            )
            params = params + params
        query += " ORDER BY r.report_id"
        with self._transaction(write=False) as session:
            rows = session.all(query, params)
        return [self._report(row) for row in rows]

    def get_report(self, report_id: str) -> StoredReport | None:
        """The latest version of one report: from the most recently received message."""
        query = (
            f"SELECT {_REPORT_COLUMNS} FROM ({_LATEST_REPORTS}) r"
            " JOIN messages m ON m.id = r.message_row_id WHERE r.report_id = ?"
        )
        with self._transaction(write=False) as session:
            row = session.one(query, (report_id,))
        return None if row is None else self._report(row)

    def audit_rows(self, *, sender: str | None = None) -> list[AuditRow]:
        """The latest version of every indexed report, with its sender and audit facts.

        Ranked like ``_LATEST_REPORTS`` (received time, then row id), on the narrow
        ``report_facts`` table alone.
        """
        query = (
            "SELECT sender, received_at, facts FROM (SELECT sender, received_at, facts,"
            " ROW_NUMBER() OVER (PARTITION BY report_id"
            " ORDER BY received_at DESC, message_row_id DESC) AS recency"
            " FROM report_facts) ranked WHERE recency = 1"
        )
        params: list[object] = []
        if sender is not None:
            # After ranking: the latest version wins whoever sent it, as in find_reports.
            query += " AND sender = ?"
            params.append(sender)
        to_time = self._backend.time_from_db
        with self._transaction(write=False) as session:
            rows = session.all(query, params)
        return [AuditRow(row[0], to_time(row[1]), row[2]) for row in rows]

    def unprocessed_rows(self, *, sender: str | None = None) -> list[UnprocessedRow]:
        """Every stored message version that was rejected or failed (no report came of it)."""
        query = (
            "SELECT sender, received_at, status, error_code FROM messages WHERE status IN (?, ?)"
        )
        params: list[object] = [MessageStatus.REJECTED.value, MessageStatus.FAILED.value]
        if sender is not None:
            query += " AND sender = ?"
            params.append(sender)
        to_time = self._backend.time_from_db
        with self._transaction(write=False) as session:
            rows = session.all(query, params)
        return [
            UnprocessedRow(row[0], to_time(row[1]), MessageStatus(row[2]), row[3]) for row in rows
        ]

    def _report(self, row: Row) -> StoredReport:
        return StoredReport(
            message_row_id=row[0],
            received_at=self._backend.time_from_db(row[1]),
            report_id=row[2],
            patient=row[3],
            category=row[4],
            status=row[5],
            bundle=bytes(row[6]),
        )

    # ----------------------------------------------------------------------------------------
    # Resource index (the FHIR facade)
    # ----------------------------------------------------------------------------------------

    def get_resource(self, resource_type: str, resource_id: str) -> StoredResource | None:
        """The latest version of one resource: from the most recently received message."""
        query = (
            f"SELECT r.resource_type, r.resource_id, m.bundle FROM ({_LATEST_RESOURCES}) r"
            " JOIN messages m ON m.id = r.message_row_id"
            " WHERE r.resource_type = ? AND r.resource_id = ?"
        )
        with self._transaction(write=False) as session:
            row = session.one(query, (resource_type, resource_id, resource_type, resource_id))
        return None if row is None else _resource(row)

    def find_resources(self, search: ResourceSearch) -> tuple[int, list[StoredResource]]:
        """The number of latest versions matching every filter, and one page of them by id."""
        filters = ["r.resource_type = ?"]
        params: list[object] = [search.resource_type]
        if search.resource_id is not None:
            filters.append("r.resource_id = ?")
            params.append(search.resource_id)
        if search.patient is not None:
            filters.append("r.patient = ?")
            params.append(search.patient)
        for alternatives in search.tokens:
            filters.append(
                "(" + " OR ".join("r.tokens LIKE ? ESCAPE '!'" for _ in alternatives) + ")"
            )
            params.extend(f"% {_like_literal(token)} %" for token in alternatives)
        for operator, moment in search.moments:
            filters.append(f"r.moment != '' AND r.moment {operator} ?")
            params.append(moment)
        # the inner query narrows by type (and id) with the index; the outer keeps only the
        # latest version of each resource and filters it, so an old version never matches
        inner = [search.resource_type, search.resource_id or "", search.resource_id or ""]
        where = " AND ".join(filters)
        base = f"FROM ({_LATEST_RESOURCES_OF_TYPE}) r WHERE {where}"
        # The Bundles are read for the page's rows only, once it is ranked, filtered and cut:
        # carried through the ranking, every version's Bundle was read (a search took half as
        # long again).
        page = (
            f"SELECT r.resource_type, r.resource_id, r.message_row_id {base}"
            " ORDER BY r.resource_id LIMIT ? OFFSET ?"
        )
        with self._transaction(write=False) as session:
            counted = session.one(f"SELECT COUNT(*) {base}", (*inner, *params))
            rows = session.all(
                f"SELECT p.resource_type, p.resource_id, m.bundle FROM ({page}) p"
                " JOIN messages m ON m.id = p.message_row_id ORDER BY p.resource_id",
                (*inner, *params, search.count, search.offset),
            )
        total = int(counted[0]) if counted else 0
        return total, [_resource(row) for row in rows]

    # ----------------------------------------------------------------------------------------
    # Cases
    # ----------------------------------------------------------------------------------------

    def case_prior(
        self,
        lookup: Sequence[tuple[str, str, str]],
        owner_keys: Sequence[tuple[str, str]],
        *,
        exclude_row: int | None = None,
    ) -> StoredPrior:
        """The earlier messages of the cases ``lookup`` finds, in the order applied, and owners.

        ``exclude_row``: a message being processed again is not its own prior.
        """
        with self._transaction(write=False) as session:
            cases, _ = case_sql.current(session, lookup, ())
            row_ids, numbers = case_sql.prior_rows(session, [c for c, _ in cases], exclude_row)
            found = case_sql.owners(session, sorted({*owner_keys, *numbers}))
            rows = [
                session.one(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (row_id,))
                for row_id in row_ids
            ]
        messages = tuple(self._message(row) for row in rows if row is not None)
        return StoredPrior(messages, found, cases)

    def case_timeline(self, case_id: str) -> list[CaseEvent]:
        """Every version of one case, oldest first, with the message that brought it."""
        with self._transaction(write=False) as session:
            rows = session.all(case_sql.timeline_query(), (case_id,))
        to_time = self._backend.time_from_db
        return [
            CaseEvent(
                case_id=row[0],
                version=row[1],
                message_row_id=row[2],
                message_id=row[3],
                transport=Transport(row[4]),
                received_at=to_time(row[5]),
                sender=row[6],
                patient=row[7],
                report_id=row[8],
                category=row[9],
                official_result=row[10],
                status=row[11],
                changes=str(row[12]),
            )
            for row in rows
        ]

    def find_cases(self, *, number: str | None = None, message_id: str | None = None) -> list[str]:
        """Case ids holding a number (as sent, without its kind), or touched by a message."""
        if (number is None) == (message_id is None):
            raise ValueError("find cases by a number or by a message id")
        if number is not None:
            values = [f"{kind}:{number}" for kind in ("filler", "placer", "specimen")]
            query = case_sql.find_query("number")
            with self._transaction(write=False) as session:
                found = [row[0] for value in values for row in session.all(query, (value,))]
            return sorted(set(found))
        with self._transaction(write=False) as session:
            return [row[0] for row in session.all(case_sql.find_query("message"), (message_id,))]

    # ----------------------------------------------------------------------------------------
    # Outbox
    # ----------------------------------------------------------------------------------------

    def due(self, now: datetime, limit: int) -> list[OutboxItem]:
        """Pending items whose next attempt is due, oldest due first."""
        with self._transaction(write=False) as session:
            rows = session.all(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE status = ? AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at, id LIMIT ?",
                (OutboxStatus.PENDING.value, self._backend.time_to_db(utc(now)), limit),
            )
        return [self._outbox_item(row) for row in rows]

    def get_outbox_item(self, outbox_id: int) -> OutboxItem | None:
        with self._transaction(write=False) as session:
            row = session.one(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (outbox_id,))
        return None if row is None else self._outbox_item(row)

    def outbox_items_for(self, message_row_id: int) -> list[OutboxItem]:
        """Every outbox item of one stored message, oldest first (its forwarding state)."""
        with self._transaction(write=False) as session:
            rows = session.all(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE message_row_id = ? ORDER BY id",
                (message_row_id,),
            )
        return [self._outbox_item(row) for row in rows]

    def mark_sent(self, outbox_id: int, now: datetime) -> None:
        self._finish_attempt(outbox_id, now, status=OutboxStatus.SENT, sent_at=now)

    def mark_retry(
        self, outbox_id: int, now: datetime, next_attempt_at: datetime, error: str
    ) -> None:
        self._finish_attempt(
            outbox_id,
            now,
            status=OutboxStatus.PENDING,
            next_attempt_at=next_attempt_at,
            error=error,
        )

    def mark_dead(self, outbox_id: int, now: datetime, error: str) -> None:
        """Gives up on an item (after the forwarder's maximum attempts); it stays for review."""
        self._finish_attempt(outbox_id, now, status=OutboxStatus.DEAD, error=error)

    def _finish_attempt(
        self,
        outbox_id: int,
        now: datetime,
        *,
        status: OutboxStatus,
        sent_at: datetime | None = None,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
    ) -> None:
        to_db = self._backend.time_to_db
        assignments = ["status = ?", "attempts = attempts + 1", "last_attempt_at = ?"]
        params: list[object] = [status.value, to_db(utc(now))]
        if sent_at is not None:
            assignments.append("sent_at = ?")
            params.append(to_db(utc(sent_at)))
        if next_attempt_at is not None:
            assignments.append("next_attempt_at = ?")
            params.append(to_db(utc(next_attempt_at)))
        if error is not None:
            assignments.append("last_error = ?")
            params.append(error)
        with self._transaction(write=True) as session:
            changed = session.run(
                f"UPDATE outbox SET {', '.join(assignments)} WHERE id = ? AND status = ?",
                [*params, outbox_id, OutboxStatus.PENDING.value],
            )
        if changed == 0:
            raise LookupError(f"no pending outbox item {outbox_id}")

    def _outbox_item(self, row: Row) -> OutboxItem:
        to_time = self._backend.time_from_db
        return OutboxItem(
            outbox_id=row[0],
            message_row_id=row[1],
            bundle=bytes(row[2]),
            status=OutboxStatus(row[3]),
            attempts=row[4],
            created_at=to_time(row[5]),
            next_attempt_at=to_time(row[6]),
            last_attempt_at=None if row[7] is None else to_time(row[7]),
            last_error=row[8],
            sent_at=None if row[9] is None else to_time(row[9]),
        )


class _Session:
    """Statements inside one open transaction, with portable ``?`` placeholders."""

    def __init__(self, conn: Connection, backend: Backend) -> None:
        self.conn = conn
        self._backend = backend

    def run(self, query: str, params: Sequence[object] = ()) -> int:
        """Executes a statement; returns the number of rows it changed."""
        cursor = self.conn.execute(self._backend.sql(query), params)
        return int(cursor.rowcount)

    def insert(self, query: str, params: Sequence[object]) -> int:
        """Executes an ``INSERT ... RETURNING id``; returns the new row's id."""
        return int(self.conn.execute(self._backend.sql(query), params).fetchone()[0])

    def one(self, query: str, params: Sequence[object] = ()) -> Row | None:
        row: Row | None = self.conn.execute(self._backend.sql(query), params).fetchone()
        return row

    def all(self, query: str, params: Sequence[object] = ()) -> list[Row]:
        rows: list[Row] = self.conn.execute(self._backend.sql(query), params).fetchall()
        return rows


def _checks_first(group: Sequence[WriteRequest]) -> bool:
    """Whether every check of the group can run before its writes with the same answers.

    Checks read message rows and cases; of the writes, only a receive adds a message row and
    only a case write changes cases. So a group without a receive and with at most one case
    write (every group the service writes) is checked in full first.
    """
    cases = 0
    for request in group:
        if isinstance(request, ReceiveRequest):
            return len(group) == 1
        cases += isinstance(request, CaseWriteRequest)
    return cases <= 1


_CHUNK_ROWS = 64
"""Rows per multi-row statement at most."""


def _chunks(rows: Sequence[_T]) -> Iterator[Sequence[_T]]:
    """``rows`` in pieces of a power of two rows (at most ``_CHUNK_ROWS``), largest first.

    A statement's text depends on its number of rows; with these sizes a table needs at most
    seven texts, so the driver's cache of prepared statements keeps every one of them.
    """
    start, count = 0, len(rows)
    while start < count:
        size = min(_CHUNK_ROWS, 1 << ((count - start).bit_length() - 1))
        yield rows[start : start + size]
        start += size


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _value_rows(columns: int, count: int) -> str:
    return ", ".join([f"({_marks(columns)})"] * count)


def _resource(row: Row) -> StoredResource:
    return StoredResource(str(row[0]), str(row[1]), bytes(row[2]))


def _like_literal(text: str) -> str:
    """``text`` matched literally by LIKE ... ESCAPE '!'."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
