"""Retention: ``Store.purge`` deletes what nothing needs any more, keeps what still is, and
store files are private to the service's user."""

from __future__ import annotations

import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapter.store import MessageStatus, Receipt, ReportIndexRow, Store, open_store

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)  # the ``receive`` fixture's default time
Receive = Callable[..., Receipt]


def _finish(store: Store, row_id: int, status: MessageStatus) -> None:
    code = None if status is MessageStatus.PROCESSED else "NO-HER2-RESULT"
    store.record_outcome(row_id, status, processed_at=T0, bundle=b"{}", error_code=code)


def test_purge_deletes_old_finished_messages_and_keeps_the_rest(
    store: Store, receive: Receive
) -> None:
    old, recent = T0, T0 + timedelta(days=40)
    processed = receive("OLD-1", b"raw-1", at=old).row_id
    _finish(store, processed, MessageStatus.PROCESSED)
    store.index_reports(processed, [ReportIndexRow("r1", "Patient/p", "HER2-low", "final")])
    sent = store.enqueue(processed, b"{}", now=old)
    store.mark_sent(sent, old)
    rejected = receive("OLD-2", b"raw-2", at=old).row_id
    _finish(store, rejected, MessageStatus.REJECTED)
    unfinished = receive("OLD-3", b"raw-3", at=old).row_id  # still received
    failed = receive("OLD-4", b"raw-4", at=old).row_id
    _finish(store, failed, MessageStatus.FAILED)
    forwarding = receive("OLD-5", b"raw-5", at=old).row_id
    _finish(store, forwarding, MessageStatus.PROCESSED)
    store.enqueue(forwarding, b"{}", now=old)  # pending
    young = receive("NEW-1", b"raw-6", at=recent).row_id
    _finish(store, young, MessageStatus.PROCESSED)

    purged = store.purge(T0 + timedelta(days=30), batch=1)

    assert (purged.messages, purged.kept_unfinished, purged.kept_forwarding) == (2, 2, 1)
    assert store.get_message_row(processed) is None
    assert store.get_message_row(rejected) is None
    assert store.get_report("r1") is None
    assert store.get_outbox_item(sent) is None
    for kept in (unfinished, failed, forwarding, young):
        assert store.get_message_row(kept) is not None
    assert store.purge(T0 + timedelta(days=30)).messages == 0  # nothing left to purge


def test_a_new_sqlite_store_is_private(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    with open_store(f"sqlite:///{directory / 'store.db'}") as store:
        store.probe_write()
        files = list(directory.iterdir())
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in files}
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert modes["store.db"] == 0o600
    assert all(mode == 0o600 for mode in modes.values()), modes  # -wal and -shm too


def test_an_existing_store_open_to_others_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "shared.db"
    open_store(f"sqlite:///{path}").close()
    path.chmod(0o644)
    open_store(f"sqlite:///{path}").close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the operator's choice stands
    assert "open to other users (mode 644)" in caplog.text
