"""Durable storage of every message before it is acknowledged, and of what became of it.

``open_store(url)`` chooses the backend from the URL::

    sqlite:///./her2-adapter.db        relative path (WAL, synchronous=FULL)
    sqlite:////var/lib/her2/store.db   absolute path
    sqlite:///:memory:                 tests
    sqlite:///./x.db?mode=ro           SQLite URI parameters pass through (read-only here)
    postgresql://user:pass@host:5432/db

Every database fault surfaces as ``adapter.errors.StoreUnavailable``; the transports answer it
with no ACK (HTTP 503), so the sender retries and nothing is lost.
"""

from __future__ import annotations

from adapter.errors import ConfigError
from adapter.store.base import Backend, Store
from adapter.store.groupcommit import CommitStats, GroupCommitter
from adapter.store.records import (
    AuditRow,
    CaseConflict,
    CaseEvent,
    CaseEventRow,
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
)

__all__ = [
    "AuditRow",
    "Backend",
    "CaseConflict",
    "CaseEvent",
    "CaseEventRow",
    "CaseWriteRequest",
    "CommitStats",
    "EnqueueRequest",
    "GroupCommitter",
    "IndexReportsRequest",
    "MessageFormat",
    "MessageRow",
    "MessageStatus",
    "OutboxItem",
    "OutboxStatus",
    "OutcomeRequest",
    "Purged",
    "Receipt",
    "ReceiveRequest",
    "ReportIndexRow",
    "ResourceIndexRow",
    "ResourceSearch",
    "Store",
    "StoreCounts",
    "StoredPrior",
    "StoredReport",
    "StoredResource",
    "Transport",
    "UnprocessedRow",
    "WriteRequest",
    "WriteResult",
    "open_store",
]

_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def open_store(url: str, *, timeout: float = 5.0) -> Store:
    """Opens (creating or upgrading the schema) the store the URL names.

    ``timeout`` is in seconds: how long SQLite waits for a lock, or Postgres for a connection
    (unless the URL sets ``connect_timeout``). Raises StoreUnavailable if the database cannot
    be reached, ConfigError for a URL of another kind.
    """
    if url.startswith(_SQLITE_PREFIX):
        from adapter.store.sqlite import SQLiteBackend

        path, _, query = url.removeprefix(_SQLITE_PREFIX).partition("?")
        if not path:
            raise ConfigError("a sqlite store URL needs a path: sqlite:///./her2-adapter.db")
        return Store(SQLiteBackend(path, query=query, timeout=timeout))
    if url.startswith(_POSTGRES_PREFIXES):
        from adapter.store.postgres import PostgresBackend

        return Store(PostgresBackend(url, timeout=timeout))
    # Only the scheme: the URL may carry a password.
    scheme = url.partition(":")[0]
    raise ConfigError(f"unsupported store URL scheme {scheme!r}: use sqlite:/// or postgresql://")
