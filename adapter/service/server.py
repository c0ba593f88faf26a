"""``her2-adapter serve``: the GroupCommitter, MLLP listener, HTTP API and forwarder in one loop.

Shutdown (SIGTERM, SIGINT or the ``stop`` event) runs in the order that loses nothing: stop
accepting, let messages being handled finish and be answered, stop the forwarder, write what the
committer still holds, stop the worker processes (``workers``), then close the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import uvloop

from adapter.config import Settings
from adapter.errors import ConfigError, MappingFileError, TransientError
from adapter.pipeline import Context
from adapter.service import metrics
from adapter.service.affinity import available_cpus, pin, plan_cpus
from adapter.service.handler import Clock, Service
from adapter.service.mllp import MllpServer, tls_context
from adapter.service.workers import WorkerPool
from adapter.store import (
    GroupCommitter,
    MessageFormat,
    MessageRow,
    MessageStatus,
    Store,
    open_store,
)

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("her2_adapter.server")

FORWARDER_GRACE = 10.0
"""Seconds the forwarder gets to finish its current attempt at shutdown."""


@dataclass(frozen=True)
class Runtime:
    """What the transports and the forwarder share in one running service (fields are stable)."""

    settings: Settings
    store: Store
    committer: GroupCommitter
    service: Service
    clock: Clock


@dataclass
class Listening:
    """Where a started service listens (ports as bound), for the startup line and for tests."""

    host: str
    mllp_port: int | None = None
    http_port: int | None = None
    store: str = ""
    forwarding: bool = False

    def describe(self) -> str:
        parts = []
        if self.mllp_port is not None:
            parts.append(f"mllp {self.host}:{self.mllp_port}")
        if self.http_port is not None:
            parts.append(f"http {self.host}:{self.http_port}")
        where = ", ".join(parts) or "no listener"
        forward = ", forwarding to FHIR" if self.forwarding else ""
        return f"her2-adapter listening: {where}; store {self.store}{forward}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def redact(url: str) -> str:
    """A store URL without its password, fit to print."""
    scheme, sep, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not sep or not at:
        return url
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}:***@{location}" if user else f"{scheme}://***@{location}"


def run(settings: Settings, *, on_ready: Callable[[Listening], None] | None = None) -> None:
    """Run the service in this process until SIGTERM or SIGINT (``her2-adapter serve``).

    On uvloop, whose socket handling costs the MLLP listener less CPU per message than the
    default loop; both cores are busy at full load, so that CPU goes to processing instead.
    With ``pin_cpus`` (the default) and CPUs enough, the service and each worker process get
    CPUs of their own (adapter/service/affinity.py).
    """

    def ready(listening: Listening) -> None:
        # Everything long-lived is loaded now (modules, mappings, the decision table): keep it
        # out of every garbage collection, which otherwise walks it again for each pass over
        # the short-lived objects that each message makes.
        gc.freeze()
        if on_ready is not None:
            on_ready(listening)

    # The default worker count follows the CPUs this process may use: fixed now, since pinning
    # this process changes what it may use.
    settings = settings.model_copy(update={"workers": settings.worker_count})
    plan = plan_cpus(available_cpus(), settings.worker_count) if settings.pin_cpus else None
    if plan is not None:
        # Pinned before any thread or worker starts: threads inherit it, workers get their own.
        pin(0, plan.service)
    worker_cpus = plan.workers if plan is not None else ()
    uvloop.run(serve(settings, on_ready=ready, worker_cpus=worker_cpus))


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    clock: Clock = utc_now,
    handle_signals: bool = True,
    on_ready: Callable[[Listening], None] | None = None,
    worker_cpus: Sequence[frozenset[int]] = (),
) -> None:
    """Run the service until ``stop`` is set (or SIGTERM/SIGINT when ``handle_signals``).

    ``worker_cpus``: a CPU set to pin each worker process to (adapter/service/affinity.py).
    """
    stop = stop or asyncio.Event()
    metrics.bound_labels(settings.metrics_max_senders, settings.metrics_max_codes)
    context = Context.from_settings(settings)
    store = open_store(settings.store)
    pool: WorkerPool | None = None
    try:
        if settings.worker_count:
            pool = WorkerPool(context, settings.worker_count, cpus=worker_cpus)
            await pool.start()
        committer = GroupCommitter(store)
        committer.start()
        service = Service(
            context, committer, clock, forward=settings.fhir_base is not None, pool=pool
        )
        runtime = Runtime(settings, store, committer, service, clock)
        with _signals(stop, enabled=handle_signals), _reload_signal(service, handle_signals):
            await _run(runtime, stop, on_ready)
    finally:
        if pool is not None:
            await pool.close()  # the listeners are closed: only abandoned work is left
        store.close()


async def _run(
    runtime: Runtime, stop: asyncio.Event, on_ready: Callable[[Listening], None] | None
) -> None:
    settings = runtime.settings
    listening = Listening(
        settings.host, store=redact(settings.store), forwarding=settings.fhir_base is not None
    )
    mllp: MllpServer | None = None
    http: uvicorn.Server | None = None
    http_task: asyncio.Task[None] | None = None
    forwarder: asyncio.Task[None] | None = None
    recovery: asyncio.Task[None] | None = None
    purger: asyncio.Task[None] | None = None
    try:
        if settings.mllp_port:
            mllp = MllpServer(
                runtime.service,
                max_message_bytes=settings.max_message_bytes,
                limits=settings.mllp_limits,
                original_mode_senders=settings.original_mode_senders,
                tls=_mllp_tls(settings),
            )
            await mllp.start(settings.host, settings.mllp_port)
            listening.mllp_port = mllp.port
        if settings.http_port:
            http = _http_server(runtime)
            http_task = asyncio.create_task(http.serve(), name="http")
            await _until_started(http, http_task)
            listening.http_port = settings.http_port
        if settings.fhir_base:
            from adapter.service.forward import run_forwarder

            forwarder = asyncio.create_task(
                run_forwarder(runtime.store, settings, runtime.clock, stop), name="forwarder"
            )
        recovery = asyncio.create_task(_recover_received(runtime, stop), name="recovery")
        if settings.retention_days is not None:
            purger = asyncio.create_task(
                _purge_periodically(runtime, settings.retention_days, stop), name="retention"
            )
        if on_ready is not None:
            on_ready(listening)
        await _wait_for_stop(stop, http_task)
    finally:
        stop.set()
        if mllp is not None:
            await mllp.close()
        if http is not None and http_task is not None:
            http.should_exit = True
            await asyncio.gather(http_task, return_exceptions=True)
        if forwarder is not None:
            await _finish(forwarder, FORWARDER_GRACE)
        for task in (recovery, purger):
            if task is not None:
                await _finish(task, FORWARDER_GRACE)
        await runtime.service.drain()
        await runtime.committer.close()


def _mllp_tls(settings: Settings) -> ssl.SSLContext | None:
    """The MLLP listener's TLS context, when a certificate is configured."""
    if settings.mllp_tls_cert is None or settings.mllp_tls_key is None:
        return None
    try:
        return tls_context(
            settings.mllp_tls_cert, settings.mllp_tls_key, settings.mllp_tls_client_ca
        )
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"MLLP TLS: cannot load the certificate, key or CA: {error}") from None


