"""Service.handle: store, process, answer only once stored, the same way every time."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from mllp_support import TickingClock, msa_code, oru

from adapter.config import Settings
from adapter.emit.ack import header_of
from adapter.errors import EncodingError
from adapter.ingest.er7 import decode_message
from adapter.pipeline import Context
from adapter.service.handler import Handled, Service
from adapter.service.workers import Processed, WorkerPool
from adapter.store import GroupCommitter, MessageStatus, Store, Transport, open_store


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "worker-pool"])
@pytest.mark.parametrize("wait_for_outcome", [True, False], ids=["http", "mllp"])
def test_copies_arriving_together_are_processed_once(
    tmp_path: Path, workers: int, wait_for_outcome: bool
) -> None:
    """The same message on several connections at once: one outcome, one outbox item, one ACK.

    Over MLLP the outcome is stored after the ACK, in a later commit: a copy arriving meanwhile
    must still be answered as the first one was, not processed again.
    """
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    settings = Settings(mllp_port=0, http_port=0, workers=workers)

    async def main() -> list[Handled]:
        context = Context.from_settings(settings)
        pool = WorkerPool(context, workers) if workers else None
        if pool is not None:
            await pool.start()
        try:
            async with GroupCommitter(store) as committer:
                service = Service(context, committer, TickingClock(), forward=True, pool=pool)
                answers = await asyncio.gather(
                    *(
                        service.handle(
                            oru(f"twin-{n % 10}"),
                            Transport.MLLP,
                            wait_for_outcome=wait_for_outcome,
                        )
                        for n in range(40)
                    )
                )
                # Ten messages of one case: those combined again after their MLLP ACK are
                # stored before the writer closes, as the server's shutdown does.
                await service.drain()
                return answers
        finally:
            if pool is not None:
                await pool.close()

    answers = asyncio.run(main())
    assert sum(handled.duplicate for handled in answers) == 30
    for n in range(10):
        copies = [handled for handled in answers if handled.message_id == f"twin-{n}"]
        assert len({handled.ack for handled in copies}) == 1
        ack = copies[0].ack
        assert ack is not None
        assert msa_code(ack) == "AA"
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
    header = header_of(message)
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


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "worker-pool"])
def test_no_answer_before_the_commit_whenever_processing_runs(tmp_path: Path, workers: int) -> None:
    """Nothing is answered before the raw message's commit, however fast processing is.

    With worker processes the pipeline runs while the write is held back and is done before it;
    in the service process it waits for the write, which it would otherwise only delay.
    """
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    gate = threading.Event()
    settings = Settings(mllp_port=0, http_port=0, workers=workers)
    processed: list[str] = []

    async def main() -> tuple[list[str], bool, MessageStatus]:
        context = Context.from_settings(settings)
        pool = WorkerPool(context, workers) if workers else None
        if pool is not None:
            await pool.start()
        try:
            async with GroupCommitter(_GatedStore(store, gate)) as committer:  # type: ignore[arg-type]
                service = Service(context, committer, TickingClock(), pool=pool)
                original = service._process

                async def recording(*args: Any) -> Processed:
                    outcome = await original(*args)
                    processed.append("done")
                    return outcome

                service._process = recording  # type: ignore[method-assign]
                handling = asyncio.create_task(service.handle(oru("gate-1"), Transport.MLLP))
                await asyncio.sleep(0.3)  # far longer than processing one message takes
                while_held = list(processed)
                answered_while_held = handling.done()
                gate.set()
                return while_held, answered_while_held, (await handling).status
        finally:
            if pool is not None:
                await pool.close()

    while_held, answered_while_held, status = asyncio.run(main())
    assert while_held == (["done"] if workers else [])
    assert not answered_while_held
    assert status is MessageStatus.PROCESSED
    row = store.get_message("gate-1")
    assert row is not None
    assert row.status is MessageStatus.PROCESSED
    store.close()


def test_a_resend_is_not_processed_but_a_correction_is(tmp_path: Path) -> None:
    """With workers: a resent message is answered from the store without processing it again;
    a correction (same control id, new content) is processed, once its version is stored."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    settings = Settings(mllp_port=0, http_port=0, workers=1)
    calls: list[bytes] = []

    async def main() -> list[Handled]:
        context = Context.from_settings(settings)
        pool = WorkerPool(context, 1)
        await pool.start()
        try:
            async with GroupCommitter(store) as committer:
                service = Service(context, committer, TickingClock(), pool=pool)
                original = service._process

                async def counting(data: bytes, *args: Any) -> Processed:
                    calls.append(data)
                    return await original(data, *args)

                service._process = counting  # type: ignore[method-assign]
                corrected = oru("again-1").replace(b"|F\r", b"|C\r")
                return [
                    await service.handle(message, Transport.MLLP, wait_for_outcome=False)
                    for message in (oru("again-1"), oru("again-1"), corrected)
                ]
        finally:
            await pool.close()

    first, resend, correction = asyncio.run(main())
    assert calls == [oru("again-1"), oru("again-1").replace(b"|F\r", b"|C\r")]
    assert (first.duplicate, resend.duplicate, correction.duplicate) == (False, True, False)
    assert resend.ack == first.ack
    assert correction.receipt.version == 2
    assert correction.status is MessageStatus.PROCESSED
    store.close()


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "worker-pool"])
def test_a_value_not_understood_is_answered_ae_and_kept_with_its_bundle(
    tmp_path: Path, workers: int
) -> None:
    """AE naming the OBX position; stored as rejected (for reprocess) with the Bundle, forwarded."""
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "hl7v2" / "her2-not-understood.hl7"
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    settings = Settings(mllp_port=0, http_port=0, workers=workers)

    async def main() -> Handled:
        context = Context.from_settings(settings)
        pool = WorkerPool(context, workers) if workers else None
        if pool is not None:
            await pool.start()
        try:
            async with GroupCommitter(store) as committer:
                service = Service(context, committer, TickingClock(), forward=True, pool=pool)
                return await service.handle(fixture.read_bytes(), Transport.MLLP)
        finally:
            if pool is not None:
                await pool.close()

    handled = asyncio.run(main())
    assert handled.ack is not None
    assert msa_code(handled.ack) == "AE"
    err = next(s for s in handled.ack.split(b"\r") if s.startswith(b"ERR|"))
    assert err.split(b"|")[2] == b"OBX^1^5"
    assert b"VALUE-NOT-UNDERSTOOD" in err
    row = store.get_message("her2-not-understood")
    assert row is not None
    assert row.status is MessageStatus.REJECTED
    assert row.error_code == "VALUE-NOT-UNDERSTOOD"
    assert handled.bundle_json is not None
    assert b"HER2-not-understood" in handled.bundle_json
    assert len(store.outbox_items_for(row.row_id)) == 1
    store.close()
