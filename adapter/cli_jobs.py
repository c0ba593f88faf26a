"""``convert --jobs N``: the run's messages on N processes, every case on one of them.

Each worker makes the call ``convert`` makes in one process (``api.combined``) with a case log
of its own; ``adapter.cases.parallel`` routes the messages so that each worker holds every
message of its cases, in input order, and gives the results back in input order. The output is
byte for byte that of ``--jobs 1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapter.errors import AdapterError
from adapter.model import Classification, SourceFormat


@dataclass(frozen=True, slots=True)
class JobOptions:
    """What a worker builds its Context from (picklable)."""

    mappings: Path | None
    strict: bool
    validate: bool
    source: str | None  # the FHIR sender for input that names none (``--source``)


@dataclass(frozen=True, slots=True)
class Converted:
    """What ``convert`` writes of one message: its Bundle, or why there is none."""

    file: int  # the file's place among the inputs
    path: str
    message_id: str | None
    bundle_json: bytes | None
    error: AdapterError | None
    classifications: tuple[Classification, ...] = ()
    file_error: str | None = None  # the file could not be read: a usage error, in its turn


@dataclass(frozen=True, slots=True)
class _Job:
    file: int
    path: str
    data: bytes
    format: SourceFormat
    position: int  # in its file, for the Bundle writer's and the error lines' sake
    done: Converted | None = None  # decided before any processing (the file did not split)


def convert_jobs(
    files: list[str], options: JobOptions, jobs: int, context: Any
) -> Iterator[Converted]:
    """Every message of the files, in order, converted on ``jobs`` worker processes.

    ``context``: the run's pipeline Context, here for routing (FHIR input is read to route it).
    """
    from dataclasses import replace

    from adapter.cases.parallel import by_case
    from adapter.cases.route import route_numbers

    if options.source:
        context = replace(context, fhir_source=options.source)

    def route(job: _Job) -> frozenset[str]:
        return frozenset() if job.done else route_numbers(job.data, job.format, context)

    yield from by_case(_jobs(files), route, _start_worker, options, jobs)


def _jobs(files: list[str]) -> Iterator[_Job]:
    from adapter.api import _rejected
    from adapter.errors import MalformedMessage
    from adapter.inputs import InputFileError, read_input
    from adapter.pipeline import split_input

    for file, path in enumerate(files):
        try:
            data = read_input(path)
        except InputFileError as error:
            unread = Converted(file, path, None, None, None, (), str(error))
            yield _Job(file, path, b"", SourceFormat.HL7V2, 1, unread)
            return
        try:
            messages = split_input(data)
        except AdapterError as error:
            messages, refused = [], _rejected(data, error)
        else:
            refused = _rejected(data, MalformedMessage("no message in the input"))
        if not messages:
            done = converted(file, path, refused)
            yield _Job(file, path, data, refused.format, 1, done)
        for message in messages:
            yield _Job(file, path, message.data, message.format, message.position)


def converted(file: int, path: str, result: Any) -> Converted:
    """The parts of an ``api.Result`` the command writes (the Bundle as JSON only)."""
    return Converted(
        file, path, result.message_id, result.bundle_json, result.error, result.classifications
    )


def _context(options: JobOptions) -> Any:
    from dataclasses import replace

    from adapter.config import Settings
    from adapter.pipeline import Context

    settings = Settings(mappings_dir=options.mappings) if options.mappings else Settings()
    context = Context.from_settings(settings, strict=options.strict, validate=options.validate)
    return replace(context, fhir_source=options.source) if options.source else context


def _start_worker(options: JobOptions) -> Any:
    """A worker's handler: its Context, built once."""
    from adapter.api import combined
    from adapter.pipeline import RawMessage

    context = _context(options)

    def handle(job: _Job, cases: Any, place: int) -> Converted:
        if job.done is not None:
            return job.done
        message = RawMessage(job.data, job.format, job.position)
        result = combined(message, context, cases, options.source, place)
        return converted(job.file, job.path, result)

    return handle