RECOVERY_INTERVAL = 30.0
"""Seconds between sweeps for messages left ``received``."""
RECOVERY_AGE = timedelta(seconds=60)
"""A message still ``received`` this long after it arrived lost its outcome (a crash, or a
store fault after its MLLP ACK): the sweep processes it again."""
RECOVERY_BATCH = 500
PROBE_INTERVAL = 1.0
"""Seconds between write probes while the store is failing, so that the service sees it come
back (and completes what the fault left) without waiting for a message or a health check."""


async def _recover_received(runtime: Runtime, stop: asyncio.Event) -> None:
    """Complete messages that were stored (and maybe ACKed) but whose outcome never was.

    Those whose outcome write failed in this process are known by row: they are completed as
    soon as the store takes writes again. The age-based sweep finds the others (a crash).
    """
    committer = runtime.committer
    next_sweep = 0.0
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            if committer.failure is not None:
                await committer.probe()  # raises while the store is still failing
            unrecorded = runtime.service.take_unrecorded()
            try:
                await _complete(runtime, unrecorded, stop)
            except TransientError:
                runtime.service.unrecorded_again(unrecorded)  # the store failed again
                raise
            if loop.time() >= next_sweep:
                cutoff = runtime.clock() - RECOVERY_AGE
                await _complete(
                    runtime, await asyncio.to_thread(_abandoned, runtime.store, cutoff), stop
                )
                next_sweep = loop.time() + RECOVERY_INTERVAL
        except TransientError as error:
            log.warning("recovery waits for the store: %s", getattr(error, "cause", error.code))
        failing = committer.failure is not None
        await _first_of(
            stop, committer, PROBE_INTERVAL if failing else max(0.1, next_sweep - loop.time())
        )


