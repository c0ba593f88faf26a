"""The forwarding outbox: due items, retries with back-off, sent and dead items."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from adapter.store import OutboxStatus, Receipt, Store, open_store

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
Receive = Callable[..., Receipt]


def test_enqueued_bundle_is_due_at_once(store: Store, receive: Receive) -> None:
    """A new item is pending, due from the moment it was queued, never attempted."""
    message = receive("M1", b"x")
    outbox_id = store.enqueue(message.row_id, b"bundle", now=T0)
    (item,) = store.due(T0, limit=10)
    assert (item.outbox_id, item.message_row_id, item.bundle) == (
        outbox_id,
        message.row_id,
        b"bundle",
    )
    assert (item.status, item.attempts, item.created_at) == (OutboxStatus.PENDING, 0, T0)
    assert store.due(T0 - timedelta(microseconds=1), limit=10) == []


def test_retry_waits_until_next_attempt(store: Store, receive: Receive) -> None:
    """A retried item is not due before its next attempt time, and remembers the error."""
    outbox_id = store.enqueue(receive("M1", b"x").row_id, b"b", now=T0)
    store.mark_retry(outbox_id, T0, T0 + timedelta(minutes=1), "HTTP 503")
    assert store.due(T0 + timedelta(seconds=59), limit=10) == []
    (item,) = store.due(T0 + timedelta(minutes=1), limit=10)
    assert (item.attempts, item.last_error, item.last_attempt_at) == (1, "HTTP 503", T0)


def test_sent_and_dead_items_are_no_longer_due(store: Store, receive: Receive) -> None:
    """Sent and dead items leave the queue but stay as rows, counted by status."""
    message = receive("M1", b"x").row_id
    sent = store.enqueue(message, b"a", now=T0)
    dead = store.enqueue(message, b"b", now=T0)
    pending = store.enqueue(message, b"c", now=T0)
    store.mark_sent(sent, T0 + timedelta(seconds=1))
    store.mark_dead(dead, T0 + timedelta(seconds=2), "HTTP 400 after 10 attempts")
    assert [i.outbox_id for i in store.due(T0 + timedelta(days=1), limit=10)] == [pending]
    sent_item = store.get_outbox_item(sent)
    dead_item = store.get_outbox_item(dead)
    assert sent_item is not None
    assert dead_item is not None
    assert (sent_item.status, sent_item.sent_at, sent_item.attempts) == (
        OutboxStatus.SENT,
        T0 + timedelta(seconds=1),
        1,
    )
    assert (dead_item.status, dead_item.last_error) == (
        OutboxStatus.DEAD,
        "HTTP 400 after 10 attempts",
    )
    assert store.counts().outbox == {
        OutboxStatus.PENDING: 1,
        OutboxStatus.SENT: 1,
        OutboxStatus.DEAD: 1,
    }


def test_due_is_oldest_first_and_limited(store: Store, receive: Receive) -> None:
    """Items come oldest due first, no more than the limit."""
    message = receive("M1", b"x").row_id
    late = store.enqueue(message, b"late", now=T0 + timedelta(minutes=2))
    early = store.enqueue(message, b"early", now=T0)
    middle = store.enqueue(message, b"middle", now=T0 + timedelta(minutes=1))
    now = T0 + timedelta(hours=1)
    assert [i.outbox_id for i in store.due(now, limit=2)] == [early, middle]
    assert [i.outbox_id for i in store.due(now, limit=10)] == [early, middle, late]


FINISHES = [
    pytest.param(lambda store, item: store.mark_sent(item, T0), id="mark-sent"),
    pytest.param(lambda store, item: store.mark_retry(item, T0, T0, "e"), id="mark-retry"),
    pytest.param(lambda store, item: store.mark_dead(item, T0, "e"), id="mark-dead"),
]


@pytest.mark.parametrize("finish", FINISHES)
def test_only_pending_items_can_be_finished(
    store: Store, receive: Receive, finish: Callable[[Store, int], None]
) -> None:
    """Marking an unknown or already sent item raises LookupError and changes nothing."""
    outbox_id = store.enqueue(receive("M1", b"x").row_id, b"b", now=T0)
    store.mark_sent(outbox_id, T0)
    for target in (outbox_id, 999):
        with pytest.raises(LookupError, match=str(target)):
            finish(store, target)
    item = store.get_outbox_item(outbox_id)
    assert item is not None
    assert (item.status, item.attempts) == (OutboxStatus.SENT, 1)


def test_enqueue_for_a_missing_message_raises(store: Store) -> None:
    """Outbox items always belong to a stored message."""
    with pytest.raises(LookupError):
        store.enqueue(7, b"b", now=T0)


def test_outbox_survives_a_restart(store_url: str) -> None:
    """Pending items are plain rows: a new store object sees them due."""
    with open_store(store_url) as first:
        message = first.receive(
            transport="mllp",
            message_format="hl7v2",
            sender="S",
            message_id="M",
            raw=b"x",
            received_at=T0,
        )
        outbox_id = first.enqueue(message.row_id, b"bundle", now=T0)
        first.mark_retry(outbox_id, T0, T0 + timedelta(minutes=5), "timeout")
    with open_store(store_url) as second:
        (item,) = second.due(T0 + timedelta(minutes=5), limit=1)
    assert (item.outbox_id, item.attempts, item.bundle) == (outbox_id, 1, b"bundle")
