"""serve with ``retention_days`` purges old finished messages by itself, and says what it kept."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapter.config import Settings
from adapter.service.server import Listening, serve
from adapter.store import MessageStatus, open_store

pytestmark = pytest.mark.timeout(60)
T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def test_serve_purges_what_retention_no_longer_keeps(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        # "old-open" is truncated, so that the recovery sweep leaves it "received" too.
        for control_id, status in (("old-done", MessageStatus.PROCESSED), ("old-open", None)):
            receipt = store.receive(
                transport="mllp",
                message_format="hl7v2" if status else "truncated",
                sender="LAB",
                message_id=control_id,
                raw=b"MSH|",
                received_at=T0,
            )
            if status is not None:
                store.record_outcome(receipt.row_id, status, processed_at=T0)
    settings = Settings.load(mllp_port=0, http_port=0, store=url, retention_days=30, workers=0)
    caplog.set_level(logging.INFO, logger="her2_adapter.server")

    async def main() -> None:
        stop = asyncio.Event()
        ready: asyncio.Future[Listening] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            serve(
                settings,
                stop=stop,
                clock=lambda: T0 + timedelta(days=31),
                handle_signals=False,
                on_ready=ready.set_result,
            )
        )
        await asyncio.wait_for(ready, 20)
        while "retention purge" not in caplog.text:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 20)

    asyncio.run(main())
    assert "1 messages older than 30 days deleted; kept 1 unfinished" in caplog.text
    assert "0 still forwarding and 0 of open cases" in caplog.text
    with open_store(url) as store:
        assert store.get_message("old-done") is None
        assert store.get_message("old-open") is not None
