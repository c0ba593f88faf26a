"""``her2-adapter``: the command line.

Exit codes: 0 all went well; 1 some input was rejected (``convert``: one stderr line each, with
file, control id, error code and reason; an empty input is rejected too) or, for ``replay`` and
``diff``, something changed; 2 usage errors, one stderr line ``her2-adapter: ...``: a file that
cannot be read (missing, a permission, an archive to unpack), an ``--out`` that cannot be written,
an option that cannot run. ``reprocess`` reports its counts and exits 0: rejections are outcomes
it records. docs/cli.md lists every line a user may see.
"""

# No ``from __future__ import annotations`` here: typer reads every command's signature at each
# start, and string annotations would be evaluated again each time (6 ms of convert's start).

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from adapter import __version__
from adapter.cli_help import App

if TYPE_CHECKING:
    from adapter.api import Converter
    from adapter.cli_jobs import Converted
    from adapter.config import Settings
    from adapter.store import MessageStatus

app = App(
    name="her2-adapter",
    help="HER2 / ER / PgR results from HL7 v2 or FHIR to guideline-classified FHIR R4 Bundles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
mappings_app = App(help="Mapping files: check them before they go live.", no_args_is_help=True)
app.add_typer(mappings_app, name="mappings")
case_app = App(
    help="Cases: every result of one specimen, over time (docs/cases.md).", no_args_is_help=True
)
app.add_typer(case_app, name="case")

EXIT_REJECTED = 1
EXIT_USAGE = 2

MappingsOption = Annotated[
    Path | None,
    typer.Option(
        "--mappings", metavar="DIR", help="Mapping directory (default: the shipped mappings/)."
    ),
]


StrictOption = Annotated[
    bool, typer.Option("--strict", help="Check HL7 v2 structure with hl7apy first.")
]
ValidateOption = Annotated[
    bool, typer.Option("--validate", help="Validate each Bundle with the FHIR R4B models.")
]
ProgressOption = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal)."),
]


def _log_level_option(default: str) -> object:
    return typer.Option(
        "--log-level",
        envvar="HER2_LOG_LEVEL",
        metavar="LEVEL",
        help=f"debug, info, warning or error (default {default}).",
        show_default=False,
    )


LogFormatOption = Annotated[
    str,
    typer.Option(
        "--log-format",
        envvar="HER2_LOG_FORMAT",
        metavar="FORMAT",
        help="Log lines as text or json, one event a line (default text).",
        show_default=False,
    ),
]
QuietLogLevel = Annotated[str, _log_level_option("warning")]
ServiceLogLevel = Annotated[str, _log_level_option("info")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"her2-adapter {__version__}")
        raise typer.Exit


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """HER2 / ER / PgR results from HL7 v2 or FHIR to guideline-classified FHIR R4 Bundles."""


