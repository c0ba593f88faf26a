"""The audit's reads of the store: the latest version of each report with its sender and audit
facts, the messages that gave no report, and the upgrade of a version-1 store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from adapter.store import MessageStatus, Receipt, ReportIndexRow, Store, open_store
from adapter.store.base import Backend

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
Receive = Callable[..., Receipt]


def indexed(report_id: str, audit: str | None) -> ReportIndexRow:
    return ReportIndexRow(report_id, "Patient/p", "HER2-low", "final", audit)


def test_audit_rows_hold_the_latest_version_of_each_report(store: Store, receive: Receive) -> None:
    """A correction replaces the report it corrects; the sender comes from the message."""
    first = receive("M1", b"v1", sender="LAB-A")
    later = receive("M2", b"v2", sender="LAB-A", at=T0 + timedelta(hours=1))
    other = receive("M3", b"v3", sender="LAB-B")
    store.index_reports(first.row_id, [indexed("R1", '{"v": 1}'), indexed("R2", '{"v": 2}')])
    store.index_reports(later.row_id, [indexed("R1", '{"v": 3}')])
    store.index_reports(other.row_id, [indexed("R3", None)])
    rows = sorted(store.audit_rows(), key=lambda row: (row.sender, row.audit or ""))
    assert [(row.sender, row.audit) for row in rows] == [
        ("LAB-A", '{"v": 2}'),
        ("LAB-A", '{"v": 3}'),
        ("LAB-B", None),
    ]
    assert rows[1].received_at == T0 + timedelta(hours=1)
    assert [row.audit for row in store.audit_rows(sender="LAB-B")] == [None]


def test_unprocessed_rows_are_the_rejected_and_failed_messages(
    store: Store, receive: Receive
) -> None:
    """Rejected and failed messages are listed; processed and received ones are not."""
    rejected = receive("M1", b"a", sender="LAB-A")
    failed = receive("M2", b"b", sender="LAB-B")
    processed = receive("M3", b"c", sender="LAB-A")
    receive("M4", b"d", sender="LAB-A")  # still received: not counted
    store.record_outcome(rejected.row_id, "rejected", processed_at=T0, error_code="NO-HER2-RESULT")
    store.record_outcome(failed.row_id, "failed", processed_at=T0, error_code="OUTPUT-INVALID")
    store.record_outcome(processed.row_id, "processed", processed_at=T0, bundle=b"{}")
    rows = sorted(store.unprocessed_rows(), key=lambda row: row.sender)
    assert [(r.sender, r.status, r.error_code) for r in rows] == [
        ("LAB-A", MessageStatus.REJECTED, "NO-HER2-RESULT"),
        ("LAB-B", MessageStatus.FAILED, "OUTPUT-INVALID"),
    ]
    assert [r.sender for r in store.unprocessed_rows(sender="LAB-B")] == ["LAB-B"]


def _version_one(url: str) -> Backend:
    """The store's backend as release 1 had it: only the first migration."""
    from adapter.store.postgres import PostgresBackend
    from adapter.store.sqlite import SQLiteBackend

    if url.startswith("sqlite:///"):

        class OldSQLite(SQLiteBackend):
            def migrations(self) -> Sequence[Sequence[str]]:
                return super().migrations()[:1]

        return OldSQLite(url.removeprefix("sqlite:///"))

    class OldPostgres(PostgresBackend):
        def migrations(self) -> Sequence[Sequence[str]]:
            return super().migrations()[:1]

    return OldPostgres(url)


def test_a_version_one_store_is_upgraded_and_its_reports_stay_counted(store_url: str) -> None:
    """Reports indexed before the audit column keep their place (audit None) after the upgrade;
    new ones carry their facts."""
    backend = _version_one(store_url)
    with Store(backend) as old:
        receipt = old.receive(
            transport="mllp",
            message_format="hl7v2",
            sender="LAB-A",
            message_id="M1",
            raw=b"v1",
            received_at=T0,
        )
        old.record_outcome(receipt.row_id, "processed", processed_at=T0, bundle=b"{}")
    conn = backend.connect()
    try:
        conn.execute(
            backend.sql(
                "INSERT INTO reports (message_row_id, report_id, patient, category, status,"
                " bundle) VALUES (?, ?, ?, ?, ?, ?)"
            ),
            (receipt.row_id, "R-old", "Patient/p", "HER2-low", "final", b"{}"),
        )
        conn.commit()
    finally:
        conn.close()
    with open_store(store_url) as upgraded:
        later = upgraded.receive(
            transport="mllp",
            message_format="hl7v2",
            sender="LAB-A",
            message_id="M2",
            raw=b"v2",
            received_at=T0,
        )
        upgraded.index_reports(later.row_id, [indexed("R-new", '{"v": 1}')])
        audits = sorted(row.audit or "-" for row in upgraded.audit_rows())
        assert audits == ["-", '{"v": 1}']
        assert upgraded.get_report("R-old") is not None
