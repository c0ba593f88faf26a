"""The embeddable entry point: HL7 v2 or FHIR bytes in, a FHIR R4 Bundle, its classification
and an HL7 ACK out. ``her2-adapter convert`` makes this same call for every input it reads.

Stable contract (semantic versioning, see ``CHANGELOG.md``): the names in ``__all__``, their
parameters and the fields of :class:`Result` change only with a new major version. Everything
else under ``adapter`` is internal and may change in any release.

    >>> from adapter import api
    >>> result = api.convert(hl7_bytes)
    >>> result.ok, result.categories, result.ack()

The first call loads the mappings (a few milliseconds); a :class:`Converter` keeps them for the
calls that follow, as the module-level :func:`convert` does for each mappings directory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from adapter.cases import PriorMessage
from adapter.cases.log import CaseLog
from adapter.config import Settings
from adapter.errors import AdapterError, MalformedMessage
from adapter.model import Category, Classification, HrStatus, SourceFormat
from adapter.pipeline import Context, Outcome, RawMessage, detect_format, process, split_input

__all__ = ["Converter", "Result", "convert", "convert_all"]


@dataclass(frozen=True)
class Result:
    """What became of one message: a Bundle and its classifications, or an error."""

    format: SourceFormat
    message_id: str | None  # MSH-10, or the FHIR Bundle identifier / resource id
    position: int  # 1-based place of the message in the input given
    bundle_json: (
        bytes | None
    )  # the FHIR R4 transaction Bundle as canonical JSON, None when rejected
    classifications: tuple[Classification, ...]  # one per HER2 / ER / PgR record
    error: AdapterError | None  # with its stable ``code`` (docs/errors.md), None when converted
    raw: bytes  # the message as read, for the ACK

    @cached_property
    def bundle(self) -> dict[str, Any] | None:
        """The same Bundle as dicts and lists of this Result's own, decimals as ``Decimal``.

        Read from ``bundle_json`` when first asked for: the emitter's Bundles share the adapter's
        own concepts between messages, so handing one out would let an edit to one Bundle change
        the next; a caller that only writes the JSON pays nothing.
        """
        if self.bundle_json is None:
            return None
        from adapter.emit.bundle import loads_exact

        return loads_exact(self.bundle_json)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def categories(self) -> tuple[Category, ...]:
        return tuple(c.category for c in self.classifications)

    @property
    def hr_statuses(self) -> tuple[HrStatus | None, ...]:
        return tuple(c.hr_status for c in self.classifications)

    def ack(self, *, at: datetime | None = None) -> bytes | None:
        """The HL7 v2 application ACK (AA, AE or AR) the service would send; None for FHIR.

        ``at`` is MSH-7 of the ACK (default: now, in UTC); the ACK is otherwise a function of
        the message and its outcome.
        """
        if self.format is not SourceFormat.HL7V2:
            return None
        from adapter.emit.ack import application_ack, header_of

        return application_ack(header_of(self.raw), self.error, at or datetime.now(UTC))


class Converter:
    """Mappings and options loaded once, for many calls.

    ``mappings`` is a mapping directory (default: the shipped one); ``strict`` holds HL7 v2 to
    its declared version's structure (hl7apy, milliseconds a message); ``validate`` checks each
    Bundle with the fhir.resources models. Other settings (site time zone, size limit) come from
    the ``HER2_*`` environment variables, as for the command line. A mapping directory that
    does not load raises ``MappingFileError``: configuration is the caller's to fix.
    """

    def __init__(
        self,
        *,
        mappings: Path | str | None = None,
        strict: bool = False,
        validate: bool = False,
        combine: bool = False,
    ) -> None:
        """``combine``: messages given to this converter form cases, in the order converted
        (docs/cases.md), as ``her2-adapter convert`` does for one run; otherwise each message is
        read alone."""
        settings = Settings(mappings_dir=Path(mappings)) if mappings else Settings()
        self._context = Context.from_settings(settings, strict=strict, validate=validate)
        self._cases = CaseLog() if combine else None

    @property
    def context(self) -> Context:
        """The pipeline context (internal: for the command line's --store)."""
        return self._context

    def convert(self, data: bytes, *, sender: str | None = None) -> Result:
        """One message. Input holding several (a batch) gives an ``HL7-MALFORMED`` result."""
        results = self.convert_all(data, sender=sender)
        if len(results) == 1:
            return results[0]
        error = MalformedMessage(
            f"{len(results)} messages in one input; convert_all() takes batches"
        )
        return _rejected(data, error)

    def convert_all(self, data: bytes, *, sender: str | None = None) -> list[Result]:
        """Every message of a file or body (HL7 v2 batches and MLLP dumps are unpacked).

        ``sender`` names a FHIR sender (a sender file's ``fhir_sources``) when the input names
        none; HL7 v2 names its sender in MSH-3/MSH-4. Never raises for bad input: input that
        holds no message, or cannot be split into messages, gives one result with the error.
        """
        context = self._context if sender is None else replace(self._context, fhir_source=sender)
        try:
            messages = split_input(data)
        except AdapterError as error:
            return [_rejected(data, error)]
        if not messages:
            return [_rejected(data, MalformedMessage("no message in the input"))]
        cases = self._cases
        if cases is None:
            return [_result(message, process(message, context)) for message in messages]
        return [combined(message, context, cases, sender) for message in messages]


def combined(
    message: RawMessage,
    context: Context,
    cases: CaseLog,
    sender: str | None,
    position: int | None = None,
) -> Result:
    """One message combined with the cases of the run so far, which it then joins (internal:
    ``Converter.convert_all``, and each worker of ``convert --jobs``; ``position`` is the
    message's place in the run when a worker sees only some of them)."""
    outcome = process(message, context, cases.prior)
    if outcome.application is not None:
        prior = PriorMessage(message.data, message.format, sender)
        cases.add(prior, outcome.application, position)
    return _result(message, outcome)


def convert(
    data: bytes, *, sender: str | None = None, mappings: Path | str | None = None
) -> Result:
    """One message with the shipped (or the given) mappings; see :meth:`Converter.convert`."""
    return _converter(None if mappings is None else Path(mappings)).convert(data, sender=sender)


def convert_all(
    data: bytes, *, sender: str | None = None, mappings: Path | str | None = None
) -> list[Result]:
    """Every message of ``data``; see :meth:`Converter.convert_all`."""
    converter = _converter(None if mappings is None else Path(mappings))
    return converter.convert_all(data, sender=sender)


@lru_cache(maxsize=8)
def _converter(mappings: Path | None) -> Converter:
    return Converter(mappings=mappings)


def _result(message: RawMessage, outcome: Outcome) -> Result:
    return Result(
        format=message.format,
        message_id=outcome.message_id,
        position=message.position,
        bundle_json=outcome.bundle_json,
        classifications=outcome.classifications,
        error=outcome.error,
        raw=message.data,
    )


def _rejected(data: bytes, error: AdapterError) -> Result:
    return Result(detect_format(data), None, 1, None, (), error, data)
