"""PostgreSQL backend (psycopg 3, synchronous): normal commits, times as ``timestamptz``.

Tables are created unqualified, in the first schema of the connection's ``search_path``, so a
deployment (or a test) can choose the schema with ``?options=-csearch_path%3Dname`` in the URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from adapter.store.base import Backend, Connection, os_cause

_SCHEMA_LOCK_KEY = 0x4E52_3241  # any constant shared by every adapter process: "HER2"

_SCHEMA_V1 = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE messages (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        transport TEXT NOT NULL,
        format TEXT NOT NULL,
        sender TEXT NOT NULL,
        message_id TEXT,
        content_hash TEXT NOT NULL,
        raw BYTEA NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        status TEXT NOT NULL
            CHECK (status IN ('received', 'processed', 'rejected', 'failed')),
        error_code TEXT,
        error_text TEXT,
        bundle BYTEA,
        ack BYTEA,
        processed_at TIMESTAMPTZ
    )""",
    "CREATE UNIQUE INDEX messages_version ON messages (sender, message_id, version)",
    "CREATE INDEX messages_content ON messages (sender, message_id, content_hash)",
    "CREATE INDEX messages_message_id ON messages (message_id)",
    "CREATE INDEX messages_status ON messages (status, id)",
    "CREATE INDEX messages_received_at ON messages (received_at)",
    """CREATE TABLE reports (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_row_id BIGINT NOT NULL REFERENCES messages (id),
        report_id TEXT NOT NULL,
        patient TEXT NOT NULL,
        category TEXT NOT NULL,
        status TEXT NOT NULL,
        bundle BYTEA NOT NULL,
        UNIQUE (message_row_id, report_id)
    )""",
    "CREATE INDEX reports_report_id ON reports (report_id)",
    "CREATE INDEX reports_patient ON reports (patient)",
    """CREATE TABLE outbox (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_row_id BIGINT NOT NULL REFERENCES messages (id),
        bundle BYTEA NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
        attempts INTEGER NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        next_attempt_at TIMESTAMPTZ NOT NULL,
        last_attempt_at TIMESTAMPTZ,
        last_error TEXT,
        sent_at TIMESTAMPTZ
    )""",
    "CREATE INDEX outbox_due ON outbox (status, next_attempt_at, id)",
)


_SQLSTATE_CAUSES = {
    "53100": "disk full",
    "53200": "out of memory",
    "53300": "too many connections",
    "25006": "read-only",
    "42501": "permission denied",
    "57P01": "shutting down",
    "57P02": "shutting down",
    "57P03": "starting up",
    "28000": "authentication failed",
    "28P01": "authentication failed",
    "3D000": "no such database",
}


# Version 2: the audit facts of each indexed report (adapter/audit/facts.py), in a narrow table
# of their own with the sender and time of the message, so that the audit reads neither the
# messages nor the reports (both wide rows). Reports indexed before get a row with facts NULL;
# `her2-adapter reprocess --status processed` fills them in.
_SCHEMA_V2 = (
    """CREATE TABLE report_facts (
        message_row_id BIGINT NOT NULL REFERENCES messages (id),
        report_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL,
        facts TEXT,
        PRIMARY KEY (message_row_id, report_id)
    )""",
    "CREATE INDEX report_facts_sender ON report_facts (sender)",
    "INSERT INTO report_facts (message_row_id, report_id, sender, received_at)"
    " SELECT r.message_row_id, r.report_id, m.sender, m.received_at"
    " FROM reports r JOIN messages m ON m.id = r.message_row_id",
)

# Version 4: cases (adapter/store/cases.py): numbers, first users of numbers, the timeline.
_SCHEMA_V4 = (
    # The number first: found by it alone too (case show --number), with no second index.
    """CREATE TABLE case_numbers (
        number TEXT NOT NULL,
        sender TEXT NOT NULL,
        patient TEXT NOT NULL,
        case_id TEXT NOT NULL,
        PRIMARY KEY (number, sender, patient, case_id)
    )""",
    "CREATE INDEX case_numbers_case ON case_numbers (case_id)",
    """CREATE TABLE case_owners (
        sender TEXT NOT NULL,
        number TEXT NOT NULL,
        patient TEXT NOT NULL,
        PRIMARY KEY (sender, number)
    )""",
    """CREATE TABLE case_events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        case_id TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        message_row_id BIGINT NOT NULL REFERENCES messages (id),
        sender TEXT NOT NULL,
        patient TEXT,
        report_id TEXT NOT NULL,
        category TEXT NOT NULL,
        official_result TEXT NOT NULL,
        status TEXT NOT NULL,
        changes TEXT NOT NULL,
        UNIQUE (case_id, version)
    )""",
    "CREATE INDEX case_events_message ON case_events (message_row_id)",
)


