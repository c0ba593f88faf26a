"""A store of schema version 4 (copies of reports and resources in the index) upgraded to 5.

The upgrade keeps every index row and drops only the copies: reports, resources, audit facts and
cases are found as before, with the content read from the message's Bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from adapter.store import ResourceSearch, Store, StoredResource, open_store
from adapter.store.base import Backend
from adapter.store.postgres import PostgresBackend
from adapter.store.sqlite import SQLiteBackend

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
BUNDLE = b'{"resourceType":"Bundle","entry":[]}'


def _version_four(url: str) -> Backend:
    if url.startswith("sqlite:///"):

        class OldSQLite(SQLiteBackend):
            def migrations(self) -> Sequence[Sequence[str]]:
                return super().migrations()[:4]

        return OldSQLite(url.removeprefix("sqlite:///"))

    class OldPostgres(PostgresBackend):
        def migrations(self) -> Sequence[Sequence[str]]:
            return super().migrations()[:4]

    return OldPostgres(url)


def _columns(store: Store, table: str) -> set[str]:
    with store._transaction(write=False) as session:
        row = session.conn.execute(f"SELECT * FROM {table} WHERE 1 = 0")
        return {column[0] for column in row.description}


def test_a_version_four_store_is_upgraded_and_its_index_reads_from_the_bundle(
    store_url: str,
) -> None:
    backend = _version_four(store_url)
    with Store(backend) as old:
        receipt = old.receive(
            transport="mllp",
            message_format="hl7v2",
            sender="LAB-A",
            message_id="M1",
            raw=b"v1",
            received_at=T0,
        )
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
            assert session.one("SELECT version FROM schema_version") == (5,)
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
        later = upgraded.receive(
            transport="mllp",
            message_format="hl7v2",
            sender="LAB-A",
            message_id="M2",
            raw=b"v2",
            received_at=T0,
        )
        upgraded.record_outcome(later.row_id, "processed", processed_at=T0, bundle=BUNDLE)
        upgraded.index_reports(later.row_id, [], [])
    with open_store(store_url) as again:  # opened once more: nothing left to migrate
        assert again.get_report("R1") is not None
