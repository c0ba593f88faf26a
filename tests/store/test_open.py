"""Opening a store: URLs, SQLite durability settings, the versioned schema."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapter.errors import ConfigError
from adapter.store import MessageStatus, Store, open_store
from adapter.store.sqlite import SQLiteBackend

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def _store_one(store: Store) -> int:
    return store.receive(
        transport="replay",
        message_format="hl7v2",
        sender="S",
        message_id="M",
        raw=b"x",
        received_at=T0,
    ).row_id


def test_relative_sqlite_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:///./name.db creates the file in the current directory."""
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///./her2-adapter.db") as store:
        _store_one(store)
    assert (tmp_path / "her2-adapter.db").is_file()


def test_absolute_sqlite_url(tmp_path: Path) -> None:
    """sqlite:////abs/path.db uses the absolute path."""
    path = tmp_path / "nested dir" / "store.db"
    path.parent.mkdir()
    with open_store(f"sqlite:///{path}") as store:
        _store_one(store)
    assert path.is_file()


def test_in_memory_sqlite_store_works_and_is_private() -> None:
    """sqlite:///:memory: is a working store whose data belongs to that store object only."""
    with open_store("sqlite:///:memory:") as store:
        row_id = _store_one(store)
        assert store.get_message_row(row_id) is not None
    with open_store("sqlite:///:memory:") as other:
        assert other.get_message_row(row_id) is None


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("mysql://root:s3cret@db/her2", id="other-database"),
        pytest.param("sqlite://relative.db", id="sqlite-two-slashes"),
        pytest.param("/var/lib/her2.db", id="bare-path"),
    ],
)
def test_unsupported_urls_are_config_errors_without_the_password(url: str) -> None:
    """A URL of another kind is a configuration error that does not echo credentials."""
    with pytest.raises(ConfigError, match="unsupported store URL") as raised:
        open_store(url)
    assert "s3cret" not in str(raised.value)


def test_sqlite_url_without_path_is_a_config_error() -> None:
    """sqlite:/// alone names no database."""
    with pytest.raises(ConfigError, match="needs a path"):
        open_store("sqlite:///")


def test_sqlite_connections_use_wal_and_full_sync(tmp_path: Path) -> None:
    """Commits are durable: WAL journal, synchronous=FULL, foreign keys on, busy timeout set."""
    conn = SQLiteBackend(str(tmp_path / "s.db"), timeout=2.5).connect()
    try:
        pragmas = {
            name: conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    finally:
        conn.close()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "busy_timeout": 2500,
    }


def test_schema_is_created_once_and_versioned(tmp_path: Path) -> None:
    """Opening again keeps the data and the single schema_version row."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    with open_store(url) as store:
        row_id = _store_one(store)
    with open_store(url) as store:
        assert store.get_message_row(row_id) is not None
    with sqlite3.connect(tmp_path / "s.db") as raw:
        assert raw.execute("SELECT version FROM schema_version").fetchall() == [(6,)]


def test_schema_is_created_once_and_versioned_on_every_backend(store_url: str) -> None:
    """Opening the same database twice is harmless on every backend."""
    with open_store(store_url) as first:
        row_id = _store_one(first)
    with open_store(store_url) as second:
        assert second.get_message_row(row_id) is not None
        assert second.counts().messages[MessageStatus.RECEIVED] == 1


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """An adapter never writes into a schema from a newer release it does not understand."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    open_store(url).close()
    with sqlite3.connect(tmp_path / "s.db") as raw:
        raw.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(ConfigError, match="schema version 99"):
        open_store(url)


def test_ping_answers_on_a_working_store(store: Store) -> None:
    """ping() returns quietly when the database answers."""
    store.ping()
