"""``her2-adapter replay`` and ``her2-adapter diff`` behind the command line's option parsing."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console

from adapter.errors import AdapterError
from adapter.inputs import expand_paths
from adapter.model import SourceFormat
from adapter.pipeline import detect_format
from adapter.replay.collect import Collector, Summary, collect
from adapter.replay.diff import DEFAULT_IGNORE, diff_json, load_json
from adapter.replay.expected import ExpectedDir, Observed
from adapter.replay.report import print_summary, progress_bar, write_html, write_json, write_junit
from adapter.replay.sources import (
    KeySpec,
    SourceMessage,
    UsageError,
    file_messages,
    store_messages,
)
from adapter.replay.targets import EngineOptions, HttpClient, MllpTarget, in_process, paced


@dataclass(frozen=True)
class StoreFilter:
    url: str
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    sender: str | None = None


@dataclass(frozen=True)
class ReplayRequest:
    sources: tuple[str, ...]
    expected: Path
    record: bool = False
    store: StoreFilter | None = None
    target: str | None = None
    rate: float | None = None
    concurrency: int = 1
    timeout: float = 30.0
    jobs: int = 1
    keys: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    mappings: Path | None = None
    strict: bool = False
    validate: bool = False
    junit: Path | None = None
    json: Path | None = None
    html: Path | None = None
    progress: bool | None = None  # None: when stderr is a terminal


def replay(request: ReplayRequest, console: Console) -> int:
    """Runs a replay, prints and writes its reports; returns the exit code (0 or 1).

    Raises UsageError (a ValueError) or ConfigError for options that cannot run (the CLI exits 2).
    """
    if bool(request.sources) == bool(request.store):
        raise UsageError("give SOURCE files or --from-store, not both and not neither")
    if request.concurrency < 1 or request.jobs < 1:
        raise UsageError("--concurrency and --jobs must be at least 1")
    key = KeySpec.parse(request.keys)
    messages = _messages(request)
    expected = ExpectedDir(request.expected)
    show = request.progress if request.progress is not None else sys.stderr.isatty()
    with progress_bar(Console(stderr=True), shown=show) as bar:
        task = bar.add_task("replay", total=expected.count() or None)
        collector = Collector(
            expected,
            record=request.record,
            ignore=(*DEFAULT_IGNORE, *request.ignore),
            on_result=lambda _: bar.advance(task),
        )
        summary = _run(request, messages, key, collector)
    print_summary(summary, console)
    for path, write in ((request.junit, write_junit), (request.json, write_json)):
        if path is not None:
            write(summary, path)
    if request.html is not None:
        write_html(summary, request.html)
    return summary.exit_code


def _messages(request: ReplayRequest) -> Iterator[SourceMessage]:
    if request.store is not None:
        f = request.store
        return store_messages(f.url, status=f.status, since=f.since, until=f.until, sender=f.sender)
    paths = list(expand_paths(request.sources))  # names only: a missing SOURCE fails up front
    return file_messages(paths)


def _run(
    request: ReplayRequest, messages: Iterator[SourceMessage], key: KeySpec, collector: Collector
) -> Summary:
    if request.target is None:
        options = EngineOptions(request.mappings, request.strict, request.validate, key)
        return collect(in_process(messages, options, request.jobs), collector)
    target = urlsplit(request.target)
    if target.scheme not in ("mllp", "http", "https") or not target.hostname:
        raise UsageError(f"--target {request.target!r}: use mllp://host:port or http://host:port")
    if target.scheme == "mllp" and target.port is None:
        raise UsageError("--target mllp:// needs a port")
    asyncio.run(_run_target(request, messages, key, collector))
    return collector.finish()


async def _run_target(
    request: ReplayRequest, messages: Iterator[SourceMessage], key: KeySpec, collector: Collector
) -> None:
    target = urlsplit(request.target or "")
    client: MllpTarget | HttpClient
    if target.scheme == "mllp":
        client = MllpTarget(target.hostname or "", target.port or 0, request.timeout)
    else:
        client = HttpClient(request.target or "", request.timeout, request.concurrency)

    def add(message: SourceMessage, message_key: str | None, observed: Observed) -> None:
        collector.add(message, message_key, observed)

    try:
        await paced(
            messages,
            client.send,
            key,
            concurrency=request.concurrency,
            rate=request.rate,
            on_result=add,
        )
    finally:
        await client.close()


def parse_rate(text: str | None) -> float | None:
    """``50``, ``50/s`` or ``3000/min`` -> messages per second."""
    if text is None:
        return None
    number, _, unit = text.strip().partition("/")
    per = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0}.get(unit.strip().lower())
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if per is None or value <= 0:
        raise UsageError(f"--rate {text!r}: give messages per second, e.g. 50/s")
    return value / per


def parse_time(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 time; one without a zone is UTC, as for ``reprocess``."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# diff A B
# --------------------------------------------------------------------------------------------


def diff_files(a: Path, b: Path, ignore: Sequence[str]) -> list[str]:
    """The differences between two Bundles (FHIR JSON) or two HL7 v2 messages."""
    data_a, data_b = _read(a), _read(b)
    kind_a, kind_b = detect_format(data_a), detect_format(data_b)
    if kind_a is not kind_b:
        raise UsageError(f"{a} is {kind_a.value} but {b} is {kind_b.value}")
    if kind_a is SourceFormat.FHIR:
        try:
            before, after = load_json(data_a), load_json(data_b)
        except ValueError as error:
            raise UsageError(f"not JSON: {error}") from None
        return diff_json(before, after, (*DEFAULT_IGNORE, *ignore)).lines()
    from adapter.replay.diff_hl7 import diff_messages, parse

    try:
        return [str(c) for c in diff_messages(parse(data_a), parse(data_b), ignore)]
    except (AdapterError, ValueError) as error:
        raise UsageError(str(error)) from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
