"""Service.handle: store, process, answer only once stored, the same way every time."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from mllp_support import TickingClock, msa_code, oru

import adapter.service
from adapter.errors import EncodingError
from adapter.ingest.er7 import decode_message
from adapter.pipeline import Context, Outcome, RawMessage
from adapter.service import Service, ack_header_of
from adapter.service_settings import ServiceSettings
from adapter.store import GroupCommitter, MessageStatus, Store, Transport, open_store


def test_copies_arriving_together_are_processed_once(tmp_path: Path) -> None:
    """The same message on two connections at once: one outcome, one outbox item, one answer."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    settings = ServiceSettings(mllp_port=0, http_port=0, workers=0)

    async def main() -> list[bytes | None]:
        async with GroupCommitter(store) as committer:
            service = Service(
                Context.from_settings(settings), committer, TickingClock(), forward=True
            )
            answers = await asyncio.gather(
                *(service.handle(oru(f"twin-{n % 10}"), Transport.MLLP) for n in range(40))
            )
        return [handled.ack for handled in answers]

    acks = asyncio.run(main())
    assert {msa_code(ack) for ack in acks if ack} == {"AA"}
    assert all(ack is not None for ack in acks)
    for n in range(10):
        row = store.get_message(f"twin-{n}")
        assert row is not None
        assert row.status is MessageStatus.PROCESSED
        assert len(store.outbox_items_for(row.row_id)) == 1
        assert len(store.message_versions(f"twin-{n}")) == 1
    store.close()


def test_ack_header_survives_an_unsupported_charset() -> None:
    """MSH-18 naming a charset we cannot decode still yields a full ACK header to answer AR with."""
    first, rest = oru("cs-1").split(b"\r", 1)
    message = first.split(b"|2.5.1")[0] + b"|2.5.1||||||EBCDIC\r" + rest  # MSH-18
    with pytest.raises(EncodingError):
        decode_message(message)
    header = ack_header_of(message)
    assert header.control_id == "cs-1"
    assert header.sending_application
    assert header.message_type == "ORU"


class _GatedStore:
    """A store whose writes wait until the test opens the gate (a slow disk, held still)."""

    def __init__(self, store: Store, gate: threading.Event) -> None:
        self._store = store
        self._gate = gate

    def write_batch(self, groups: Any) -> Any:
        self._gate.wait(timeout=10)
        return self._store.write_batch(groups)


def test_processing_overlaps_the_commit_but_the_answer_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline runs while the raw message is written; nothing is answered before the commit."""
    processed: list[bytes] = []
    real_process = adapter.service.process

    def recording_process(message: RawMessage, context: Context) -> Outcome:
        processed.append(message.data)
        return real_process(message, context)

    monkeypatch.setattr(adapter.service, "process", recording_process)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    gate = threading.Event()
    settings = ServiceSettings(mllp_port=0, http_port=0, workers=0)

    async def main() -> tuple[bool, MessageStatus]:
        async with GroupCommitter(_GatedStore(store, gate)) as committer:  # type: ignore[arg-type]
            service = Service(Context.from_settings(settings), committer, TickingClock())
            handling = asyncio.create_task(service.handle(oru("gate-1"), Transport.MLLP))
            while not processed:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.05)
            answered_before_commit = handling.done()
            gate.set()
            return answered_before_commit, (await handling).status

    answered_before_commit, status = asyncio.run(main())
    assert processed == [oru("gate-1")]
    assert not answered_before_commit
    assert status is MessageStatus.PROCESSED
    row = store.get_message("gate-1")
    assert row is not None
    assert row.status is MessageStatus.PROCESSED
    store.close()
