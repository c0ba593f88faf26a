"""Messages: durable receipt, idempotency, versions, outcomes, lookups and streaming."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapter.store import MessageFormat, MessageStatus, Receipt, Store, Transport, open_store

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)  # the ``receive`` fixture's default time
Receive = Callable[..., Receipt]


def test_receive_stores_every_field(store: Store, receive: Receive) -> None:
    """A new message is stored as received, version 1, with the sha256 of its bytes."""
    receipt = receive("M1", b"MSH|raw", transport="http", message_format="fhir")
    assert (receipt.duplicate, receipt.version, receipt.supersedes) == (False, 1, None)
    assert receipt.status is MessageStatus.RECEIVED
    row = store.get_message_row(receipt.row_id)
    assert row is not None
    assert row.transport is Transport.HTTP
    assert row.message_format is MessageFormat.FHIR
    assert (row.sender, row.message_id, row.raw) == ("LAB^FAC", "M1", b"MSH|raw")
    assert row.content_hash == hashlib.sha256(b"MSH|raw").hexdigest()
    assert row.received_at == T0
    assert row.status is MessageStatus.RECEIVED
    assert (row.error_code, row.bundle, row.ack, row.processed_at) == (None, None, None, None)


def test_same_message_again_is_a_duplicate_with_its_stored_outcome(
    store: Store, receive: Receive
) -> None:
    """A retransmission returns the stored row and its ACK instead of inserting again."""
    first = receive("M1", b"same bytes")
    store.record_outcome(
        first.row_id, "rejected", processed_at=T0, error_code="HL7-MALFORMED", ack=b"MSA|AR|M1"
    )
    again = receive("M1", b"same bytes", at=T0 + timedelta(minutes=5))
    assert again.duplicate
    assert again.row_id == first.row_id
    assert again.status is MessageStatus.REJECTED
    assert (again.error_code, again.ack) == ("HL7-MALFORMED", b"MSA|AR|M1")
    assert [m.row_id for m in store.iter_messages()] == [first.row_id]


def test_new_content_under_the_same_control_id_is_a_new_version(
    store: Store, receive: Receive
) -> None:
    """A correction (same sender and control id, other bytes) is stored as version 2."""
    first = receive("M1", b"original")
    correction = receive("M1", b"corrected", at=T0 + timedelta(hours=1))
    assert not correction.duplicate
    assert correction.is_correction
    assert (correction.version, correction.supersedes) == (2, first.row_id)
    latest = store.get_message("M1", "LAB^FAC")
    assert latest is not None
    assert (latest.row_id, latest.raw) == (correction.row_id, b"corrected")
    assert [v.version for v in store.message_versions("M1", "LAB^FAC")] == [1, 2]


def test_same_control_id_from_another_sender_is_another_message(
    store: Store, receive: Receive
) -> None:
    """Control ids are only unique per sender."""
    first = receive("M1", b"x", sender="LAB^A")
    other = receive("M1", b"x", sender="LAB^B")
    assert not other.duplicate
    assert other.row_id != first.row_id
    assert other.version == 1
    a_message = store.get_message("M1", "LAB^A")
    assert a_message is not None
    assert a_message.row_id == first.row_id


def test_unreadable_control_id_is_deduplicated_by_content(store: Store, receive: Receive) -> None:
    """Without a control id the same bytes are a duplicate; other bytes are a new message, v1."""
    first = receive(None, b"garbage")
    assert receive(None, b"garbage").duplicate
    other = receive(None, b"other garbage")
    assert (other.duplicate, other.version, other.supersedes) == (False, 1, None)
    assert other.row_id != first.row_id


def test_resending_an_older_version_is_a_duplicate_of_it(store: Store, receive: Receive) -> None:
    """After a correction, the old bytes again are recognised as the old version, not a third."""
    first = receive("M1", b"v1")
    receive("M1", b"v2")
    again = receive("M1", b"v1")
    assert again.duplicate
    assert (again.row_id, again.version) == (first.row_id, 1)


def test_record_outcome_keeps_bundle_ack_and_error(store: Store, receive: Receive) -> None:
    """The outcome replaces the received state; reprocessing may overwrite it."""
    receipt = receive("M1", b"x")
    store.record_outcome(
        receipt.row_id,
        MessageStatus.FAILED,
        processed_at=T0 + timedelta(seconds=1),
        error_code="OUTPUT-INVALID",
        error_text="Bundle.entry[0] invalid",
        ack=b"MSA|AE",
    )
    failed = store.get_message_row(receipt.row_id)
    assert failed is not None
    assert failed.status is MessageStatus.FAILED
    assert (failed.error_code, failed.error_text) == ("OUTPUT-INVALID", "Bundle.entry[0] invalid")
    assert failed.processed_at == T0 + timedelta(seconds=1)

    store.record_outcome(
        receipt.row_id,
        "processed",
        processed_at=T0 + timedelta(days=1),
        bundle=b'{"resourceType":"Bundle"}',
        ack=b"MSA|AA",
    )
    processed = store.get_message_row(receipt.row_id)
    assert processed is not None
    assert processed.status is MessageStatus.PROCESSED
    assert (processed.error_code, processed.error_text) == (None, None)
    assert (processed.bundle, processed.ack) == (b'{"resourceType":"Bundle"}', b"MSA|AA")


@pytest.mark.parametrize(
    ("status", "error_code"),
    [
        pytest.param("received", None, id="outcome-cannot-be-received"),
        pytest.param("rejected", None, id="rejected-needs-error-code"),
        pytest.param("failed", "", id="failed-needs-error-code"),
        pytest.param("finished", None, id="unknown-status"),
    ],
)
def test_record_outcome_refuses_an_outcome_without_its_error(
    store: Store, receive: Receive, status: str, error_code: str | None
) -> None:
    """Failures always keep their error code; the row is left as it was."""
    receipt = receive("M1", b"x")
    with pytest.raises(ValueError, match=r"error code|outcome|is not a valid"):
        store.record_outcome(receipt.row_id, status, processed_at=T0, error_code=error_code)
    row = store.get_message_row(receipt.row_id)
    assert row is not None
    assert row.status is MessageStatus.RECEIVED


def test_record_outcome_for_a_missing_row_raises_lookup_error(store: Store) -> None:
    """An outcome for a row that does not exist is a caller bug, reported as LookupError."""
    with pytest.raises(LookupError, match="999"):
        store.record_outcome(999, "processed", processed_at=T0)


def test_naive_times_are_refused(store: Store) -> None:
    """A time without a zone would be a guess."""
    with pytest.raises(ValueError, match="timezone-aware"):
        store.receive(
            transport="mllp",
            message_format="hl7v2",
            sender="LAB^FAC",
            message_id="M1",
            raw=b"x",
            received_at=T0.replace(tzinfo=None),
        )


def test_times_in_other_zones_come_back_as_the_same_instant_in_utc(
    store: Store, receive: Receive
) -> None:
    """received_at is stored as an instant and read back in UTC."""
    local = T0.astimezone(timezone(timedelta(hours=2)))
    row = store.get_message_row(receive("M1", b"x", at=local).row_id)
    assert row is not None
    assert row.received_at == T0
    assert row.received_at.utcoffset() == timedelta(0)


def test_get_message_without_sender_returns_latest_received(store: Store, receive: Receive) -> None:
    """Across senders, the most recently received message with that control id wins."""
    receive("M1", b"a", sender="LAB^A", at=T0)
    later = receive("M1", b"b", sender="LAB^B", at=T0 + timedelta(minutes=1))
    latest = store.get_message("M1")
    assert latest is not None
    assert latest.row_id == later.row_id
    assert store.get_message("absent") is None
    assert store.message_versions("absent") == []


def _iteration_fixture(receive: Receive, store: Store) -> dict[str, int]:
    rows = {
        "a1": receive("A1", b"1", sender="LAB^A", at=T0),
        "b1": receive("B1", b"2", sender="LAB^B", at=T0 + timedelta(hours=1)),
        "a2": receive("A2", b"3", sender="LAB^A", at=T0 + timedelta(hours=2)),
        "b2": receive("B2", b"4", sender="LAB^B", at=T0 + timedelta(hours=3)),
        "a3": receive("A3", b"5", sender="LAB^A", at=T0 + timedelta(hours=4)),
    }
    store.record_outcome(rows["b1"].row_id, "processed", processed_at=T0)
    store.record_outcome(rows["a3"].row_id, "failed", processed_at=T0, error_code="X")
    return {name: receipt.row_id for name, receipt in rows.items()}


ITERATION_FILTERS = [
    pytest.param({}, ["a1", "b1", "a2", "b2", "a3"], id="all-in-received-order"),
    pytest.param({"status": "received"}, ["a1", "a2", "b2"], id="status"),
    pytest.param({"status": MessageStatus.FAILED}, ["a3"], id="status-enum"),
    pytest.param({"sender": "LAB^B"}, ["b1", "b2"], id="sender"),
    pytest.param({"since": T0 + timedelta(hours=2)}, ["a2", "b2", "a3"], id="since-inclusive"),
    pytest.param({"until": T0 + timedelta(hours=2)}, ["a1", "b1"], id="until-exclusive"),
    pytest.param(
        {"since": T0 + timedelta(hours=1), "until": T0 + timedelta(hours=4), "sender": "LAB^A"},
        ["a2"],
        id="window-and-sender",
    ),
]


@pytest.mark.parametrize(("filters", "expected"), ITERATION_FILTERS)
@pytest.mark.parametrize("page_size", [1, 2, 200])
def test_iter_messages_filters_across_pages(
    store: Store, receive: Receive, filters: dict[str, object], expected: list[str], page_size: int
) -> None:
    """Filters combine; results are the same whatever the page size."""
    ids = _iteration_fixture(receive, store)
    found = [m.row_id for m in store.iter_messages(page_size=page_size, **filters)]  # type: ignore[arg-type]  # keywords come from the table
    assert found == [ids[name] for name in expected]


def test_iter_messages_holds_no_transaction_between_pages(store: Store, receive: Receive) -> None:
    """Writes may happen while a replay iterates; rows added behind the cursor are reached."""
    receive("M1", b"1")
    receive("M2", b"2")
    messages = store.iter_messages(page_size=1)
    assert next(messages).message_id == "M1"
    receive("M3", b"3")
    assert [m.message_id for m in messages] == ["M2", "M3"]


def test_counts_by_status_include_zeros(store: Store, receive: Receive) -> None:
    """Every status is counted, zeros included, for metrics."""
    receive("M1", b"1")
    second = receive("M2", b"2")
    store.record_outcome(second.row_id, "rejected", processed_at=T0, error_code="HL7-MALFORMED")
    counts = store.counts()
    assert counts.messages == {
        MessageStatus.RECEIVED: 1,
        MessageStatus.PROCESSED: 0,
        MessageStatus.REJECTED: 1,
        MessageStatus.FAILED: 0,
    }
    assert set(counts.outbox.values()) == {0}


def test_everything_is_there_after_reopening(store_url: str) -> None:
    """Committed writes survive closing the store and opening it again from the URL."""
    with open_store(store_url) as writer:
        receipt = writer.receive(
            transport="cli",
            message_format="unknown",
            sender="S",
            message_id=None,
            raw=b"\x00\xffbytes",
            received_at=T0,
        )
        writer.record_outcome(receipt.row_id, "rejected", processed_at=T0, error_code="ENCODING")
    with open_store(store_url) as reader:
        row = reader.get_message_row(receipt.row_id)
    assert row is not None
    assert (row.raw, row.status, row.error_code) == (
        b"\x00\xffbytes",
        MessageStatus.REJECTED,
        "ENCODING",
    )


def test_a_receipt_survives_the_process_dying_without_closing(store_url: str) -> None:
    """Once receive() returns the row is committed, even if the process is killed next."""
    script = textwrap.dedent(
        """
        import os, sys
        from datetime import UTC, datetime
        from adapter.store import open_store
        store = open_store(sys.argv[1])
        receipt = store.receive(transport="mllp", message_format="hl7v2", sender="LAB^FAC",
                                message_id="CRASH", raw=b"MSH|crash",
                                received_at=datetime(2024, 5, 1, tzinfo=UTC))
        print(receipt.row_id, flush=True)
        os._exit(0)  # no close, no commit on exit, no cleanup
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, store_url],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    with open_store(store_url) as reopened:
        row = reopened.get_message("CRASH", "LAB^FAC")
    assert row is not None
    assert row.row_id == int(done.stdout)
    assert row.raw == b"MSH|crash"
    assert row.received_at == datetime(2024, 5, 1, tzinfo=UTC)


def test_latest_version_follows_the_version_not_the_clock(store: Store, receive: Receive) -> None:
    """With a sender given, the latest is the highest version even if its time is earlier."""
    receive("M1", b"v1", at=T0 + timedelta(hours=1))
    second = receive("M1", b"v2", at=T0)
    latest = store.get_message("M1", "LAB^FAC")
    assert latest is not None
    assert (latest.row_id, latest.version) == (second.row_id, 2)
