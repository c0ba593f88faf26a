"""FHIR input bytes -> the validated resources they carry, each with a stable locator.

Accepted: one Observation or DiagnosticReport; a Bundle (collection, transaction, batch,
searchset, message, document) of Observations, DiagnosticReports, Patients, Specimens and a
MessageHeader; NDJSON, one resource per line. A broken top-level document raises; within a Bundle
or NDJSON, a bad resource is reported as a warning and the rest is still read.

Locators (they name each value in provenance, and the emitter keeps incoming ids through them):
``Observation/abc`` (a resource with an id), ``Observation[3]`` (no id: the 3rd resource of the
input, counting Bundle entries or NDJSON lines from 1), ``DiagnosticReport/r1#o1`` (resource
``o1`` contained in ``DiagnosticReport/r1``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn

from adapter.errors import (
    EncodingError,
    InputError,
    InvalidJson,
    InvalidResource,
    NotFhir,
    UnsupportedResource,
)
from adapter.ingest.fhir_elements import JsonObject, obj, objects, text
from adapter.ingest.fhir_validate import SUPPORTED_TYPES, check_resource
from adapter.model import IngestWarning

BUNDLE_TYPES = frozenset(
    {"collection", "transaction", "batch", "searchset", "message", "document", "history"}
)
_TOP_LEVEL_TYPES = frozenset({"Observation", "DiagnosticReport", "Bundle"})


@dataclass(frozen=True)
class Incoming:
    """One resource as it arrived (validated), and where it sits in the input."""

    kind: str
    resource: JsonObject
    locator: str
    full_url: str | None = None
    container: str | None = None  # locator of the resource that contains this one

    @property
    def id(self) -> str | None:
        return text(self.resource.get("id"))


@dataclass
class Document:
    message_id: str
    source: str | None  # see ``_read_bundle``
    resources: list[Incoming] = field(default_factory=list)
    warnings: list[IngestWarning] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why resources were left out


def read_document(data: bytes) -> Document:
    """Parse, unpack and validate; raises the FHIR input errors of ``adapter.errors``."""
    content = _decode(data)
    lines = [(number, line) for number, line in enumerate(content.splitlines(), 1) if line.strip()]
    if len(lines) > 1 and all(_one_object_per_line(line) for _, line in lines):
        return _read_ndjson(lines, data)
    top = _loads(content)
    if not isinstance(top, dict):
        raise NotFhir(f"a JSON {type(top).__name__} is not a FHIR resource")
    kind = top.get("resourceType")
    if not isinstance(kind, str) or not kind:
        raise NotFhir("JSON object without a resourceType is not a FHIR resource")
    if kind not in _TOP_LEVEL_TYPES:
        if kind in SUPPORTED_TYPES:
            raise UnsupportedResource(
                f"a {kind} alone carries no result: send an Observation, a DiagnosticReport "
                "or a Bundle",
                location=kind,
            )
        raise UnsupportedResource(f"resourceType {kind!r} is not accepted", location=kind)
    if kind == "Bundle":
        return _read_bundle(top, data)
    message_id, source = document_identity(top, data)
    document = Document(message_id=message_id, source=source)
    _admit(document, top, position=1, full_url=None, strict=True)
    return document


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EncodingError(f"FHIR JSON must be UTF-8 (byte {exc.start} is not)") from exc


def _one_object_per_line(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith("{") and stripped.endswith("}")


def _loads(content: str, line_offset: int = 0) -> Any:
    try:
        return json.loads(content, parse_float=Decimal, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        line = exc.lineno + line_offset
        raise InvalidJson(
            f"broken JSON: {exc.msg}", location=f"line {line}, column {exc.colno}"
        ) from exc
    except ValueError as exc:
        raise InvalidJson(f"broken JSON: {exc}") from exc
    except RecursionError as exc:  # "[[[[..." nested deeper than the parser can follow
        raise InvalidJson("broken JSON: nested too deeply") from exc


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def content_message_id(data: bytes) -> str:
    """A stable message id for input that names none (NDJSON, a Bundle without identity)."""
    return "sha256-" + hashlib.sha256(data).hexdigest()[:32]


def _meta_source(resource: JsonObject) -> str | None:
    return text(obj(resource.get("meta")).get("source"))


def document_identity(top: Any, data: bytes) -> tuple[str, str | None]:
    """The message id and the sender of a FHIR document: one rule for the store and the reader.

    ``top`` is the parsed JSON (an object, or for NDJSON the list of line objects). The id is a
    Bundle's ``identifier.value``, else the resource's ``id``, else a digest of the bytes. The
    sender is ``meta.source``; for a Bundle without one, its MessageHeader's
    ``source.endpoint`` (R5: ``endpointUrl``; else its own ``meta.source``), else the first entry's
    ``meta.source``; for NDJSON, the first line's. None: the default mappings read it.
    """
    if isinstance(top, list):
        lines = [obj(line) for line in top]
        return content_message_id(data), next((s for r in lines if (s := _meta_source(r))), None)
    resource = obj(top)
    identifier = text(obj(resource.get("identifier")).get("value"))
    message_id = identifier or text(resource.get("id")) or content_message_id(data)
    source = _meta_source(resource)
    if source is None and resource.get("resourceType") == "Bundle":
        entries = [obj(obj(entry).get("resource")) for entry in _list(resource.get("entry"))]
        headers = [e for e in entries if e.get("resourceType") == "MessageHeader"]
        for header in headers[:1]:
            sent = obj(header.get("source"))
            # R5's source.endpointUrl is R4's source.endpoint (fhir_validate reads both too)
            endpoint = text(sent.get("endpoint")) or text(sent.get("endpointUrl"))
            source = endpoint or _meta_source(header)
        if source is None:
            source = next((s for e in entries if (s := _meta_source(e))), None)
    return message_id, source


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _read_ndjson(lines: list[tuple[int, str]], data: bytes) -> Document:
    document = Document(message_id=content_message_id(data), source=None)
    failures: list[InvalidJson] = []
    parsed: list[Any] = []
    for number, line in lines:
        try:
            resource = _loads(line, line_offset=number - 1)
        except InvalidJson as error:
            failures.append(error)
            _reject(document, str(error), f"line {number}")
            continue
        parsed.append(resource)
        _admit(document, resource, position=number, full_url=None, strict=False)
    if len(failures) == len(lines):
        raise failures[0]
    document.message_id, document.source = document_identity(parsed, data)
    return document


def _read_bundle(bundle: JsonObject, data: bytes) -> Document:
    """Entries in order; the id and the source as ``document_identity`` has them."""
    kind = bundle.get("type")
    if not isinstance(kind, str):
        raise InvalidResource("Bundle: type: a Bundle needs a type", location="Bundle.type")
    if kind not in BUNDLE_TYPES:
        raise UnsupportedResource(f"Bundle type {kind!r} is not accepted", location="Bundle.type")
    message_id, source = document_identity(bundle, data)
    document = Document(message_id=message_id, source=source)
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidResource("Bundle: entry: must be a list", location="Bundle.entry")
    for position, entry in enumerate(entries, start=1):
        resource = obj(entry).get("resource")
        if resource is None:
            _reject(document, f"Bundle.entry[{position - 1}] has no resource", None)
            continue
        _admit(document, resource, position, text(obj(entry).get("fullUrl")), strict=False)
    return document


def _admit(
    document: Document, resource: Any, position: int, full_url: str | None, *, strict: bool
) -> None:
    """Validate one resource and add it (and what it contains); ``strict`` raises on problems."""
    try:
        incoming = _checked(document, resource, position, full_url)
    except InputError as error:
        if strict:
            raise
        _reject(document, error.reason, error.location)
        return
    if incoming is None:
        return
    document.resources.append(incoming)
    for contained in objects(incoming.resource.get("contained")):
        kind = contained.get("resourceType")
        contained_id = text(contained.get("id"))
        if kind in SUPPORTED_TYPES and contained_id:
            document.resources.append(
                Incoming(
                    kind=str(kind),
                    resource=contained,
                    locator=f"{incoming.locator}#{contained_id}",
                    container=incoming.locator,
                )
            )


def _checked(
    document: Document, resource: Any, position: int, full_url: str | None
) -> Incoming | None:
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise NotFhir(f"resource {position} of the input is not a FHIR resource")
    kind = resource["resourceType"]
    if kind not in SUPPORTED_TYPES:
        if kind in _TOP_LEVEL_TYPES:  # a Bundle inside a Bundle or an NDJSON line
            raise UnsupportedResource(f"a nested {kind} is not read", location=kind)
        document.warnings.append(
            IngestWarning(
                code="RESOURCE-IGNORED",
                message=f"{kind} resources are not read",
                locator=f"{kind}[{position}]",
            )
        )
        return None
    resource_id = text(resource.get("id"))
    locator = f"{kind}/{resource_id}" if resource_id else f"{kind}[{position}]"
    checked = check_resource(resource, locator)
    document.warnings.extend(checked.warnings)
    return Incoming(kind=kind, resource=checked.resource, locator=locator, full_url=full_url)


def _reject(document: Document, reason: str, location: str | None) -> None:
    document.rejected.append(reason)
    document.warnings.append(
        IngestWarning(code="RESOURCE-REJECTED", message=reason, locator=location)
    )