def _usage_error(message: str) -> NoReturn:
    typer.echo(f"her2-adapter: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _configure_logging(level: str, log_format: str) -> None:
    from adapter import logs

    try:
        logs.configure(level.lower(), log_format.lower())
    except ValueError as error:
        _usage_error(str(error))


@app.command()
def convert(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT",
            help="Files, folders or globs to convert; '-' reads stdin. gzip, bzip2, xz are read.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="Write one <message-id>.json per message here."),
    ] = None,
    strict: StrictOption = False,
    validate: ValidateOption = False,
    mappings: MappingsOption = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            metavar="URL",
            help="FHIR sender (a sender file's fhir_sources) when the input names none.",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="URL",
            help="Combine with the cases this store holds from earlier runs (or a service), and"
            " keep the messages there, as the service does.",
        ),
    ] = None,
    summary: Annotated[
        bool,
        typer.Option(
            "--summary", help="Counts on stderr: HER2 categories, HR status, rejections by code."
        ),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            min=1,
            help="Worker processes; every case on one of them, output as with one.",
        ),
    ] = 1,
    progress: ProgressOption = None,
    log_level: QuietLogLevel = "warning",
    log_format: LogFormatOption = "text",
) -> None:
    """Convert HL7 v2 ORU^R01 or FHIR input to FHIR R4 transaction Bundles (NDJSON on stdout).

    The messages of one run combine into cases in the order given (docs/cases.md).
    """
    if jobs > 1 and store is not None:
        _usage_error("--jobs and --store do not combine: the store's cases have one writer")
    _configure_logging(log_level, log_format)
    with _long_lived_imports():
        from adapter.api import Converter
        from adapter.errors import AdapterError

        try:
            # combine: the messages of the run form cases, in the order given
            converter = Converter(mappings=mappings, strict=strict, validate=validate, combine=True)
        except AdapterError as error:
            _usage_error(str(error))
    from adapter.cli_progress import Reporter
    from adapter.inputs import InputFileError, expand_paths

    try:
        files = list(expand_paths(paths))  # every name checked before anything is written
    except InputFileError as error:
        _usage_error(str(error))
    if store is not None:
        if _convert_into_store(files, converter, store, source, out):
            raise typer.Exit(EXIT_REJECTED)
        return
    writer = _BundleWriter(out)
    counts = None
    if summary:
        from adapter.summary import Summary

        counts = Summary()
    rejected = 0
    if jobs > 1:
        from adapter.cli_jobs import JobOptions, convert_jobs

        options = JobOptions(mappings, strict, validate, source)
        results = convert_jobs(files, options, jobs, converter.context)
    else:
        results = _convert_here(files, converter, source)
    with Reporter(len(files), progress) as reporter:
        current = 0
        for result in results:
            if result.file_error is not None:
                _usage_error(result.file_error)
            for _ in range(current, result.file):
                reporter.advance_file()
            current = result.file
            if counts is not None:
                counts.add(result)
            # A value not understood comes with a Bundle that says so: both are written.
            if result.bundle_json is not None:
                writer.write(result.bundle_json, result.message_id)
            if result.error is not None or result.bundle_json is None:
                reporter.line(_rejection_line(result.path, result))
                rejected += 1
            reporter.advance_message()
        for _ in range(current, len(files)):
            reporter.advance_file()
        writer.close()
        if counts is not None:
            for line in counts.lines():
                reporter.line(line)
    if rejected:
        raise typer.Exit(EXIT_REJECTED)


def _convert_here(
    files: list[str], converter: "Converter", source: str | None
) -> "Iterator[Converted]":
    """Every message of the files, in order, converted in this process."""
    from adapter.cli_jobs import Converted, converted
    from adapter.inputs import InputFileError, read_input

    for file, path in enumerate(files):
        try:
            data = read_input(path)
        except InputFileError as error:
            yield Converted(file, path, None, None, None, (), str(error))
            return
        for result in converter.convert_all(data, sender=source):
            yield converted(file, path, result)


def _convert_into_store(
    files: list[str],
    converter: "Converter",
    store_url: str,
    source: str | None,
    out: Path | None,
) -> int:
    """``convert --store``: each message through the service's own handler; the rejections."""
    import asyncio

    from adapter.errors import AdapterError
    from adapter.inputs import InputFileError, read_input
    from adapter.pipeline import split_input
    from adapter.service.handler import Service
    from adapter.service.server import utc_now
    from adapter.store import GroupCommitter, Transport, open_store

    writer = _BundleWriter(out)

    async def run() -> int:
        rejected = 0
        with open_store(store_url) as opened:
            async with GroupCommitter(opened) as committer:
                service = Service(converter.context, committer, utc_now)
                for path in files:
                    try:
                        messages = split_input(read_input(path))
                    except InputFileError as error:
                        _usage_error(str(error))
                    except AdapterError as error:
                        typer.echo(f"{path}: -: {error.code}: {error.reason}", err=True)
                        rejected += 1
                        continue
                    for message in messages:
                        handled = await service.handle(
                            message.data,
                            Transport.CLI,
                            format_hint=message.format,
                            fhir_source=source,
                        )
                        bundle = handled.bundle_json
                        if bundle is None and handled.duplicate:  # converted before: as stored
                            row = opened.get_message_row(handled.receipt.row_id)
                            bundle = row.bundle if row is not None else None
                        if bundle is not None:
                            writer.write(bundle, handled.message_id)
                        if handled.error_code is not None or bundle is None:
                            reason = handled.error.reason if handled.error else "not converted"
                            typer.echo(
                                f"{path}: {handled.message_id or '-'}: {handled.error_code}: "
                                f"{reason}",
                                err=True,
                            )
                            rejected += 1
        writer.close()
        return rejected

    try:
        return asyncio.run(run())
    except AdapterError as error:  # the store cannot be opened or written
        _usage_error(str(error))


