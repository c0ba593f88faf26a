"""SQLite backend: one file in WAL mode with ``synchronous=FULL``, so a commit is on disk.

Times are stored as fixed-width UTC text (``2024-05-01T09:30:00.000000Z``), which sorts like the
instants it names.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from adapter.store.base import Backend, Connection, os_cause

log = logging.getLogger("her2_adapter.store")

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

WAL_CHECKPOINT_PAGES = 1000
"""Pages of write-ahead log after which a commit checkpoints it into the database file."""

MIN_FREE_BYTES = 1024 * 1024
"""Free space under which /healthz calls the store's disk full: a message with its outcome
takes some 10-30 KB, and a WAL checkpoint needs room too, so the service says so before the
last message fails rather than after."""

_SCHEMA_V1 = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    # AUTOINCREMENT: row ids are never reused, so paging and outbox references stay valid.
    """CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        transport TEXT NOT NULL,
        format TEXT NOT NULL,
        sender TEXT NOT NULL,
        message_id TEXT,
        content_hash TEXT NOT NULL,
        raw BLOB NOT NULL,
        received_at TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        status TEXT NOT NULL
            CHECK (status IN ('received', 'processed', 'rejected', 'failed')),
        error_code TEXT,
        error_text TEXT,
        bundle BLOB,
        ack BLOB,
        processed_at TEXT
    )""",
    "CREATE UNIQUE INDEX messages_version ON messages (sender, message_id, version)",
    "CREATE INDEX messages_content ON messages (sender, message_id, content_hash)",
    "CREATE INDEX messages_message_id ON messages (message_id)",
    "CREATE INDEX messages_status ON messages (status, id)",
    "CREATE INDEX messages_received_at ON messages (received_at)",
    """CREATE TABLE reports (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_row_id INTEGER NOT NULL REFERENCES messages (id),
        report_id TEXT NOT NULL,
        patient TEXT NOT NULL,
        category TEXT NOT NULL,
        status TEXT NOT NULL,
        bundle BLOB NOT NULL,
        UNIQUE (message_row_id, report_id)
    )""",
    "CREATE INDEX reports_report_id ON reports (report_id)",
    "CREATE INDEX reports_patient ON reports (patient)",
    """CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_row_id INTEGER NOT NULL REFERENCES messages (id),
        bundle BLOB NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
        attempts INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        last_attempt_at TEXT,
        last_error TEXT,
        sent_at TEXT
    )""",
    "CREATE INDEX outbox_due ON outbox (status, next_attempt_at, id)",
)


def private_file(path: Path) -> None:
    """Create the store file 0600 (and its directory, if that alone is missing, 0700) before
    SQLite opens it.

    SQLite gives the -wal and -shm files the database file's mode, so all three stay readable by
    the service's user alone. An existing file is left as it is (its mode is the operator's
    decision), with one warning per process when other users may read it.
    """
    directory = path.parent
    if not directory.exists():
        directory.mkdir(mode=0o700)  # its own directory only: a mistyped path still fails
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077 and path not in _WARNED:
            _WARNED.add(path)
            log.warning("the store file is open to other users (mode %o): chmod 600 it", mode)


_WARNED: set[Path] = set()


_SQLITE_CAUSES = (
    ("SQLITE_READONLY", "read-only"),
    ("SQLITE_FULL", "disk full"),
    ("SQLITE_IOERR", "I/O error"),
    ("SQLITE_CANTOPEN", "cannot open the database file"),
    ("SQLITE_BUSY", "locked by another process"),
    ("SQLITE_LOCKED", "locked by another process"),
    ("SQLITE_CORRUPT", "corrupt database"),
    ("SQLITE_NOTADB", "not a database file"),
    ("SQLITE_PERM", "permission denied"),
)


# Version 2: the audit facts of each indexed report (adapter/audit/facts.py), in a narrow table
# of their own with the sender and time of the message, so that the audit reads neither the
# messages nor the reports (both wide rows). Reports indexed before get a row with facts NULL;
# `her2-adapter reprocess --status processed` fills them in.
_SCHEMA_V2 = (
    """CREATE TABLE report_facts (
        message_row_id INTEGER NOT NULL REFERENCES messages (id),
        report_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        received_at TEXT NOT NULL,
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
    # WITHOUT ROWID: the key is the table, one B-tree to write instead of two (the writer
    # inserts a few of these rows per message). The number first: found by it alone too.
    """CREATE TABLE case_numbers (
        number TEXT NOT NULL,
        sender TEXT NOT NULL,
        patient TEXT NOT NULL,
        case_id TEXT NOT NULL,
        PRIMARY KEY (number, sender, patient, case_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX case_numbers_case ON case_numbers (case_id)",
    """CREATE TABLE case_owners (
        sender TEXT NOT NULL,
        number TEXT NOT NULL,
        patient TEXT NOT NULL,
        PRIMARY KEY (sender, number)
    ) WITHOUT ROWID""",
    """CREATE TABLE case_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        case_id TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        message_row_id INTEGER NOT NULL REFERENCES messages (id),
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
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_row_id INTEGER NOT NULL REFERENCES messages (id),
        resource_type TEXT NOT NULL,
        resource_id TEXT NOT NULL,
        patient TEXT NOT NULL,
        tokens TEXT NOT NULL,
        moment TEXT NOT NULL,
        body BLOB NOT NULL,
        UNIQUE (message_row_id, resource_type, resource_id)
    )""",
    "CREATE INDEX resources_id ON resources (resource_type, resource_id)",
    "CREATE INDEX resources_patient ON resources (resource_type, patient)",
)


# Version 5: each piece of content is stored once, in the message row (its raw bytes, its
# outcome's Bundle). The report and resource index keep what they are found by and read the
# report or resource from that Bundle (adapter/service/fhir_index.py); they held copies before,
# about half of what each message wrote. Both tables are rebuilt without their copy and without
# AUTOINCREMENT (no one refers to their row ids). Reports are keyed by message and report
# (WITHOUT ROWID: one B-tree fewer); resources keep a row id, since a key of resource type and
# id puts each insert on a page of its own (measured slower). The file keeps its size until
# VACUUM.
_SCHEMA_V5 = (
    """CREATE TABLE resources_v5 (
        message_row_id INTEGER NOT NULL REFERENCES messages (id),
        resource_type TEXT NOT NULL,
        resource_id TEXT NOT NULL,
        patient TEXT NOT NULL,
        tokens TEXT NOT NULL,
        moment TEXT NOT NULL
    )""",
    "INSERT INTO resources_v5 (message_row_id, resource_type, resource_id, patient, tokens,"
    " moment) SELECT message_row_id, resource_type, resource_id, patient, tokens, moment"
    " FROM resources ORDER BY id",
    "DROP TABLE resources",
    "ALTER TABLE resources_v5 RENAME TO resources",
    "CREATE INDEX resources_message ON resources (message_row_id)",
    "CREATE INDEX resources_id ON resources (resource_type, resource_id)",
    "CREATE INDEX resources_patient ON resources (resource_type, patient)",
    """CREATE TABLE reports_v5 (
        message_row_id INTEGER NOT NULL REFERENCES messages (id),
        report_id TEXT NOT NULL,
        patient TEXT NOT NULL,
        category TEXT NOT NULL,
        status TEXT NOT NULL,
        PRIMARY KEY (message_row_id, report_id)
    ) WITHOUT ROWID""",
    "INSERT INTO reports_v5 (message_row_id, report_id, patient, category, status)"
    " SELECT message_row_id, report_id, patient, category, status FROM reports",
    "DROP TABLE reports",
    "ALTER TABLE reports_v5 RENAME TO reports",
    "CREATE INDEX reports_report_id ON reports (report_id)",
    "CREATE INDEX reports_patient ON reports (patient)",
)


# Version 6: two indexes that no query reads, each of which cost every message a page of the
# write-ahead log (and the checkpoint's write of it): ``resources_patient`` (the facade filters
# a resource's patient after ranking its versions by id, so the planner never takes it) and
# ``messages_content``, whose look-up (sender, control id, content hash) ``messages_version``
# serves, a message having few versions. Only messages without a control id still need their
# content indexed: a partial index holds those.
_SCHEMA_V6 = (
    "DROP INDEX resources_patient",
    "DROP INDEX messages_content",
    "CREATE INDEX messages_unidentified ON messages (sender, content_hash)"
    " WHERE message_id IS NULL",
)


class SQLiteBackend(Backend):
    name: ClassVar[str] = "sqlite"
    driver_errors: ClassVar[tuple[type[BaseException], ...]] = (sqlite3.Error, OSError)

    def __init__(self, path: str, *, query: str = "", timeout: float = 5.0) -> None:
        """``path`` is a file path or ``:memory:``; ``query`` holds SQLite URI parameters."""
        self.path = path
        self.query = query
        self.timeout = timeout

    def connect(self) -> Connection:
        if self.path == ":memory:":
            target = ":memory:"
        else:
            if "mode=ro" not in self.query:
                private_file(Path(self.path))
            target = f"file:{quote(self.path)}" + (f"?{self.query}" if self.query else "")
        # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE for writes).
        conn = sqlite3.connect(
            target,
            uri=True,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,  # the store's lock serialises use across threads
        )
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA temp_store = MEMORY")
            # SQLite's default, said out loud: a checkpoint every 4,000 pages wrote 13 % fewer
            # bytes and gave 8 senders 15 % more, but the commit that runs it holds an ACK for
            # the whole checkpoint: one connection's p99 went from 6-7 ms to 15 ms (docs/
            # performance.md, "The service's main process").
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        except BaseException:
            conn.close()
            raise
        return conn

    def begin(self, conn: Connection, *, write: bool) -> None:
        # IMMEDIATE takes the write lock up front: no deadlock upgrading a read lock later.
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def is_broken(self, conn: Connection, error: BaseException) -> bool:
        # After any error a file's connection is reopened: one opened while the file system was
        # read-only stays read-only for good, and reopening is cheap. Reopening an in-memory
        # database would lose it.
        return self.path != ":memory:"

    def cause_of(self, error: BaseException) -> str:
        if isinstance(error, OSError):
            return os_cause(error)
        name = str(getattr(error, "sqlite_errorname", ""))
        for prefix, cause in _SQLITE_CAUSES:
            if name.startswith(prefix):
                return cause
        return "database error"

    def check_room(self) -> None:
        if self.path == ":memory:":
            return
        stats = os.statvfs(Path(self.path).parent)
        free = stats.f_bavail * stats.f_frsize
        if free < MIN_FREE_BYTES:
            raise OSError(errno.ENOSPC, f"{free // 1024} KiB free on the store's file system")

    def sql(self, text: str) -> str:
        return text

    def time_to_db(self, moment: datetime) -> object:
        return moment.astimezone(UTC).strftime(_TIME_FORMAT)

    def time_from_db(self, value: Any) -> datetime:
        # fromisoformat reads _TIME_FORMAT's text ("Z" included) some 30 times faster than
        # strptime: the audit turns every stored report's time back into a datetime.
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def has_table(self, conn: Connection, table: str) -> bool:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        return found is not None

    def lock_schema(self, conn: Connection) -> None:
        """BEGIN IMMEDIATE already holds the database's single write lock."""

    def lock_cases(self, conn: Connection, keys: Sequence[str]) -> None:
        """BEGIN IMMEDIATE already holds the database's single write lock: writers of one file,
        in any process, take turns."""

    def migrations(self) -> Sequence[Sequence[str]]:
        return (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4, _SCHEMA_V5, _SCHEMA_V6)
