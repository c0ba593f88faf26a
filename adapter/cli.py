"""``her2-adapter``: the command line.

Exit codes are the same for every command: 0 all went well, 1 some input was rejected (one
stderr line each: file, control id, error code, reason), 2 usage errors (typer's own).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from adapter import __version__

app = typer.Typer(
    name="her2-adapter",
    help="HER2 / ER / PgR results from HL7 v2 or FHIR to guideline-classified FHIR R4 Bundles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
mappings_app = typer.Typer(
    help="Mapping files: check them before they go live.", no_args_is_help=True
)
app.add_typer(mappings_app, name="mappings")

EXIT_REJECTED = 1
EXIT_USAGE = 2

MappingsOption = Annotated[
    Path | None,
    typer.Option("--mappings", help="Mapping directory (default: the shipped mappings/)."),
]


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


@app.command()
def convert(
    paths: Annotated[list[str], typer.Argument(help="Files to convert; '-' reads stdin.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write one <message-id>.json per message here.")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Check HL7 v2 structure with hl7apy first.")
    ] = False,
    validate: Annotated[
        bool, typer.Option("--validate", help="Validate each Bundle with the FHIR R4B models.")
    ] = False,
    mappings: MappingsOption = None,
) -> None:
    """Convert HL7 v2 ORU^R01 or FHIR input to FHIR R4 transaction Bundles (NDJSON on stdout)."""
    from adapter.config import Settings
    from adapter.errors import AdapterError
    from adapter.pipeline import Context, Outcome, process, split_input

    try:
        settings = Settings(mappings_dir=mappings) if mappings else Settings()
        context = Context.from_settings(settings, strict=strict, validate=validate)
    except AdapterError as error:
        _usage_error(str(error))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    rejected = 0
    for path in paths:
        data = _read_input(path)
        try:
            messages = split_input(data)
        except AdapterError as error:
            _reject(path, None, error)
            rejected += 1
            continue
        for message in messages:
            outcome: Outcome = process(message, context)
            if outcome.error is not None or outcome.bundle_json is None:
                _reject(path, outcome.message_id, outcome.error)
                rejected += 1
                continue
            _write(outcome.bundle_json, outcome.message_id, out, written)
    if rejected:
        raise typer.Exit(EXIT_REJECTED)


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as error:
        _usage_error(f"cannot read {path}: {error.strerror or error}")


def _reject(path: str, message_id: str | None, error: object) -> None:
    code = getattr(error, "code", "INTERNAL")
    reason = getattr(error, "reason", str(error))
    location = getattr(error, "location", None)
    where = f" at {location}" if location else ""
    typer.echo(f"{path}: {message_id or '-'}: {code}: {reason}{where}", err=True)


def _write(bundle_json: bytes, message_id: str | None, out: Path | None, written: set[str]) -> None:
    if out is None:
        sys.stdout.buffer.write(bundle_json + b"\n")
        return
    name = _file_name(message_id or "message")
    stem, number = name, 1
    while name in written:  # two messages with one control id still get two files
        number += 1
        name = f"{stem}.{number}"
    written.add(name)
    (out / f"{name}.json").write_bytes(bundle_json + b"\n")


def _file_name(message_id: str) -> str:
    """A control id as a safe file name (control ids may hold any character)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in message_id).strip(".")
    return safe or "message"


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
    try:
        loaded = Mappings.load(target)
    except MappingFileError as error:
        typer.echo(f"{error.location}: {error.reason}", err=True)
        raise typer.Exit(EXIT_REJECTED) from None
    for name in loaded.files:
        typer.echo(f"ok  {target / name}")