@contextmanager
def _long_lived_imports() -> Iterator[None]:
    """Load with the cyclic garbage collector paused, then leave what was loaded out of it.

    By then some 35,000 objects live as long as the process (typer, pydantic schemas, the
    mappings); collections while the pipeline loads, and each one while messages are converted,
    would only walk them again: 25 ms of ``convert``'s start, and about a tenth of the time per
    message. Objects made afterwards are collected as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _rejection_line(path: str, result: "Converted") -> str:
    """``file: control-id: CODE: reason [at location]`` (docs/errors.md)."""
    error = result.error
    code = getattr(error, "code", "INTERNAL")
    reason = getattr(error, "reason", str(error))
    location = getattr(error, "location", None)
    where = f" at {location}" if location else ""
    return f"{path}: {result.message_id or '-'}: {code}: {reason}{where}"


class _BundleWriter:
    """Bundles to stdout (NDJSON) or a file each under ``--out``; write errors are usage errors."""

    def __init__(self, out: Path | None) -> None:
        self.out = out
        self.written: set[str] = set()
        if out is None:
            return
        if out.exists() and not out.is_dir():
            _usage_error(f"--out {out}: not a folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            _usage_error(f"--out {out}: cannot create the folder: {error.strerror or error}")

    def write(self, bundle_json: bytes, message_id: str | None) -> None:
        if self.out is None:
            try:
                sys.stdout.buffer.write(bundle_json + b"\n")
            except OSError as error:
                self._stdout_failed(error)
            return
        name = _file_name(message_id or "message")
        stem, number = name, 1
        while name in self.written:  # two messages with one control id still get two files
            number += 1
            name = f"{stem}.{number}"
        self.written.add(name)
        target = self.out / f"{name}.json"
        try:
            target.write_bytes(bundle_json + b"\n")
        except OSError as error:
            _usage_error(f"cannot write {target}: {error.strerror or error}")

    def close(self) -> None:
        if self.out is None:
            try:
                sys.stdout.buffer.flush()
            except OSError as error:
                self._stdout_failed(error)

    @staticmethod
    def _stdout_failed(error: OSError) -> NoReturn:
        # As the Python docs advise for a closed pipe: point stdout at /dev/null, so that the
        # flush at exit does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        _usage_error(f"cannot write to stdout: {error.strerror or error}")


def _file_name(message_id: str) -> str:
    """A control id as a safe file name (control ids may hold any character)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in message_id).strip(".")
    return safe or "message"


@mappings_app.command("suggest")
def mappings_suggest(
    sources: Annotated[
        list[str], typer.Argument(help="Message files or folders (HL7 v2, FHIR), or - for stdin.")
    ],
    mappings: MappingsOption = None,
) -> None:
    """List every code, display and value the mappings cannot place, with a TOML snippet each."""
    from adapter.config import Settings
    from adapter.errors import AdapterError
    from adapter.inputs import InputFileError, expand_paths, read_input
    from adapter.onboarding import Suggestions
    from adapter.pipeline import Context, process, split_input

    try:
        settings = Settings(mappings_dir=mappings) if mappings else Settings()
        context = Context.from_settings(settings)
    except AdapterError as error:
        _usage_error(str(error))
    suggestions = Suggestions()
    for path in expand_paths(sources):
        try:
            messages = split_input(read_input(path))
        except (InputFileError, AdapterError) as error:
            _usage_error(str(error))
        for message in messages:
            outcome = process(message, context)
            suggestions.add(outcome, f"{path}#{message.position}", context.mappings.default)
    typer.echo(suggestions.render(), nl=False)


