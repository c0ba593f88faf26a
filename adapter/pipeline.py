"""The one ``process()`` that the CLI, MLLP, HTTP and replay all call.

    bytes -split-> messages -ingest-> orders -cases-> case records -classify-> -emit-> Bundle

``process`` is pure given its ``Context`` (settings and mappings) and the ``Prior`` it is
handed (the earlier messages of the cases it may touch, ``adapter.cases``): no clock, no I/O, no
global state, so the same message after the same earlier messages gives byte-identical output
wherever it runs. What it did to its cases comes back in ``Outcome.application``. It never raises
for bad input: the ``Outcome`` carries the error with its stable code, and unexpected exceptions
are reported as ``INTERNAL`` errors so that one bad message never stops a service.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapter.cases import NO_PRIOR, Prior, PriorMessage
from adapter.cases.book import Application, CaseBook
from adapter.cases.keys import Lookup, lookup_of, record_keys
from adapter.config import Settings
from adapter.emit.bundle import dumps
from adapter.emit.case_report import build_bundle
from adapter.errors import AdapterError, MalformedMessage, MessageTooLarge, ValueNotUnderstood
from adapter.ingest import er7, hl7v2
from adapter.ingest.order import Order
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
    """What became of one message: a Bundle, or an error with a stable code, or both.

    Both only for ``ValueNotUnderstood``: the Bundle reports what was read and says which result
    was not understood; the error gives the engine its AE and keeps the message reprocessable.
    """

    format: SourceFormat
    message_id: str | None
    records: tuple[AssayRecord, ...] = ()
    # per record, the classification of the case it joined (the whole case, not the order)
    classifications: tuple[Classification, ...] = ()
    application: Application | None = field(default=None, compare=False)  # what it did to cases
    bundle: dict[str, Any] | None = None
    bundle_json: bytes | None = None
    error: AdapterError | None = None
    parsed: er7.Message | None = field(default=None, compare=False)  # for ACKs (HL7 v2 only)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Identity:
    """Who sent a message and its id, read cheaply before it is stored or processed.

    One rule for the store (which keys versions and duplicates on sender and id) and for the
    readers (which choose the sender's mappings): an HL7 v2 sender is MSH-3^MSH-4, its id
    MSH-10; a FHIR sender is the caller's (``?source=``), else the document's own
    (``fhir_document.document_identity``), stored as ``fhir`` when it names none.
    """

    format: SourceFormat
    sender: str
    message_id: str | None
    source: str | None = None  # FHIR: the sender the mappings are chosen by (None: the default)
    msh: er7.Message | None = field(default=None, compare=False)  # HL7 v2: the MSH alone
    refusal: AdapterError | None = field(default=None, compare=False)  # what the header refuses


FHIR_SENDER = "fhir"
"""The stored sender of FHIR input that names none."""


def identify(
    data: bytes, format_hint: SourceFormat | None = None, *, fhir_source: str | None = None
) -> Identity:
    """Sender and message id without processing: MSH-3/4/10 for HL7 v2, ids for FHIR JSON."""
    kind = format_hint or detect_format(data)
    if kind is SourceFormat.FHIR:
        return _identify_fhir(data, fhir_source)
    header = hl7v2.read_header(data)
    if header.msh is None:
        return Identity(kind, "", _naive_control_id(data), refusal=header.refusal)
    msh = header.msh.msh
    sender = "^".join(part for part in (msh.raw(3), msh.raw(4)) if part)
    return Identity(kind, sender, header.msh.control_id or None, None, header.msh, header.refusal)


def _naive_control_id(data: bytes) -> str | None:
    """MSH-10 of a message the tokenizer refused, if its first line still has ten fields."""
    first_line = data.lstrip(b"\xef\xbb\xbf\x0b\r\n ").split(b"\r", 1)[0].split(b"\n", 1)[0]
    if not first_line.startswith(b"MSH") or len(first_line) < 4:
        return None
    fields = first_line.split(first_line[3:4])
    if len(fields) < 10:
        return None
    return fields[9].decode("latin-1").strip()[:199] or None


def _identify_fhir(data: bytes, fhir_source: str | None) -> Identity:
    import orjson  # the service's FHIR path; convert reads FHIR with the reader alone

    from adapter.ingest.fhir_document import content_message_id, document_identity

    text = data.removeprefix(b"\xef\xbb\xbf")  # as the reader decodes it (utf-8-sig)
    try:
        parsed: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = _ndjson(text)  # NDJSON, or broken JSON: the pipeline reports which
    if parsed is None:
        message_id, source = content_message_id(data), None
    else:
        message_id, source = document_identity(parsed, data)
    source = fhir_source or source
    return Identity(SourceFormat.FHIR, source or FHIR_SENDER, message_id, source)


def _ndjson(data: bytes) -> list[Any] | None:
    import orjson

    lines: list[Any] = []
    for line in data.splitlines():
        if line.strip():
            try:
                lines.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return lines or None


def detect_format(data: bytes) -> SourceFormat:
    """JSON (FHIR) starts with ``{`` or ``[``; anything else is treated as HL7 v2 ER7."""
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return SourceFormat.FHIR if start in (b"{", b"[") else SourceFormat.HL7V2


def split_frame(data: bytes) -> list[bytes]:
    """The HL7 v2 messages of one MLLP frame or request body, in order (a BOM, blank lines and
    a batch envelope dropped); the whole input as one message when it cannot be split, so that
    it is stored and answered with the reason."""
    if data.startswith(b"MSH") and b"\rMSH" not in data and b"\nMSH" not in data:
        return [data]  # one message, as nearly every frame is: kept byte for byte
    try:
        messages = er7.split_messages(data)
    except MalformedMessage:
        return [data]
    return messages or [data]


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


PriorSource = Callable[[Lookup], Prior]
"""Gives the prior of the cases a message may touch, once its numbers are known (``CaseLog``)."""


def process(
    message: RawMessage, context: Context, prior: Prior | PriorSource = NO_PRIOR
) -> Outcome:
    """Ingest, combine with its cases, classify and emit one message. Never raises for bad input.

    ``prior``: the earlier messages of its cases, or where to find them by the message's numbers.
    """
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
            orders = hl7v2.to_orders(read, context.mappings, context.settings)
        else:
            message_id, orders = _fhir_orders(message.data, context, context.fhir_source)
        keys_of = [record_keys(order.record) for order in orders]
        lookup = lookup_of(keys_of)
        if not isinstance(prior, Prior):
            prior = prior(lookup)
        application = _fold(prior, context).apply(message_id, orders, keys_of, lookup)
        return _emit(message, message_id, orders, context, parsed, application)
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


def _fhir_orders(data: bytes, context: Context, source: str | None) -> tuple[str, list[Order]]:
    from adapter.ingest import fhir  # imported on first FHIR input: HL7 v2 runs start faster

    return fhir.to_orders(data, context.mappings, context.settings, source=source)


def _fold(prior: Prior, context: Context) -> CaseBook:
    """The cases as the earlier messages left them, read again in the order they were applied.

    A message that no longer reads (a mapping taken away since) contributes nothing, as it
    would if it arrived now; the same prior always gives the same book.
    """
    book = CaseBook(prior.owners)
    for earlier in prior.messages:
        try:
            message_id, orders = _orders_of(earlier, context)
        except AdapterError:
            continue
        book.apply(message_id, orders)
    return book


def _orders_of(earlier: PriorMessage, context: Context) -> tuple[str, list[Order]]:
    if earlier.format is SourceFormat.HL7V2:
        read = hl7v2.read_message(earlier.data, context.settings)
        return read.control_id, hl7v2.to_orders(read, context.mappings, context.settings)
    return _fhir_orders(earlier.data, context, earlier.fhir_source)


def _emit(
    message: RawMessage,
    message_id: str,
    orders: list[Order],
    context: Context,
    parsed: er7.Message | None,
    application: Application,
) -> Outcome:
    by_case = {view.case_id: view.classification for view in application.cases}
    records = [order.record for order in orders]
    classifications = [by_case[applied.case_id] for applied in application.orders]
    bundle = build_bundle(message_id, application, context.settings, context.mappings.version)
    if context.validate:
        from adapter.emit.validate import validate_bundle

        validate_bundle(bundle)
    # DEBUG, not INFO: a line per message costs the service about a sixth of the pipeline's
    # time, and the store already keeps every message's outcome. Rejections are logged at INFO.
    if log.isEnabledFor(logging.DEBUG):
        rules = ",".join(rule.rule_id for v in application.cases for rule in v.classification.rules)
        log.debug("message processed", extra={"message_id": message_id, "rules": rules})
    return Outcome(
        message.format,
        message_id,
        records=tuple(records),
        classifications=tuple(classifications),
        bundle=bundle,
        bundle_json=dumps(bundle),
        error=not_understood(records),
        parsed=parsed,
        application=application,
    )


def not_understood(records: list[AssayRecord]) -> ValueNotUnderstood | None:
    """The error that goes with a Bundle when a recognised result's value was not read.

    Positions and analytes only: the value itself may hold anything (patient data included).
    """
    unread = [u for record in records for u in record.unused if u.not_understood]
    if not unread:
        return None
    # Unused reasons never quote the value (obx.py, fhir_observation.py): safe for ACKs and logs.
    places = "; ".join(f"{u.provenance.locator}: {u.reason}" for u in unread)
    first = unread[0].provenance.locator
    return ValueNotUnderstood(
        f"{places}; the report says so; reprocess once the mappings read it",
        location=f"{first}.5" if first.startswith("OBX[") else first,
    )
