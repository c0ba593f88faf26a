"""The store fixtures of tests/store (SQLite, and PostgreSQL in a fresh schema when configured)."""

from store.conftest import store_url

__all__ = ["store_url"]
