"""``her2-adapter purge``: deletes what retention no longer keeps and says what it kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapter.cli import app
from adapter.store import MessageStatus, open_store


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    old = datetime.now(UTC) - timedelta(days=100)
    with open_store(url) as store:
        for control_id, at, status in (
            ("old-done", old, MessageStatus.PROCESSED),
            ("old-open", old, None),
            ("new-done", datetime.now(UTC), MessageStatus.PROCESSED),
        ):
            receipt = store.receive(
                transport="mllp",
                message_format="hl7v2",
                sender="LAB",
                message_id=control_id,
                raw=b"MSH|",
                received_at=at,
            )
            if status is not None:
                store.record_outcome(receipt.row_id, status, processed_at=at)
    return url


def test_purge_older_than_days(store_url: str) -> None:
    result = CliRunner().invoke(app, ["purge", "--store", store_url, "--older-than", "90"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("purged 1 messages received before ")
    assert (
        "kept 1 unfinished (reprocess needs them), 0 still forwarding and 0 of open cases"
        in result.stdout
    )
    with open_store(store_url) as store:
        gone = [store.get_message(each) is None for each in ("old-done", "old-open", "new-done")]
    assert gone == [True, False, False]


def test_purge_takes_retention_days_from_the_environment(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HER2_RETENTION_DAYS", "90")
    result = CliRunner().invoke(app, ["purge", "--store", store_url])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("purged 1 messages")


def test_purge_without_a_retention_is_a_usage_error(store_url: str) -> None:
    result = CliRunner().invoke(app, ["purge", "--store", store_url])
    assert result.exit_code == 2
    assert "--older-than" in result.stderr