# Version 3: every emitted resource, for the FHIR facade's reads and searches (docs/http-api.md).
_SCHEMA_V3 = (
    """CREATE TABLE resources (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_row_id BIGINT NOT NULL REFERENCES messages (id),
        resource_type TEXT NOT NULL,
        resource_id TEXT NOT NULL,
        patient TEXT NOT NULL,
        tokens TEXT NOT NULL,
        moment TEXT NOT NULL,
        body BYTEA NOT NULL,
        UNIQUE (message_row_id, resource_type, resource_id)
    )""",
    "CREATE INDEX resources_id ON resources (resource_type, resource_id)",
    "CREATE INDEX resources_patient ON resources (resource_type, patient)",
)


# Version 5: each piece of content is stored once, in the message row (its raw bytes, its
# outcome's Bundle); the report and resource index read from that Bundle instead of a copy
# (see sqlite.py). The space of the dropped columns is reused by later writes (or VACUUM FULL).
_SCHEMA_V5 = (
    "ALTER TABLE resources DROP COLUMN body",
    "ALTER TABLE reports DROP COLUMN bundle",
)


# Version 6: the two indexes no query reads go, as on SQLite (see sqlite.py); messages without
# a control id keep a partial index of their content.
_SCHEMA_V6 = (
    "DROP INDEX resources_patient",
    "DROP INDEX messages_content",
    "CREATE INDEX messages_unidentified ON messages (sender, content_hash)"
    " WHERE message_id IS NULL",
)


class PostgresBackend(Backend):
    name: ClassVar[str] = "postgresql"
    driver_errors: ClassVar[tuple[type[BaseException], ...]] = (psycopg.Error, OSError)

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout

    def connect(self) -> Connection:
        options: dict[str, Any] = {}
        if "connect_timeout" not in conninfo_to_dict(self.url):
            # libpq counts whole seconds, and takes 1 as 2: never less than the caller asked.
            options["connect_timeout"] = max(2, round(self.timeout))
        conn = psycopg.connect(self.url, autocommit=False, **options)
        try:
            conn.execute("SET TIME ZONE 'UTC'")
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    def begin(self, conn: Connection, *, write: bool) -> None:
        """psycopg opens the transaction with the first statement."""

    def is_broken(self, conn: Connection, error: BaseException) -> bool:
        # A server that turned read-only (a primary demoted in a failover) keeps its sessions:
        # a new connection may reach the new primary.
        read_only = getattr(error, "sqlstate", None) == "25006"
        return bool(conn.closed or conn.broken or read_only)

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def time_to_db(self, moment: datetime) -> object:
        return moment

    def time_from_db(self, value: Any) -> datetime:
        moment: datetime = value.astimezone(UTC)
        return moment

    def has_table(self, conn: Connection, table: str) -> bool:
        found = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        return found is not None and found[0] is not None

    def cause_of(self, error: BaseException) -> str:
        if isinstance(error, OSError):
            return os_cause(error)
        state = str(getattr(error, "sqlstate", None) or "")
        if state in _SQLSTATE_CAUSES:
            return _SQLSTATE_CAUSES[state]
        if state.startswith("08") or (isinstance(error, psycopg.OperationalError) and not state):
            return "unreachable"  # connection exceptions, or no server answer at all
        return "database error"

    def lock_schema(self, conn: Connection) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))

    def check_room(self) -> None:
        """The server's disk cannot be seen from here: a full one fails the probe's write only
        when it fails PostgreSQL's own write-ahead log (docs/operations.md says so)."""

    def lock_cases(self, conn: Connection, keys: Sequence[str]) -> None:
        # Transaction-level advisory locks, one number per key within the store's schema
        # (advisory locks are the database's), taken in ascending order so that two batches
        # wait for each other and never deadlock. After the wait each statement sees what the
        # other transaction committed (READ COMMITTED): the case check is made against it.
        conn.execute(
            "SELECT pg_advisory_xact_lock(number) FROM (SELECT DISTINCT"
            " hashtextextended(current_schema() || chr(31) || key, 0) AS number"
            " FROM unnest(%s::text[]) AS key) AS numbers ORDER BY number",
            (list(keys),),
        )

    def migrations(self) -> Sequence[Sequence[str]]:
        return (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4, _SCHEMA_V5, _SCHEMA_V6)