@mappings_app.command("check")
def mappings_check(
    directory: Annotated[
        Path | None, typer.Argument(help="Mapping directory (default: the shipped mappings/).")
    ] = None,
) -> None:
    """Validate every mapping file; name the file, key and problem of the first bad one."""
    from adapter.config import default_mappings_dir
    from adapter.errors import MappingFileError
    from adapter.mapping import Mappings

    target = directory or default_mappings_dir()
    if not target.is_dir():
        _usage_error(f"cannot check {target}: no such folder")
    try:
        loaded = Mappings.load(target)
    except MappingFileError as error:
        typer.echo(f"{error.location}: {error.reason}", err=True)
        raise typer.Exit(EXIT_REJECTED) from None
    for name in loaded.files:
        typer.echo(f"ok  {target / name}")
    for warning in loaded.warnings():
        typer.echo(f"warn  {warning}")


@app.command()
def serve(
    mllp_port: Annotated[
        int | None, typer.Option("--mllp-port", help="MLLP port (default 2575; 0: off).")
    ] = None,
    http_port: Annotated[
        int | None, typer.Option("--http-port", help="HTTP API port (default 8080; 0: off).")
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Bind address (default 127.0.0.1).")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store", help="sqlite:///path or postgresql://... (default ./her2-adapter.db)."
        ),
    ] = None,
    fhir_base: Annotated[
        str | None, typer.Option("--fhir-base", help="Forward each Bundle to this FHIR server.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file with the same keys as HER2_*.")
    ] = None,
    api_token: Annotated[
        str | None,
        typer.Option(
            "--api-token",
            help="Bearer token the HTTP API requires. Avoid: a command line is readable by every"
            " user; use --api-token-file or HER2_API_TOKEN.",
        ),
    ] = None,
    api_token_file: Annotated[
        Path | None,
        typer.Option("--api-token-file", help="A file (mode 0600) holding the bearer token."),
    ] = None,
    mappings: MappingsOption = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Worker processes for the pipeline (default: one per CPU but one; 0: none).",
        ),
    ] = None,
    mllp_tls_cert: Annotated[
        Path | None,
        typer.Option("--mllp-tls-cert", help="PEM certificate chain: MLLP over TLS."),
    ] = None,
    mllp_tls_key: Annotated[
        Path | None, typer.Option("--mllp-tls-key", help="PEM private key of --mllp-tls-cert.")
    ] = None,
    mllp_tls_client_ca: Annotated[
        Path | None,
        typer.Option(
            "--mllp-tls-client-ca",
            help="PEM CA file: MLLP clients must present a certificate it signed.",
        ),
    ] = None,
    log_level: ServiceLogLevel = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Receive HL7 v2 over MLLP and HL7 v2 / FHIR over HTTP; store, classify, answer."""
    from adapter.errors import AdapterError
    from adapter.service.server import run as run_service

    settings = _service_settings(
        config,
        mllp_port=mllp_port,
        http_port=http_port,
        host=host,
        store=store,
        fhir_base=fhir_base,
        api_token=api_token,
        api_token_file=api_token_file,
        mappings_dir=mappings,
        workers=workers,
        mllp_tls_cert=mllp_tls_cert,
        mllp_tls_key=mllp_tls_key,
        mllp_tls_client_ca=mllp_tls_client_ca,
    )
    _configure_logging(log_level, log_format)
    if api_token is not None:
        import logging

        logging.getLogger("her2_adapter.cli").warning(
            "--api-token puts the token where every user of this machine can read it (ps,"
            " /proc): use --api-token-file or HER2_API_TOKEN"
        )
    try:
        run_service(settings, on_ready=lambda where: typer.echo(where.describe()))
    except AdapterError as error:
        _usage_error(str(error))
    except OSError as error:  # e.g. the port is taken
        _usage_error(f"cannot listen: {error.strerror or error}")


@app.command()
def reprocess(
    store: Annotated[
        str | None, typer.Option("--store", help="Store URL (default: as for serve).")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only messages with this status: received, failed, rejected or processed"
            " (default: received and failed).",
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Received at or after (ISO 8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Received before (ISO 8601).")
    ] = None,
    sender: Annotated[str | None, typer.Option("--sender", help="Only this sender.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file with the same keys as HER2_*.")
    ] = None,
    mappings: MappingsOption = None,
    log_level: ServiceLogLevel = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Run stored messages through the current mappings again and record the new outcomes."""
    _configure_logging(log_level, log_format)
    import asyncio

    from adapter.errors import AdapterError
    from adapter.store import MessageStatus

    settings = _service_settings(config, store=store, mappings_dir=mappings)
    try:
        statuses = (
            [MessageStatus(status)] if status else [MessageStatus.RECEIVED, MessageStatus.FAILED]
        )
    except ValueError:
        _usage_error(f"unknown status {status!r}")
    window = (_iso_time("--since", since), _iso_time("--until", until))
    try:
        counts = asyncio.run(_reprocess(settings, statuses, window, sender))
    except AdapterError as error:
        _usage_error(str(error))
    summary = ", ".join(f"{name} {number}" for name, number in sorted(counts.items()))
    typer.echo(f"reprocessed {sum(counts.values()) - counts.get('skipped', 0)}: {summary}")


