"""Group commit: concurrent callers share transactions, and nobody hears back before the commit."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapter.errors import StoreUnavailable
from adapter.store import (
    EnqueueRequest,
    GroupCommitter,
    IndexReportsRequest,
    MessageStatus,
    OutcomeRequest,
    Receipt,
    ReportIndexRow,
    Store,
    open_store,
)
from adapter.store.sqlite import SQLiteBackend

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


async def _receive(committer: GroupCommitter, message_id: str, raw: bytes | None = None) -> Receipt:
    return await committer.receive(
        transport="mllp",
        message_format="hl7v2",
        sender="LAB^FAC",
        message_id=message_id,
        raw=raw if raw is not None else message_id.encode(),
        received_at=T0,
    )


def test_concurrent_connections_share_commits_and_are_acked_only_when_committed(
    store: Store, store_url: str
) -> None:
    """8 connections x 25 messages: fewer commits than messages; each receipt already readable."""

    async def connection(committer: GroupCommitter, reader: Store, number: int) -> list[int]:
        row_ids = []
        for sequence in range(25):
            receipt = await _receive(committer, f"C{number}-{sequence}")
            # Another connection sees only committed rows: the ACK may go out now.
            assert reader.get_message_row(receipt.row_id) is not None
            row_ids.append(receipt.row_id)
        return row_ids

    async def main() -> tuple[list[list[int]], int]:
        with open_store(store_url) as reader:
            async with GroupCommitter(store) as committer:
                results = await asyncio.gather(
                    *(connection(committer, reader, n) for n in range(8))
                )
            return results, committer.stats.batches

    results, batches = asyncio.run(main())
    row_ids = [row_id for per_connection in results for row_id in per_connection]
    assert len(set(row_ids)) == 200
    assert batches < 200
    assert store.counts().messages[MessageStatus.RECEIVED] == 200


def test_identical_concurrent_messages_are_stored_once(store: Store) -> None:
    """Fifty copies arriving together give one stored row and forty-nine duplicates of it."""

    async def main() -> list[Receipt]:
        async with GroupCommitter(store) as committer:
            return await asyncio.gather(*(_receive(committer, "SAME") for _ in range(50)))

    receipts = asyncio.run(main())
    assert sum(not r.duplicate for r in receipts) == 1
    assert {r.row_id for r in receipts} == {receipts[0].row_id}
    assert len(list(store.iter_messages())) == 1


def test_max_batch_bounds_each_transaction(store: Store) -> None:
    """No transaction carries more than max_batch callers."""

    async def main() -> GroupCommitter:
        async with GroupCommitter(store, max_batch=4) as committer:
            await asyncio.gather(*(_receive(committer, f"M{i}") for i in range(10)))
        return committer

    stats = asyncio.run(main()).stats
    assert stats.largest_batch <= 4
    assert stats.batches >= 3
    assert stats.groups == 10


def test_a_lone_message_is_committed_without_waiting_for_company(store: Store) -> None:
    """One caller at a time: each message gets its own prompt commit, no timer in between."""

    async def main() -> GroupCommitter:
        async with GroupCommitter(store) as committer:
            for i in range(20):
                await _receive(committer, f"M{i}")
        return committer

    started = time.monotonic()
    committer = asyncio.run(main())
    assert committer.stats.batches == 20
    assert time.monotonic() - started < 2


def test_outcome_batched_with_receives(store: Store) -> None:
    """record_outcome goes through the same shared transactions as receives."""

    async def main() -> Receipt:
        async with GroupCommitter(store) as committer:
            first = await _receive(committer, "M1")
            await asyncio.gather(
                committer.record_outcome(
                    first.row_id, "processed", processed_at=T0, ack=b"MSA|AA", bundle=b"{}"
                ),
                _receive(committer, "M2"),
            )
            return await _receive(committer, "M1")

    again = asyncio.run(main())
    assert again.duplicate
    assert (again.status, again.ack) == (MessageStatus.PROCESSED, b"MSA|AA")


def _outcome(row_id: int) -> list[OutcomeRequest]:
    return [OutcomeRequest(row_id, MessageStatus.PROCESSED, T0, bundle=b"{}", ack=b"MSA|AA")]


def test_a_deferred_write_rides_in_the_next_waited_for_commit(store: Store) -> None:
    """A deferred outcome starts no commit of its own: it goes first in the next one."""

    async def main() -> tuple[Receipt, int]:
        async with GroupCommitter(store, defer_for=30) as committer:
            first = await _receive(committer, "M1")
            deferred = committer.submit(_outcome(first.row_id), defer=True)
            await asyncio.sleep(0.05)
            assert not deferred.done()  # nothing waited for it: no commit yet
            batches_before = committer.stats.batches
            resend = await _receive(committer, "M1")  # the engine resends the same message
            assert deferred.done()
            return resend, committer.stats.batches - batches_before

    resend, commits = asyncio.run(main())
    assert commits == 1
    assert resend.duplicate
    assert (resend.status, resend.ack) == (MessageStatus.PROCESSED, b"MSA|AA")


def test_a_deferred_write_alone_is_written_after_defer_for(store: Store) -> None:
    """With nothing else to ride with, a deferred write is committed after defer_for seconds."""

    async def main() -> tuple[int, float]:
        async with GroupCommitter(store, defer_for=0.05) as committer:
            first = await _receive(committer, "M1")
            started = time.monotonic()
            await committer.submit(_outcome(first.row_id), defer=True)
            return first.row_id, time.monotonic() - started

    row_id, waited = asyncio.run(main())
    assert 0.04 <= waited < 2
    row = store.get_message_row(row_id)
    assert row is not None
    assert row.status is MessageStatus.PROCESSED


def test_close_writes_deferred_writes(store: Store) -> None:
    """close() does not wait for defer_for, nor leave a deferred write behind."""

    async def main() -> int:
        committer = GroupCommitter(store, defer_for=30)
        first = await _receive(committer, "M1")
        committer.submit(_outcome(first.row_id), defer=True)
        await asyncio.wait_for(committer.close(), 5)
        return first.row_id

    row = store.get_message_row(asyncio.run(main()))
    assert row is not None
    assert row.status is MessageStatus.PROCESSED


def test_deferred_writes_respect_max_batch_and_are_all_written(store: Store) -> None:
    """Many deferred writes: no transaction over max_batch, none left behind, at close too."""
    sizes: list[int] = []

    class Recording:
        def write_batch(self, groups: Any) -> Any:
            sizes.append(len(groups))
            return store.write_batch(groups)

    async def main() -> list[int]:
        committer = GroupCommitter(Recording(), max_batch=4, defer_for=30)  # type: ignore[arg-type]
        rows = [(await _receive(committer, f"M{i}")).row_id for i in range(10)]
        for row_id in rows:
            committer.submit(_outcome(row_id), defer=True)
        await _receive(committer, "trigger")  # rides with some of them, the rest follow
        for row_id in rows[:5]:
            committer.submit(_outcome(row_id), defer=True)
        await asyncio.wait_for(committer.close(), 5)
        return rows

    rows = asyncio.run(main())
    assert max(sizes) <= 4
    assert sum(sizes) == 10 + 10 + 1 + 5
    for row_id in rows:
        row = store.get_message_row(row_id)
        assert row is not None
        assert row.status is MessageStatus.PROCESSED


def test_defer_for_must_not_be_negative(store: Store) -> None:
    """A negative deferral is a configuration error."""
    with pytest.raises(ValueError, match="defer_for"):
        GroupCommitter(store, defer_for=-1)


def test_a_request_naming_a_missing_row_fails_alone(store: Store) -> None:
    """A LookupError goes to its caller only; the others in the transaction are stored."""

    async def main() -> list[Any]:
        async with GroupCommitter(store) as committer:
            results = await asyncio.gather(
                _receive(committer, "M1"),
                committer.record_outcome(999, "processed", processed_at=T0),
                _receive(committer, "M2"),
                return_exceptions=True,
            )
        return list(results)

    first, missing, second = asyncio.run(main())
    assert isinstance(first, Receipt)
    assert isinstance(second, Receipt)
    assert isinstance(missing, LookupError)
    assert len(list(store.iter_messages())) == 2


def test_a_group_of_requests_is_atomic(store: Store) -> None:
    """Outcome, report index and outbox item of one message are written together or not at all."""
    row_id = store.receive(
        transport="mllp",
        message_format="hl7v2",
        sender="S",
        message_id="M1",
        raw=b"x",
        received_at=T0,
    ).row_id
    report = ReportIndexRow("R1", "P1", "breast", "final")

    async def main() -> tuple[Any, Any]:
        async with GroupCommitter(store) as committer:
            broken = await asyncio.gather(
                committer.write(
                    [
                        OutcomeRequest(row_id, MessageStatus.PROCESSED, T0, bundle=b"bundle"),
                        EnqueueRequest(404, b"bundle", T0),
                    ]
                ),
                return_exceptions=True,
            )
            whole = await committer.write(
                [
                    OutcomeRequest(row_id, MessageStatus.PROCESSED, T0, bundle=b"bundle"),
                    IndexReportsRequest(row_id, [report]),
                    EnqueueRequest(row_id, b"bundle", T0),
                ]
            )
            return broken[0], whole

    broken, whole = asyncio.run(main())
    assert isinstance(broken, LookupError)
    assert whole[:2] == [None, None]
    assert isinstance(whole[2], int)
    row = store.get_message_row(row_id)
    assert row is not None
    assert row.status is MessageStatus.PROCESSED
    assert [r.report_id for r in store.find_reports(patient="P1")] == ["R1"]
    assert [item.outbox_id for item in store.due(T0, 10)] == [whole[2]]


def test_close_writes_everything_already_queued(store: Store) -> None:
    """close() drains the queue; afterwards new writes are refused with StoreUnavailable."""

    async def main() -> tuple[list[Receipt], BaseException | None]:
        committer = GroupCommitter(store)
        pending = [asyncio.ensure_future(_receive(committer, f"M{i}")) for i in range(10)]
        await asyncio.sleep(0)  # let every caller queue its request
        await committer.close()
        assert all(task.done() for task in pending)
        try:
            await _receive(committer, "late")
        except StoreUnavailable as refused:
            return [task.result() for task in pending], refused
        return [task.result() for task in pending], None

    receipts, refused = asyncio.run(main())
    assert len({r.row_id for r in receipts}) == 10
    assert isinstance(refused, StoreUnavailable)


# --------------------------------------------------------------------------------------------
# Commit timing and failure, with a connection the test controls
# --------------------------------------------------------------------------------------------


class ControlledConnection:
    """A real SQLite connection whose commit can be held at a gate or made to fail."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.gate: threading.Event | None = None
        self.at_gate = threading.Event()
        self.commit_fault: BaseException | None = None

    def execute(self, *args: Any) -> Any:
        return self.conn.execute(*args)

    def commit(self) -> None:
        if self.gate is not None:
            self.at_gate.set()
            self.gate.wait(timeout=10)
        if self.commit_fault is not None:
            raise self.commit_fault
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        self.conn.close()


