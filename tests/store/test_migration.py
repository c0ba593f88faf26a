"""Stores of earlier schema versions upgraded to the latest.

Version 4 (copies of reports and resources in the index) to 5: the upgrade keeps every index
row and drops only the copies: reports, resources, audit facts and cases are found as before,
with the content read from the message's Bundle. Version 5 to 6: two indexes no query read are
dropped; resends are still found, with a control id or without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from adapter.store import Receipt, ResourceSearch, Store, StoredResource, open_store
from adapter.store.base import Backend
from adapter.store.postgres import PostgresBackend
from adapter.store.sqlite import SQLiteBackend

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
BUNDLE = b'{"resourceType":"Bundle","entry":[]}'


def _version(url: str, version: int) -> Backend:
    if url.startswith("sqlite:///"):

        class OldSQLite(SQLiteBackend):
            def migrations(self) -> Sequence[Sequence[str]]:
                return super().migrations()[:version]

        return OldSQLite(url.removeprefix("sqlite:///"))

    class OldPostgres(PostgresBackend):
        def migrations(self) -> Sequence[Sequence[str]]:
            return super().migrations()[:version]

    return OldPostgres(url)


LATEST = len(SQLiteBackend("").migrations())


def _columns(store: Store, table: str) -> set[str]:
    with store._transaction(write=False) as session:
        row = session.conn.execute(f"SELECT * FROM {table} WHERE 1 = 0")
        return {column[0] for column in row.description}


def _receive(
    store: Store,
    message_id: str | None,
    raw: bytes,
    *,
    sender: str = "LAB-A",
    transport: str = "mllp",
    message_format: str = "hl7v2",
) -> Receipt:
    """``Store.receive`` with this module's defaults (conftest's ``receive`` is bound to one
    store; these tests write to a store before and after its upgrade)."""
    return store.receive(
        transport=transport,
        message_format=message_format,
        sender=sender,
        message_id=message_id,
        raw=raw,
        received_at=T0,
    )


def test_a_version_four_store_is_upgraded_and_its_index_reads_from_the_bundle(
    store_url: str,
) -> None:
    backend = _version(store_url, 4)
    with Store(backend) as old:
        receipt = _receive(old, "M1", b"v1")
        old.record_outcome(receipt.row_id, "processed", processed_at=T0, bundle=BUNDLE)
        rows = [
            (
                "INSERT INTO reports (message_row_id, report_id, patient, category, status, bundle)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (receipt.row_id, "R1", "Patient/P1", "HER2-low", "final", b"{copy}"),
            ),
            (
                "INSERT INTO report_facts (message_row_id, report_id, sender, received_at, facts)"
                " VALUES (?, ?, ?, ?, ?)",
                (receipt.row_id, "R1", "LAB-A", backend.time_to_db(T0), '{"v": 1}'),
            ),
            (
                "INSERT INTO resources (message_row_id, resource_type, resource_id, patient,"
                " tokens, moment, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    receipt.row_id,
                    "Observation",
                    "O1",
                    "Patient/P1",
                    " code:A ",
                    "2024-03-01T10:00:00Z",
                    b"{copy}",
                ),
            ),
            (
                "INSERT INTO case_events (case_id, version, message_row_id, sender, patient,"
                " report_id, category, official_result, status, changes)"
                " VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
                ("C1", receipt.row_id, "LAB-A", "p", "R1", "HER2-low", "", "final", "{}"),
            ),
        ]
        with old._transaction(write=True) as session:
            for query, params in rows:
                session.run(query, params)

    with open_store(store_url) as upgraded:
        with upgraded._transaction(write=False) as session:
            assert session.one("SELECT version FROM schema_version") == (LATEST,)
        assert "bundle" not in _columns(upgraded, "reports")
        assert "body" not in _columns(upgraded, "resources")
        report = upgraded.get_report("R1")
        assert report is not None
        assert (report.message_row_id, report.patient, report.bundle) == (
            receipt.row_id,
            "Patient/P1",
            BUNDLE,
        )
        found = StoredResource("Observation", "O1", BUNDLE)
        assert upgraded.get_resource("Observation", "O1") == found
        search = ResourceSearch("Observation", patient="Patient/P1", tokens=(("code:A",),))
        assert upgraded.find_resources(search) == (1, [found])
        assert [row.audit for row in upgraded.audit_rows()] == ['{"v": 1}']
        assert [event.case_id for event in upgraded.case_timeline("C1")] == ["C1"]
        # and it takes new writes in the new shape
        later = _receive(upgraded, "M2", b"v2")
        upgraded.record_outcome(later.row_id, "processed", processed_at=T0, bundle=BUNDLE)
        upgraded.index_reports(later.row_id, [], [])
    with open_store(store_url) as again:  # opened once more: nothing left to migrate
        assert again.get_report("R1") is not None


def _indexes(store: Store) -> set[str]:
    with store._transaction(write=False) as session:
        if store.backend_name == "sqlite":
            rows = session.all("SELECT name FROM sqlite_master WHERE type = 'index'")
        else:
            rows = session.all(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            )
    return {str(row[0]) for row in rows}


def test_a_version_five_store_is_upgraded_and_still_finds_resends(store_url: str) -> None:
    assert len(PostgresBackend("").migrations()) == LATEST == 6
    with Store(_version(store_url, 5)) as old:
        assert {"resources_patient", "messages_content"} <= _indexes(old)
        identified = _receive(old, "M1", b"v1")
        old.record_outcome(identified.row_id, "processed", processed_at=T0, ack=b"AA")
        anonymous = _receive(
            old, None, b"{}", sender="fhir", transport="http", message_format="fhir"
        )
        old.record_outcome(anonymous.row_id, "processed", processed_at=T0, ack=b"OK")

    with open_store(store_url) as upgraded:
        with upgraded._transaction(write=False) as session:
            assert session.one("SELECT version FROM schema_version") == (6,)
        indexes = _indexes(upgraded)
        assert not {"resources_patient", "messages_content"} & indexes
        assert "messages_unidentified" in indexes
        for receipt, sender, message_id, raw, ack in (
            (identified, "LAB-A", "M1", b"v1", b"AA"),
            (anonymous, "fhir", None, b"{}", b"OK"),
        ):
            again = _receive(upgraded, message_id, raw, sender=sender)
            assert (again.duplicate, again.row_id, again.ack) == (True, receipt.row_id, ack)
        # a new version of the identified message is still a new version
        corrected = _receive(upgraded, "M1", b"v2")
        assert (corrected.duplicate, corrected.version, corrected.supersedes) == (
            False,
            2,
            identified.row_id,
        )