@app.command()
def purge(
    store: Annotated[
        str | None, typer.Option("--store", help="Store URL (default: as for serve).")
    ] = None,
    older_than: Annotated[
        int | None,
        typer.Option(
            "--older-than",
            min=1,
            help="Days: purge what was received longer ago (default: retention_days).",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file with the same keys as HER2_*.")
    ] = None,
    log_level: ServiceLogLevel = "info",
    log_format: LogFormatOption = "text",
) -> None:
    """Delete finished messages older than the retention; keep unfinished and forwarding ones."""
    from datetime import timedelta

    from adapter.errors import AdapterError
    from adapter.store import open_store

    _configure_logging(log_level, log_format)
    settings = _service_settings(config, store=store)
    days = older_than if older_than is not None else settings.retention_days
    if days is None:
        _usage_error("give --older-than DAYS, or set retention_days (HER2_RETENTION_DAYS)")
    cutoff = datetime.now(UTC) - timedelta(days=days)
    try:
        with open_store(settings.store) as opened:
            purged = opened.purge(cutoff)
    except AdapterError as error:
        _usage_error(str(error))
    typer.echo(
        f"purged {purged.messages} messages received before {cutoff:%Y-%m-%d %H:%M} UTC;"
        f" kept {purged.kept_unfinished} unfinished (reprocess needs them),"
        f" {purged.kept_forwarding} still forwarding"
        f" and {purged.kept_in_open_cases} of open cases"
    )


@case_app.command("show")
def case_show(
    case_id: Annotated[
        str | None, typer.Argument(help="A case id (from a Bundle's report).")
    ] = None,
    number: Annotated[
        str | None, typer.Option("--number", help="Cases holding this order or specimen number.")
    ] = None,
    message: Annotated[
        str | None, typer.Option("--message", help="Cases a message (control id) touched.")
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="Store URL (default: as for serve).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per case.")] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file with the same keys as HER2_*.")
    ] = None,
) -> None:
    """One case over time: which message brought which results, how the category changed."""
    import orjson

    from adapter.errors import AdapterError
    from adapter.store import open_store
    from adapter.store.cases import timeline_json

    if sum(given is not None for given in (case_id, number, message)) != 1:
        _usage_error("give a case id, --number or --message")
    settings = _service_settings(config, store=store)
    try:
        with open_store(settings.store) as opened:
            ids = [case_id] if case_id else opened.find_cases(number=number, message_id=message)
            shown = [timeline_json(i, events) for i in ids if (events := opened.case_timeline(i))]
    except AdapterError as error:
        _usage_error(str(error))
    if not shown:
        typer.echo("her2-adapter: no such case", err=True)
        raise typer.Exit(EXIT_REJECTED)
    for case in shown:
        if as_json:
            typer.echo(orjson.dumps(case).decode())
        else:
            typer.echo(_case_text(case))


def _case_text(case: dict[str, object]) -> str:
    lines = [
        f"case {case['case']}  report DiagnosticReport/{case['report']}  sender {case['sender']}"
    ]
    versions = case["versions"]
    assert isinstance(versions, list)
    for version in versions:
        changed = "; ".join(
            f"{kind} {', '.join(item['analyte'] for item in version[kind])}"
            for kind in ("added", "replaced", "removed")
            if version[kind]
        )
        lines.append(
            f"  v{version['version']}  {version['received_at']}  {version['transport']:<5}"
            f"  {version['message_id']}  {version['status']}  "
            f"{version['category'] or 'withdrawn'}  {changed}"
        )
    return "\n".join(lines)


