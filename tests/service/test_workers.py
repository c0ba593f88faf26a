"""The worker pool: the same answers and stored outcomes as in-process, crashes and shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from mllp_support import LOOPBACK, NOW, no_results, oru

from adapter.config import Settings
from adapter.model import SourceFormat
from adapter.pipeline import Context, split_input
from adapter.service.handler import Handled, Service
from adapter.service.mllp_client import MllpClient
from adapter.service.server import serve
from adapter.service.workers import WorkerPool, _frame, _Frames
from adapter.store import GroupCommitter, MessageStatus, Store, Transport, open_store

pytestmark = pytest.mark.timeout(120)

T = TypeVar("T")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
FHIR_SOURCE = "lab-portal"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def corpus() -> list[tuple[bytes, SourceFormat]]:
    """Every message of the fixture corpus, good and bad, HL7 v2 and FHIR."""
    messages: list[tuple[bytes, SourceFormat]] = []
    for kind, suffixes in (
        (SourceFormat.HL7V2, (".hl7",)),
        (SourceFormat.FHIR, (".json", ".ndjson")),
    ):
        for path in sorted((FIXTURES / kind.value).iterdir()):
            if path.suffix not in suffixes:
                continue
            data = path.read_bytes()
            try:
                split = [message.data for message in split_input(data, kind)]
            except Exception:  # noqa: BLE001 - unsplittable input is sent whole, as HTTP does
                split = [data]
            messages.extend((message, kind) for message in split)
    return messages


def run_service(
    tmp_path: Path, workers: int, scenario: Callable[[Service, WorkerPool | None], Awaitable[T]]
) -> tuple[T, Store]:
    """Run ``scenario`` on a Service (in-process, or with a pool) over a fresh SQLite store."""

    async def main() -> T:
        context = Context.from_settings(Settings())
        pool = WorkerPool(context, workers) if workers else None
        if pool is not None:
            await pool.start()
        try:
            async with GroupCommitter(store) as committer:
                service = Service(context, committer, lambda: NOW, pool=pool)
                result = await scenario(service, pool)
                await service.drain()  # as the server does before it closes the writer
                return result
        finally:
            if pool is not None:
                await pool.close()

    store = open_store(f"sqlite:///{tmp_path / f'store-{workers}.db'}")
    return asyncio.run(main()), store


async def handle_all(
    service: Service, messages: list[tuple[bytes, SourceFormat]], at_once: int = 8
) -> list[Any]:
    """Every message through ``Service.handle``, ``at_once`` at a time, answers in input order.

    Messages of one case sent together are combined in the order their outcomes commit, which
    the scheduling decides: comparisons of whole Bundles send them one at a time.
    """

    async def one(data: bytes, kind: SourceFormat) -> Handled:
        if kind is SourceFormat.FHIR:
            return await service.handle(
                data, Transport.HTTP, format_hint=kind, fhir_source=FHIR_SOURCE
            )
        return await service.handle(data, Transport.MLLP, format_hint=kind)

    answers: list[Any] = []
    for start in range(0, len(messages), at_once):
        batch = messages[start : start + at_once]
        answers.extend(await asyncio.gather(*(one(data, kind) for data, kind in batch)))
    return answers


def answer_of(handled: Handled) -> tuple[Any, ...]:
    reason = None if handled.error is None else (type(handled.error), handled.error.reason)
    return (
        handled.status,
        handled.message_id,
        handled.bundle_json,
        handled.error_code,
        reason,
        handled.ack,
        handled.duplicate,
    )


def stored(store: Store) -> list[tuple[Any, ...]]:
    """What the store holds: each message's outcome, and the report index."""
    rows = [
        (
            row.sender,
            row.message_id,
            row.status,
            row.error_code,
            row.error_text,
            row.bundle,
            row.ack,
        )
        for row in store.iter_messages()
    ]
    reports = [
        (report.report_id, report.patient, report.category, report.status, report.bundle)
        for report in store.find_reports()
    ]
    return [*rows, *reports]


def test_pool_and_in_process_give_identical_answers_and_stored_outcomes(tmp_path: Path) -> None:
    """The fixture corpus answered and stored byte for byte alike with and without workers."""
    messages = corpus()

    async def scenario(service: Service, pool: WorkerPool | None) -> list[tuple[Any, ...]]:
        return [answer_of(handled) for handled in await handle_all(service, messages, 1)]

    here, here_store = run_service(tmp_path, 0, scenario)
    pooled, pooled_store = run_service(tmp_path, 2, scenario)
    with here_store, pooled_store:
        assert pooled == here
        assert stored(pooled_store) == stored(here_store)
    statuses = {answer[0] for answer in here}
    assert {MessageStatus.PROCESSED, MessageStatus.REJECTED} <= statuses  # the corpus has both


