"""Where replayed messages come from: files, folders and globs, or the message store.

Everything is lazy: one file is read at a time and its messages are yielded one by one, and the
store is read a page at a time, so a replay of months of traffic runs in constant memory.
Each message also gets its key, the name of its expected file (see :func:`message_key`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from adapter.errors import AdapterError
from adapter.ingest import er7
from adapter.inputs import read_input
from adapter.model import SourceFormat
from adapter.pipeline import detect_format, split_input

_HL7_KEY = re.compile(r"^([A-Z][A-Z0-9]{2})-(\d+)((?:\.\d+){0,2})$")


@dataclass(frozen=True)
class SourceMessage:
    """One message to replay; ``split_error`` is set when its file could not be split."""

    data: bytes
    format: SourceFormat
    origin: str  # a file path, or "store row N"
    position: int = 1
    sender: str | None = None  # known for stored messages (a FHIR sender picks its mapping)
    split_error: AdapterError | None = None

    @property
    def where(self) -> str:
        return f"{self.origin}#{self.position}"


@dataclass(frozen=True)
class KeySpec:
    """Which field names a message's expected file: ``--key PID-3.1`` or ``--key id``."""

    hl7: tuple[str, int, tuple[int, ...]] | None = None  # segment, field, components
    fhir: tuple[str, ...] | None = None  # a dotted path from the document root

    @classmethod
    def parse(cls, specs: Sequence[str]) -> KeySpec:
        hl7: tuple[str, int, tuple[int, ...]] | None = None
        fhir: tuple[str, ...] | None = None
        for spec in specs:
            match = _HL7_KEY.match(spec)
            if match:
                components = tuple(int(p) for p in match.group(3).split(".") if p)
                hl7 = (match.group(1), int(match.group(2)), components)
            elif spec and all(part.isidentifier() for part in spec.split(".")):
                fhir = tuple(spec.split("."))
            else:
                raise UsageError(f"--key {spec!r} is neither an HL7 field (PID-3.1) nor a path")
        return cls(hl7, fhir)


class UsageError(ValueError):
    """Replay options that cannot run (the command exits 2); not a message error."""


def file_messages(paths: Iterable[str]) -> Iterator[SourceMessage]:
    """Each file's messages in order; HL7 v2 batches, MLLP dumps and compressed files unpacked."""
    for path in paths:
        data = read_input(path)
        try:
            messages = split_input(data)
        except AdapterError as error:
            yield SourceMessage(data, detect_format(data), str(path), split_error=error)
            continue
        for message in messages:
            yield SourceMessage(message.data, message.format, str(path), message.position)


def store_messages(
    url: str,
    *,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    sender: str | None = None,
) -> Iterator[SourceMessage]:
    """Stored raw messages in the order received, with the format they were stored as."""
    from adapter.store import MessageFormat, open_store

    store = open_store(url)
    try:
        for row in store.iter_messages(status=status, since=since, until=until, sender=sender):
            if row.message_format is MessageFormat.TRUNCATED:
                continue  # only the first bytes of an oversized message were kept
            kind = (
                SourceFormat(row.message_format.value)
                if row.message_format.value in {f.value for f in SourceFormat}
                else detect_format(row.raw)
            )
            yield SourceMessage(row.raw, kind, f"store row {row.row_id}", 1, row.sender)
    finally:
        store.close()


def message_key(message: SourceMessage, spec: KeySpec) -> str | None:
    """MSH-10 (or the ``--key`` field) for HL7 v2; Bundle identifier or resource id for FHIR.

    ``None`` when the message does not carry it (the caller names it by its place instead).
    """
    try:
        if message.format is SourceFormat.HL7V2:
            return _hl7_key(message.data, spec) or None
        return _fhir_key(message.data, spec) or None
    except (AdapterError, orjson.JSONDecodeError, UnicodeDecodeError):
        return None


def _hl7_key(data: bytes, spec: KeySpec) -> str:
    parsed = er7.parse_message(er7.decode_message(data).text)
    if spec.hl7 is None:
        return parsed.control_id
    name, number, components = spec.hl7
    segment = parsed.first_segment(name)
    if segment is None:
        return ""
    if not components:
        return segment.field(number)
    return segment.component(number, *components)


def _fhir_key(data: bytes, spec: KeySpec) -> str:
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    document: Any
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:  # NDJSON: the first resource names the message
        lines = text.splitlines()
        document = orjson.loads(lines[0]) if lines else {}
    if isinstance(document, list):
        document = document[0] if document else {}
    if spec.fhir is not None:
        return _path_value(document, spec.fhir)
    if isinstance(document, dict) and document.get("resourceType") == "Bundle":
        identifier = document.get("identifier")
        if isinstance(identifier, dict) and identifier.get("value"):
            return str(identifier["value"])
    return str(document.get("id") or "") if isinstance(document, dict) else ""


def _path_value(document: Any, path: Sequence[str]) -> str:
    node = document
    for part in path:
        if isinstance(node, list):
            node = node[0] if node else None
        node = node.get(part) if isinstance(node, dict) else None
    return "" if node is None or isinstance(node, dict | list) else str(node)