def _service_settings(config: Path | None, **flags: object) -> "Settings":
    """Flags over ``HER2_*`` environment variables over the config file over defaults."""
    from pydantic import ValidationError

    from adapter.config import Settings

    given = {name: value for name, value in flags.items() if value is not None}
    if config is not None and not config.is_file():
        _usage_error(f"no config file {config}")
    try:
        return Settings.load(config, **given)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
            for issue in error.errors()
        )
        _usage_error(f"invalid settings: {problems}")


def _iso_time(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        _usage_error(f"{option}: not an ISO 8601 time: {value!r}")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _reprocess(
    settings: "Settings",
    statuses: "list[MessageStatus]",
    window: tuple[datetime | None, datetime | None],
    sender: str | None,
) -> dict[str, int]:
    from adapter.pipeline import Context
    from adapter.service.handler import Service
    from adapter.service.server import utc_now
    from adapter.store import GroupCommitter, MessageFormat, open_store

    context = Context.from_settings(settings)
    counts: dict[str, int] = {}
    with open_store(settings.store) as store:
        async with GroupCommitter(store) as committer:
            service = Service(context, committer, utc_now, forward=settings.fhir_base is not None)
            for status in statuses:
                rows = store.iter_messages(
                    status=status, since=window[0], until=window[1], sender=sender
                )
                for row in rows:
                    if row.message_format is MessageFormat.TRUNCATED:
                        counts["skipped"] = counts.get("skipped", 0) + 1  # only a prefix is kept
                        continue
                    handled = await service.reprocess(row)
                    counts[handled.status.value] = counts.get(handled.status.value, 0) + 1
    return counts


@app.command()
def replay(
    sources: Annotated[
        list[str] | None,
        typer.Argument(help="HL7 v2 / FHIR files, folders or globs (or use --from-store)."),
    ] = None,
    expected: Annotated[
        Path, typer.Option("--expected", help="One expected <key>.json per message.")
    ] = Path("expected"),
    record: Annotated[
        bool, typer.Option("--record", help="Write expected files for new or changed messages.")
    ] = False,
    from_store: Annotated[
        str | None, typer.Option("--from-store", help="Replay stored messages (store URL).")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Stored at or after (ISO 8601).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Stored before (ISO 8601).")] = None,
    sender: Annotated[str | None, typer.Option("--sender", help="Only this sender.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="Only stored messages with this status.")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", help="Replay to mllp://host:port or http://host:port."),
    ] = None,
    rate: Annotated[
        str | None, typer.Option("--rate", help="At most N messages a second: 50/s.")
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Connections / requests in flight (--target).")
    ] = 1,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for each answer (--target).")
    ] = 30.0,
    jobs: Annotated[
        int, typer.Option("--jobs", help="Worker processes for in-process replay.")
    ] = 1,
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="Key field instead of MSH-10 (PID-3.1) or FHIR id (a.b)."),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option("--ignore", help="Also ignore this path (DiagnosticReport.issued)."),
    ] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write a JUnit XML report.")] = None,
    json_report: Annotated[Path | None, typer.Option("--json", help="Write a JSON report.")] = None,
    html_report: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report.")
    ] = None,
    progress: ProgressOption = None,
    strict: StrictOption = False,
    validate: ValidateOption = False,
    mappings: MappingsOption = None,
    log_level: QuietLogLevel = "warning",
    log_format: LogFormatOption = "text",
) -> None:
    """Replay traffic and report which outcomes changed, and why (exit 1 if any did)."""
    _configure_logging(log_level, log_format)
    from rich.console import Console

    from adapter.errors import ConfigError
    from adapter.replay.run import (
        ReplayRequest,
        StoreFilter,
        parse_rate,
        parse_time,
    )
    from adapter.replay.run import (
        replay as run_replay,
    )

    try:
        window = (parse_time(since, "--since"), parse_time(until, "--until"))
        store = StoreFilter(from_store, status, *window, sender) if from_store else None
        request = ReplayRequest(
            tuple(sources or ()),
            expected,
            record=record,
            store=store,
            target=target,
            rate=parse_rate(rate),
            concurrency=concurrency,
            timeout=timeout,
            jobs=jobs,
            keys=tuple(key or ()),
            ignore=tuple(ignore or ()),
            mappings=mappings,
            strict=strict,
            validate=validate,
            junit=junit,
            json=json_report,
            html=html_report,
            progress=progress,
        )
        code = run_replay(request, Console())
    except (ConfigError, ValueError) as error:
        _usage_error(str(error))
    except FileExistsError as error:  # a report's or expected file's folder is a file
        _usage_error(f"cannot write into {error.filename}: it is a file, not a folder")
    except OSError as error:  # reads go through adapter.inputs: this is an expected file or report
        _usage_error(f"cannot write {error.filename or 'a report'}: {error.strerror or error}")
    raise typer.Exit(code)