class ControlledSQLite(SQLiteBackend):
    connection: ControlledConnection

    def connect(self) -> Any:
        self.connection = ControlledConnection(super().connect())
        return self.connection


@pytest.fixture
def controlled(tmp_path: Path) -> Iterator[tuple[Store, ControlledConnection, Path]]:
    path = tmp_path / "controlled.db"
    backend = ControlledSQLite(str(path))
    with Store(backend) as store:
        yield store, backend.connection, path


def _committed_rows(path: Path) -> int:
    with sqlite3.connect(path) as reader:
        count: int = reader.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    return count


def test_no_caller_resolves_before_the_commit_returns(
    controlled: tuple[Store, ControlledConnection, Path],
) -> None:
    """While the commit is held, every row is inserted but no caller's future is done."""
    store, connection, path = controlled
    connection.gate = threading.Event()

    async def main() -> list[Receipt]:
        async with GroupCommitter(store) as committer:
            tasks = [asyncio.ensure_future(_receive(committer, f"M{i}")) for i in range(5)]
            assert await asyncio.to_thread(connection.at_gate.wait, 10)
            await asyncio.sleep(0.05)  # would let any early resolution reach the tasks
            assert not any(task.done() for task in tasks)
            assert _committed_rows(path) == 0
            assert connection.gate is not None
            connection.gate.set()
            return await asyncio.gather(*tasks)

    receipts = asyncio.run(main())
    assert len({r.row_id for r in receipts}) == 5
    assert _committed_rows(path) == 5


def test_a_failed_commit_fails_every_caller_and_stores_nothing(
    controlled: tuple[Store, ControlledConnection, Path],
) -> None:
    """Each caller of the failed transaction gets its own StoreUnavailable; none is stored."""
    store, connection, path = controlled
    connection.commit_fault = sqlite3.OperationalError("database or disk is full")

    async def main() -> tuple[list[BaseException | Receipt], Receipt]:
        async with GroupCommitter(store) as committer:
            failed = await asyncio.gather(
                *(_receive(committer, f"M{i}") for i in range(6)), return_exceptions=True
            )
            connection.commit_fault = None
            retried = await _receive(committer, "M0")
        return failed, retried

    failed, retried = asyncio.run(main())
    assert all(isinstance(result, StoreUnavailable) for result in failed)
    assert len({id(result) for result in failed}) == 6
    assert not retried.duplicate
    assert _committed_rows(path) == 1
