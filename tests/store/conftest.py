"""Store fixtures: every test taking ``store_url`` or ``store`` runs on SQLite and on PostgreSQL.

PostgreSQL runs when HER2_TEST_POSTGRES_URL is set (``eval "$(.ci/postgres.sh)"``); each test
gets a fresh schema, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from adapter.store import Receipt, Store, open_store

POSTGRES_URL = os.environ.get("HER2_TEST_POSTGRES_URL")

T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                not POSTGRES_URL,
                reason='HER2_TEST_POSTGRES_URL is not set: eval "$(.ci/postgres.sh)"',
            ),
        ],
    ),
]


def postgres_url_in_schema(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def fresh_postgres_schema() -> Iterator[str]:
    assert POSTGRES_URL is not None
    schema = f"test_{uuid.uuid4().hex}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield postgres_url_in_schema(POSTGRES_URL, schema)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=BACKENDS)
def store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'her2-adapter.db'}"
        return
    with fresh_postgres_schema() as url:
        yield url


@pytest.fixture(params=[p for p in BACKENDS if p.id == "postgres"])
def postgres_url() -> Iterator[str]:
    """A PostgreSQL-only test's database URL, in a fresh schema."""
    with fresh_postgres_schema() as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened


Receive = Callable[..., Receipt]


@pytest.fixture
def receive(store: Store) -> Receive:
    """``receive("M1", b"raw")`` with the usual HL7 defaults; keywords override them."""

    def _receive(
        message_id: str | None,
        raw: bytes,
        *,
        sender: str = "LAB^FAC",
        at: datetime = T0,
        transport: str = "mllp",
        message_format: str = "hl7v2",
    ) -> Receipt:
        return store.receive(
            transport=transport,
            message_format=message_format,
            sender=sender,
            message_id=message_id,
            raw=raw,
            received_at=at,
        )

    return _receive


@pytest.fixture
def processed(store: Store, receive: Receive) -> Receive:
    """``receive`` then a processed outcome, with a Bundle of its own: what the report and
    resource index point into."""

    def _processed(message_id: str | None, raw: bytes, **keywords: object) -> Receipt:
        receipt = receive(message_id, raw, **keywords)
        store.record_outcome(
            receipt.row_id, "processed", processed_at=T0, bundle=b'{"raw":"' + raw + b'"}'
        )
        return receipt

    return _processed