def test_worker_killed_mid_message_fails_that_message_and_the_next_are_fine(
    tmp_path: Path,
) -> None:
    """A message whose worker dies is stored failed (INTERNAL, AE); a new worker takes the rest."""
    victims: list[int] = []

    async def scenario(service: Service, pool: WorkerPool | None) -> list[Handled]:
        assert pool is not None
        before = await service.handle(oru("kill-1"), Transport.MLLP)
        (victim,) = pool.pids
        victims.append(victim)
        os.kill(victim, signal.SIGSTOP)  # it cannot answer before it is killed
        lost = asyncio.create_task(service.handle(oru("kill-2"), Transport.MLLP))
        while pool.in_flight == 0:
            await asyncio.sleep(0.01)
        os.kill(victim, signal.SIGKILL)
        answers = [before, await lost]
        answers.append(await service.handle(oru("kill-3"), Transport.MLLP))
        answers.append(await service.handle(no_results("kill-4"), Transport.MLLP))
        assert pool.pids
        assert victim not in pool.pids
        return answers

    answers, store = run_service(tmp_path, 1, scenario)
    with pytest.raises(ProcessLookupError):
        os.kill(victims[0], 0)  # reaped, not left a zombie
    statuses = [(answer.status, answer.error_code) for answer in answers]
    assert statuses == [
        (MessageStatus.PROCESSED, None),
        (MessageStatus.FAILED, "INTERNAL"),
        (MessageStatus.PROCESSED, None),
        (MessageStatus.REJECTED, "NO-HER2-RESULT"),
    ]
    assert answers[1].ack is not None
    assert b"MSA|AE|kill-2" in answers[1].ack
    with store:
        row = store.get_message("kill-2")
        assert row is not None
        assert (row.status, row.error_code) == (MessageStatus.FAILED, "INTERNAL")
        assert row.raw == oru("kill-2")  # kept for reprocessing


def test_close_answers_what_the_workers_were_sent_then_stops_them(tmp_path: Path) -> None:
    """Messages in flight at close are answered; afterwards no worker process is left."""

    async def scenario(
        service: Service, pool: WorkerPool | None
    ) -> tuple[list[Handled], list[int]]:
        assert pool is not None
        pids = pool.pids
        for pid in pids:  # held still, so that all six are surely in flight when close starts
            os.kill(pid, signal.SIGSTOP)
        handling = [
            # Six patients and orders: six cases, none combined again after its answer.
            asyncio.create_task(
                service.handle(
                    oru(f"close-{n}", patient=f"P{n}", order=f"{2000 + n}"), Transport.MLLP
                )
            )
            for n in range(6)
        ]
        while pool.in_flight < 6:
            await asyncio.sleep(0.001)
        closing = asyncio.create_task(pool.close())
        await asyncio.sleep(0.05)
        assert not closing.done()
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        answers = await asyncio.gather(*handling)
        await closing
        return answers, pids

    (answers, pids), store = run_service(tmp_path, 2, scenario)
    store.close()
    assert [answer.status for answer in answers] == [MessageStatus.PROCESSED] * 6
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize(
    ("cpus", "workers", "expected"),
    [
        pytest.param(4, None, 3, id="default-leaves-one-cpu-to-the-service"),
        pytest.param(2, None, 1, id="default-on-two-cpus-is-one-worker"),
        pytest.param(1, None, 0, id="default-on-one-cpu-is-in-process"),
        pytest.param(4, 0, 0, id="zero-is-in-process"),
        pytest.param(1, 2, 2, id="explicit-count-is-kept"),
    ],
)
def test_worker_count(
    monkeypatch: pytest.MonkeyPatch, cpus: int, workers: int | None, expected: int
) -> None:
    """The default worker count follows the CPUs the service may use; a setting wins."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    assert Settings(workers=workers).worker_count == expected


def test_negative_workers_are_refused() -> None:
    """A negative worker count is a settings error, not a silent default."""
    with pytest.raises(ValueError, match="workers"):
        Settings(workers=-1)


def test_a_pool_needs_a_worker() -> None:
    """workers=0 means no pool (in-process); a pool of none is refused."""
    with pytest.raises(ValueError, match="at least one worker"):
        WorkerPool(Context.from_settings(Settings()), 0)


def test_serve_with_workers_answers_mllp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve` with HER2_WORKERS=1 processes in a worker and stops cleanly."""
    monkeypatch.setenv("HER2_WORKERS", "1")
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    settings = Settings.load(mllp_port=free_port(), http_port=0, store=store_url)
    assert settings.workers == 1

    async def main() -> bytes:
        stop = asyncio.Event()
        ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            serve(settings, stop=stop, handle_signals=False, on_ready=ready.set_result)
        )
        listening = await asyncio.wait_for(ready, 60)
        client = await MllpClient.connect(LOOPBACK, listening.mllp_port)
        (ack,) = await client.send(oru("pool-1"))
        await client.close()
        stop.set()
        await asyncio.wait_for(task, 30)
        return ack

    ack = asyncio.run(main())
    assert b"MSA|AA|pool-1" in ack
    with open_store(store_url) as store:
        row = store.get_message("pool-1")
        assert row is not None
        assert row.status is MessageStatus.PROCESSED


def test_a_worker_reads_every_frame_that_has_arrived_and_waits_for_split_ones() -> None:
    """Frames arriving together are read as one batch; a frame cut in two waits for its rest."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        frames = _Frames(theirs)
        split = _frame(b"four")
        ours.sendall(_frame(b"one") + _frame(b"") + _frame(b"three") + split[:6])
        assert frames.next_batch() == [b"one", b"", b"three"]
        ours.sendall(split[6:])
        assert frames.next_batch() == [b"four"]
        ours.shutdown(socket.SHUT_WR)
        assert frames.next_batch() == []
