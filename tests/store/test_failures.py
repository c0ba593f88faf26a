"""Every database fault surfaces as StoreUnavailable, so the transport sends no ACK."""

from __future__ import annotations

import errno
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from adapter.errors import StoreUnavailable, TransientError
from adapter.store import MessageStatus, ReportIndexRow, Store, open_store
from adapter.store.postgres import PostgresBackend
from adapter.store.sqlite import SQLiteBackend

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def _receive(store: Store, message_id: str = "M1", raw: bytes = b"x") -> int:
    return store.receive(
        transport="mllp",
        message_format="hl7v2",
        sender="LAB^FAC",
        message_id=message_id,
        raw=raw,
        received_at=T0,
    ).row_id


class FaultyConnection:
    """A real connection (or none) that raises ``fault`` from every statement once armed."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.fault: BaseException | None = None
        self.closed = False
        self.broken = False

    def execute(self, *args: Any) -> Any:
        if self.fault is not None:
            raise self.fault
        return self.conn.execute(*args)

    def commit(self) -> None:
        if self.fault is not None:
            raise self.fault
        self.conn.commit()

    def rollback(self) -> None:
        if self.conn is not None:
            self.conn.rollback()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class FaultySQLite(SQLiteBackend):
    connection: FaultyConnection

    def connect(self) -> Any:
        self.connection = FaultyConnection(super().connect())
        return self.connection


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[tuple[Store, FaultyConnection]]:
    backend = FaultySQLite(str(tmp_path / "faulty.db"))
    with Store(backend) as store:
        yield store, backend.connection


SQLITE_FAULTS = [
    pytest.param(sqlite3.OperationalError("database or disk is full"), id="sqlite-disk-full"),
    pytest.param(sqlite3.OperationalError("database is locked"), id="sqlite-locked-too-long"),
    pytest.param(
        sqlite3.OperationalError("attempt to write a readonly database"), id="sqlite-readonly"
    ),
    pytest.param(sqlite3.OperationalError("disk I/O error"), id="sqlite-io-error"),
    pytest.param(sqlite3.DatabaseError("database disk image is malformed"), id="sqlite-corrupt"),
    pytest.param(sqlite3.IntegrityError("UNIQUE constraint failed"), id="sqlite-integrity"),
    pytest.param(sqlite3.InterfaceError("bad parameter"), id="sqlite-interface"),
    pytest.param(
        sqlite3.ProgrammingError("Cannot operate on a closed database."), id="sqlite-closed"
    ),
    pytest.param(OSError(errno.ENOSPC, "No space left on device"), id="os-no-space"),
]


@pytest.mark.parametrize("fault", SQLITE_FAULTS)
def test_each_sqlite_fault_is_mapped(
    faulty: tuple[Store, FaultyConnection], fault: BaseException
) -> None:
    """Each SQLite driver error becomes StoreUnavailable (a TransientError), cause kept."""
    store, connection = faulty
    connection.fault = fault
    with pytest.raises(StoreUnavailable, match="sqlite") as raised:
        _receive(store)
    assert isinstance(raised.value, TransientError)
    assert raised.value.code == "STORE-UNAVAILABLE"
    assert raised.value.__cause__ is fault


OPERATIONS: list[Any] = [
    pytest.param(lambda s, row: _receive(s, "other"), id="receive"),
    pytest.param(
        lambda s, row: s.record_outcome(row, "processed", processed_at=T0), id="record_outcome"
    ),
    pytest.param(
        lambda s, row: s.index_reports(row, [ReportIndexRow("R", "P", "c", "final")]),
        id="index_reports",
    ),
    pytest.param(lambda s, row: s.write_batch([[]]), id="write_batch"),
    pytest.param(lambda s, row: s.find_reports(patient="P"), id="find_reports"),
    pytest.param(lambda s, row: s.get_report("R"), id="get_report"),
    pytest.param(lambda s, row: s.get_message("M1"), id="get_message"),
    pytest.param(lambda s, row: s.get_message_row(row), id="get_message_row"),
    pytest.param(lambda s, row: s.message_versions("M1"), id="message_versions"),
    pytest.param(lambda s, row: list(s.iter_messages()), id="iter_messages"),
    pytest.param(lambda s, row: s.enqueue(row, b"b", now=T0), id="enqueue"),
    pytest.param(lambda s, row: s.due(T0, 10), id="due"),
    pytest.param(lambda s, row: s.get_outbox_item(1), id="get_outbox_item"),
    pytest.param(lambda s, row: s.mark_sent(1, T0), id="mark_sent"),
    pytest.param(lambda s, row: s.mark_retry(1, T0, T0, "e"), id="mark_retry"),
    pytest.param(lambda s, row: s.mark_dead(1, T0, "e"), id="mark_dead"),
    pytest.param(lambda s, row: s.counts(), id="counts"),
    pytest.param(lambda s, row: s.ping(), id="ping"),
]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_operation_maps_driver_errors(
    faulty: tuple[Store, FaultyConnection], operation: Callable[[Store, int], object]
) -> None:
    """No public operation lets a driver error escape, and the store works once it clears."""
    store, connection = faulty
    row_id = _receive(store)
    connection.fault = sqlite3.OperationalError("disk I/O error")
    with pytest.raises(StoreUnavailable):
        operation(store, row_id)
    connection.fault = None
    store.ping()


POSTGRES_FAULTS = [
    pytest.param(psycopg.OperationalError("connection refused"), id="pg-operational"),
    pytest.param(psycopg.InterfaceError("the connection is closed"), id="pg-interface"),
    pytest.param(psycopg.errors.AdminShutdown("terminating connection"), id="pg-admin-shutdown"),
    pytest.param(psycopg.errors.DiskFull("could not extend file"), id="pg-disk-full"),
    pytest.param(psycopg.errors.ReadOnlySqlTransaction("read-only"), id="pg-read-only"),
    pytest.param(psycopg.errors.LockNotAvailable("lock timeout"), id="pg-lock-timeout"),
    pytest.param(psycopg.errors.UniqueViolation("duplicate key"), id="pg-integrity"),
    pytest.param(OSError(errno.ECONNRESET, "Connection reset"), id="os-reset"),
]


class UnreachablePostgres(PostgresBackend):
    def __init__(self, fault: BaseException, *, at_connect: bool) -> None:
        super().__init__("postgresql://nobody@127.0.0.1:1/none")
        self.fault = fault
        self.at_connect = at_connect

    def connect(self) -> Any:
        if self.at_connect:
            raise self.fault
        connection = FaultyConnection(None)
        connection.fault = self.fault
        return connection


@pytest.mark.parametrize("at_connect", [True, False], ids=["connecting", "executing"])
@pytest.mark.parametrize("fault", POSTGRES_FAULTS)
def test_each_postgres_fault_is_mapped(fault: BaseException, at_connect: bool) -> None:
    """Each psycopg error, while connecting or executing, becomes StoreUnavailable."""
    with pytest.raises(StoreUnavailable, match="postgresql") as raised:
        Store(UnreachablePostgres(fault, at_connect=at_connect))
    assert raised.value.__cause__ is fault


def test_programming_errors_are_not_disguised(faulty: tuple[Store, FaultyConnection]) -> None:
    """A bug outside the driver (here a TypeError) propagates as itself, not as a store fault."""
    store, connection = faulty
    connection.fault = TypeError("bug")
    with pytest.raises(TypeError, match="bug"):
        store.ping()


# --------------------------------------------------------------------------------------------
# Real faults
# --------------------------------------------------------------------------------------------


def test_read_only_sqlite_file_refuses_writes_but_serves_reads(tmp_path: Path) -> None:
    """A read-only database opens for queries; a receive fails with StoreUnavailable."""
    path = tmp_path / "ro.db"
    with open_store(f"sqlite:///{path}") as writable:
        row_id = _receive(writable)
    with open_store(f"sqlite:///{path}?mode=ro") as read_only:
        assert read_only.get_message_row(row_id) is not None
        with pytest.raises(StoreUnavailable, match="readonly"):
            _receive(read_only, "M2")
    with open_store(f"sqlite:///{path}") as writable:
        assert writable.counts().messages[MessageStatus.RECEIVED] == 1


def test_sqlite_locked_too_long_fails_within_the_timeout(tmp_path: Path) -> None:
    """Another writer holding the lock past the busy timeout gives StoreUnavailable, then heals."""
    path = tmp_path / "locked.db"
    with open_store(f"sqlite:///{path}", timeout=0.2) as store:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="locked"):
                _receive(store)
            assert time.monotonic() - started < 2
            other.execute("ROLLBACK")
        finally:
            other.close()
        _receive(store)


class SmallDisk(SQLiteBackend):
    """Caps the database at its current size plus a few pages: SQLite's own "disk is full"."""

    def connect(self) -> Any:
        conn = super().connect()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 40}")
        return conn


