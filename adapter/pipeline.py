"""The one ``process()`` that the CLI, MLLP, HTTP and replay all call.

    bytes -split-> messages -ingest-> AssayRecords -classify-> Classifications -emit-> Bundle

``process`` is pure given its ``Context`` (settings and mappings): no clock, no I/O, no global
state, so the same message gives byte-identical output wherever it runs. It never raises for
bad input: the ``Outcome`` carries the error with its stable code, and unexpected exceptions are
reported as ``INTERNAL`` errors so that one bad message never stops a service.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from typing import Any

from adapter.classify import classify
from adapter.config import Settings
from adapter.emit.bundle import build_bundle, dumps
from adapter.errors import AdapterError, MessageTooLarge
from adapter.ingest import er7, hl7v2
from adapter.mapping import Mappings, load_mappings
from adapter.model import AssayRecord, Classification, SourceFormat

log = logging.getLogger("her2_adapter.pipeline")


@dataclass(frozen=True)
class Context:
    """What output depends on besides the message itself."""

    settings: Settings
    mappings: Mappings
    strict: bool = False  # validate HL7 v2 structure with hl7apy
    validate: bool = False  # validate each Bundle with the fhir.resources models
    fhir_source: str | None = None  # sender identity for FHIR input, when the caller knows it

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Context:
        return cls(settings=settings, mappings=load_mappings(settings.mappings_dir), **options)


@dataclass(frozen=True)
class RawMessage:
    """One message cut from an input stream, with the format it was recognised as."""

    data: bytes
    format: SourceFormat
    position: int = 1  # 1-based place in the input, for error lines


@dataclass(frozen=True)
class Outcome:
    """What became of one message: a Bundle, or an error with a stable code."""

    format: SourceFormat
    message_id: str | None
    records: tuple[AssayRecord, ...] = ()
    classifications: tuple[Classification, ...] = ()
    bundle: dict[str, Any] | None = None
    bundle_json: bytes | None = None
    error: AdapterError | None = None
    parsed: er7.Message | None = field(default=None, compare=False)  # for ACKs (HL7 v2 only)

    @property
    def ok(self) -> bool:
        return self.error is None


def detect_format(data: bytes) -> SourceFormat:
    """JSON (FHIR) starts with ``{`` or ``[``; anything else is treated as HL7 v2 ER7."""
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return SourceFormat.FHIR if start in (b"{", b"[") else SourceFormat.HL7V2


def split_input(data: bytes, format_hint: SourceFormat | None = None) -> list[RawMessage]:
    """Cut a file or request body into messages; HL7 v2 batches and MLLP dumps are unpacked.

    A FHIR document (one resource, a Bundle or NDJSON) is one message: its resources are grouped
    into records by the FHIR reader. Raises MalformedMessage for input that cannot be split.
    """
    kind = format_hint or detect_format(data)
    if kind is SourceFormat.FHIR:
        return [RawMessage(data, kind)]
    return [
        RawMessage(raw, kind, position)
        for position, raw in enumerate(er7.split_messages(data), start=1)
    ]


def process(message: RawMessage, context: Context) -> Outcome:
    """Ingest, classify and emit one message. Never raises for bad input."""
    message_id: str | None = None
    parsed: er7.Message | None = None
    try:
        if len(message.data) > context.settings.max_message_bytes:
            raise MessageTooLarge(
                f"{len(message.data)} bytes is over the limit of "
                f"{context.settings.max_message_bytes}"
            )
        if message.format is SourceFormat.HL7V2:
            read = hl7v2.read_message(message.data, context.settings)
            parsed, message_id = read.message, read.control_id
            if context.strict:
                from adapter.ingest.hl7_strict import check_structure

                # A type or version we do not take is HL7-UNSUPPORTED with or without --strict,
                # not a structure hl7apy happens to have no definition for.
                hl7v2.check_supported(read.message)
                check_structure(read.text)
            records = hl7v2.to_records(read, context.mappings, context.settings)
        else:
            message_id, records = _fhir_records(message.data, context)
        return _emit(message, message_id, records, context, parsed)
    except AdapterError as error:
        log.info("message rejected", extra={"message_id": message_id, "code": error.code})
        return Outcome(message.format, message_id, error=error, parsed=parsed)
    except Exception as exc:  # noqa: BLE001 - one bad message must never stop a service
        # Type and place only: an exception's text may quote the message (patient data).
        log.error(
            "internal error",
            extra={"message_id": message_id, "error": type(exc).__name__, "at": _where(exc)},
        )
        internal = AdapterError(f"internal error ({type(exc).__name__}); the message is kept")
        return Outcome(message.format, message_id, error=internal, parsed=parsed)


def _where(exc: BaseException) -> str:
    """File and line where an exception was raised, without its (possibly patient) text."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def _fhir_records(data: bytes, context: Context) -> tuple[str, list[AssayRecord]]:
    from adapter.ingest import fhir  # imported on first FHIR input: HL7 v2 runs start faster

    return fhir.to_records(data, context.mappings, context.settings, source=context.fhir_source)


def _emit(
    message: RawMessage,
    message_id: str,
    records: list[AssayRecord],
    context: Context,
    parsed: er7.Message | None,
) -> Outcome:
    classifications = [classify(record) for record in records]
    results = list(zip(records, classifications, strict=True))
    bundle = build_bundle(message_id, results, context.settings)
    if context.validate:
        from adapter.emit.validate import validate_bundle

        validate_bundle(bundle)
    # DEBUG, not INFO: a line per message costs the service about a sixth of the pipeline's
    # time, and the store already keeps every message's outcome. Rejections are logged at INFO.
    if log.isEnabledFor(logging.DEBUG):
        rules = ",".join(rule.rule_id for c in classifications for rule in c.rules)
        log.debug("message processed", extra={"message_id": message_id, "rules": rules})
    return Outcome(
        message.format,
        message_id,
        records=tuple(records),
        classifications=tuple(classifications),
        bundle=bundle,
        bundle_json=dumps(bundle),
        parsed=parsed,
    )