@app.command()
def audit(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="HL7 v2 / FHIR message files, folders or globs to classify and audit, or the"
            " adapter's own Bundles (a receiver's FHIR export of them) to audit as they are"
            " (or --from-store)."
        ),
    ] = None,
    from_store: Annotated[
        str | None, typer.Option("--from-store", help="Audit the reports of this store (URL).")
    ] = None,
    period: Annotated[
        str, typer.Option("--period", help="Count by 'week' (ISO weeks) or 'month'.")
    ] = "month",
    sender: Annotated[str | None, typer.Option("--sender", help="Only this sender.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Reports of this day or later (YYYY-MM-DD).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Reports before this day (YYYY-MM-DD).")
    ] = None,
    min_reports: Annotated[
        int,
        typer.Option("--min-reports", help="Fewer reports in a period show counts, no shares."),
    ] = 10,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Flag IHC drift when the test's p is below this.")
    ] = 0.001,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the figures as JSON ('-': stdout).")
    ] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report.")
    ] = None,
    mappings: MappingsOption = None,
) -> None:
    """Lab QA figures per sender and period: categories, IHC scores and drift, work-up,
    disagreements and data quality (counts and rates only, no patient data)."""
    from datetime import date

    import orjson
    from rich.console import Console

    from adapter.audit.figures import AuditOptions, Period, build_audit
    from adapter.audit.render_html import render_html
    from adapter.audit.render_text import print_audit
    from adapter.audit.sources import from_files
    from adapter.audit.sources import from_store as store_data
    from adapter.errors import AdapterError
    from adapter.inputs import InputFileError
    from adapter.store import open_store

    if bool(paths) == bool(from_store):
        _usage_error("audit: give either files or --from-store URL")

    def day(option: str, value: str | None) -> date | None:
        try:
            return date.fromisoformat(value) if value else None
        except ValueError:
            _usage_error(f"{option}: not a day (YYYY-MM-DD): {value!r}")

    try:
        options = AuditOptions(
            Period(period), min_reports, alpha, sender, day("--since", since), day("--until", until)
        )
    except ValueError as error:
        _usage_error(f"audit: {error}")
    try:
        if from_store:
            with open_store(from_store) as store:
                data = store_data(store, sender=sender)
        else:
            data = from_files(paths or [], mappings)
    except (AdapterError, InputFileError) as error:
        _usage_error(str(error))
    figures = build_audit(
        data.reports, data.unprocessed, options, source="store" if from_store else "files"
    )
    if json_out is not None:
        text = orjson.dumps(figures, option=orjson.OPT_INDENT_2) + b"\n"
        if str(json_out) == "-":
            sys.stdout.buffer.write(text)
        else:
            json_out.write_bytes(text)
    if html_out is not None:
        html_out.write_text(render_html(figures), encoding="utf-8")
    if json_out is None or str(json_out) != "-":
        print_audit(figures, Console())


@app.command()
def diff(
    a: Annotated[Path, typer.Argument(help="A Bundle (JSON) or an HL7 v2 message.")],
    b: Annotated[Path, typer.Argument(help="The same kind of file to compare with.")],
    ignore: Annotated[
        list[str] | None,
        typer.Option("--ignore", help="Also ignore this path or HL7 field (MSH-7)."),
    ] = None,
) -> None:
    """Field-level differences between two Bundles or two HL7 v2 messages (exit 1 if any)."""
    from adapter.errors import ConfigError
    from adapter.replay.run import diff_files

    try:
        lines = diff_files(a, b, tuple(ignore or ()))
    except (ConfigError, ValueError) as error:
        _usage_error(str(error))
    for line in lines:
        typer.echo(line)
    raise typer.Exit(1 if lines else 0)