def test_sqlite_disk_full_keeps_what_was_stored(tmp_path: Path) -> None:
    """A full disk fails the receive with StoreUnavailable and leaves earlier rows intact."""
    # the schema is made first, on a disk with room: the cap then leaves 20 pages for the rows
    open_store(f"sqlite:///{tmp_path / 'full.db'}").close()
    with Store(SmallDisk(str(tmp_path / "full.db"))) as store:
        kept = _receive(store, "small", b"small")
        with pytest.raises(StoreUnavailable, match="full"):
            _receive(store, "big", b"x" * 1_000_000)
        assert [m.row_id for m in store.iter_messages()] == [kept]


def test_the_write_probe_calls_a_nearly_full_disk_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The health probe's write needs no new space, so it asks how much is left: under
    MIN_FREE_BYTES it fails as a full disk, at MIN_FREE_BYTES it passes."""
    import adapter.store.sqlite as sqlite_backend

    free = {"bytes": sqlite_backend.MIN_FREE_BYTES - 1}
    monkeypatch.setattr(
        sqlite_backend.os,
        "statvfs",
        lambda _: SimpleNamespace(f_bavail=free["bytes"], f_frsize=1),
    )
    with open_store(f"sqlite:///{tmp_path / 'probe.db'}") as store:
        with pytest.raises(StoreUnavailable, match="1023 KiB free") as raised:
            store.probe_write()
        assert raised.value.cause == "disk full"
        _receive(store)  # a message is not held to the margin: only the health says it
        free["bytes"] += 1
        store.probe_write()


def test_missing_directory_is_store_unavailable(tmp_path: Path) -> None:
    """A database path that cannot be opened is a store fault at open time (the store's own
    directory is created when missing, not the directories above it)."""
    with pytest.raises(StoreUnavailable, match="No such file or directory") as raised:
        open_store(f"sqlite:///{tmp_path / 'absent' / 'deeper' / 'x.db'}")
    assert raised.value.cause == "no such file or directory"


def test_a_closed_store_is_unavailable(store: Store) -> None:
    """After close(), calls fail with StoreUnavailable rather than a driver error."""
    store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        _receive(store)
    with pytest.raises(StoreUnavailable, match="closed"):
        store.ping()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_postgres_with_nothing_listening_fails_fast() -> None:
    """Connection refused surfaces as StoreUnavailable in well under the connect timeout."""
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="postgresql"):
        open_store(f"postgresql://her2:her2@127.0.0.1:{_free_port()}/her2", timeout=2)
    assert time.monotonic() - started < 5


def test_postgres_connection_killed_is_unavailable_then_reconnects(postgres_url: str) -> None:
    """A dropped server connection fails one call; the next call reconnects and sees the data."""
    name = f"her2-test-{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in postgres_url else "?"
    with open_store(f"{postgres_url}{separator}application_name={name}") as store:
        row_id = _receive(store)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (name,),
            )
        with pytest.raises(StoreUnavailable, match="postgresql"):
            store.ping()
        assert store.get_message_row(row_id) is not None
