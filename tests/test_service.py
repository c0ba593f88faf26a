"""Service.handle: store first, process once, answer the same way every time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mllp_support import TickingClock, msa_code, oru

from adapter.config import ServiceSettings
from adapter.errors import EncodingError
from adapter.ingest.er7 import decode_message
from adapter.pipeline import Context
from adapter.service import Service, ack_header_of
from adapter.store import GroupCommitter, MessageStatus, Transport, open_store


def test_copies_arriving_together_are_processed_once(tmp_path: Path) -> None:
    """The same message on two connections at once: one processing, one outbox item, one answer."""
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
