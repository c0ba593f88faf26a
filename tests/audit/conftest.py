"""The known traffic (tests/audit_traffic.py) in a store, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from audit_traffic import build_store, known_traffic
from store.conftest import BACKENDS, fresh_postgres_schema


@pytest.fixture(scope="module", params=BACKENDS)
def traffic_store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A store holding the known traffic, built once per module and backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('audit') / 'store.db'}"
        build_store(url, known_traffic())
        yield url
        return
    with fresh_postgres_schema() as url:
        build_store(url, known_traffic())
        yield url