async def _first_of(stop: asyncio.Event, committer: GroupCommitter, timeout: float) -> None:
    """Until asked to stop, the store recovers, or ``timeout`` seconds have passed."""
    waits = {
        asyncio.ensure_future(stop.wait()),
        asyncio.ensure_future(committer.wait_for_recovery()),
    }
    _, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _complete(
    runtime: Runtime, rows: Sequence[MessageRow | int], stop: asyncio.Event
) -> None:
    """Process again each row still ``received`` (by row, or by row id) and store its outcome."""
    service = runtime.service
    for item in rows:
        if stop.is_set():
            return
        row = (
            item
            if isinstance(item, MessageRow)
            else await asyncio.to_thread(runtime.store.get_message_row, item)
        )
        if (
            row is None
            or row.status is not MessageStatus.RECEIVED
            or row.message_format is MessageFormat.TRUNCATED
            or service.in_flight(row.row_id)
        ):
            continue  # completed meanwhile (a resend), or never to be processed
        handled = await service.reprocess(row)
        log.info("recovered: row=%d status=%s", row.row_id, handled.status.value)


PURGE_INTERVAL = 3600.0
"""Seconds between two retention purges (the first runs at start)."""


async def _purge_periodically(runtime: Runtime, days: int, stop: asyncio.Event) -> None:
    """``retention_days``: delete what is older and finished, every hour, and say what stayed."""
    while not stop.is_set():
        cutoff = runtime.clock() - timedelta(days=days)
        try:
            purged = await asyncio.to_thread(runtime.store.purge, cutoff)
        except TransientError as error:
            log.warning("retention purge skipped: %s", getattr(error, "cause", error.code))
        else:
            log.info(
                "retention purge: %d messages older than %d days deleted; kept %d unfinished"
                " (reprocess needs them), %d still forwarding and %d of open cases",
                purged.messages,
                days,
                purged.kept_unfinished,
                purged.kept_forwarding,
                purged.kept_in_open_cases,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PURGE_INTERVAL)


def _abandoned(store: Store, cutoff: datetime) -> list[MessageRow]:
    rows: list[MessageRow] = []
    for row in store.iter_messages(status=MessageStatus.RECEIVED, until=cutoff):
        rows.append(row)
        if len(rows) >= RECOVERY_BATCH:
            break
    return rows


def _http_server(runtime: Runtime) -> uvicorn.Server:
    import uvicorn

    from adapter.service.http import create_app
    from adapter.service.http_limits import admitted_protocol

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the service owns SIGTERM/SIGINT and shuts uvicorn down in its order

    settings = runtime.settings
    config = uvicorn.Config(
        create_app(runtime),
        host=settings.host,
        port=settings.http_port,
        http=admitted_protocol(settings.http_limits, body_timeout=settings.http_body_timeout),
        timeout_keep_alive=settings.http_idle_timeout,
        log_level="warning",
        log_config=None,  # uvicorn's events go through the service's handler, one line each
        access_log=False,  # query strings (?patient=...) must not reach the logs
        timeout_graceful_shutdown=10,  # a stalled upload must not hold SIGTERM forever
    )
    return _Server(config)


async def _until_started(http: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Wait until uvicorn listens; raise if it stopped instead (e.g. the port is taken)."""
    while not http.started:
        if task.done():
            task.result()  # re-raises a startup failure
            raise OSError("the HTTP server stopped during startup")
        await asyncio.sleep(0.01)


async def _wait_for_stop(stop: asyncio.Event, http_task: asyncio.Task[None] | None) -> None:
    """Until asked to stop; raises if the HTTP server ends on its own (a failure)."""
    stopping = asyncio.create_task(stop.wait())
    waiting: set[asyncio.Future[Any]] = {stopping}
    if http_task is not None:
        waiting.add(http_task)
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if http_task is not None and http_task.done() and not stop.is_set():
        http_task.result()
        raise RuntimeError("the HTTP server stopped unexpectedly")


async def _finish(task: asyncio.Task[None], grace: float) -> None:
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@contextlib.contextmanager
def _signals(stop: asyncio.Event, *, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    loop = asyncio.get_running_loop()
    handled = (signal.SIGTERM, signal.SIGINT)
    for number in handled:
        loop.add_signal_handler(number, _on_signal, stop, number)
    try:
        yield
    finally:
        for number in handled:
            loop.remove_signal_handler(number)


@contextlib.contextmanager
def _reload_signal(service: Service, enabled: bool) -> Iterator[None]:
    """SIGHUP reloads the mapping files, as a running daemon is expected to."""
    if not enabled:
        yield
        return
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[None]] = set()

    def on_hangup() -> None:
        task = loop.create_task(reload_logged(service), name="mappings-reload")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


async def reload_logged(service: Service) -> None:
    """A reload asked for by signal: there is no one to answer, so the outcome is logged."""
    try:
        await service.reload_mappings()
    except MappingFileError as error:
        # File, key and problem only: mapping files hold no patient data.
        log.error("mappings not reloaded, the old ones stay: %s", error)


def _on_signal(stop: asyncio.Event, number: int) -> None:
    log.info("shutting down on %s", signal.Signals(number).name)
    stop.set()
