"""One FHIR Observation -> ReadValues (itself and each of its components), or why not used.

The FHIR counterpart of ``obx.py``: the value[x] type decides how a value is read, the mapping
tables alone say what it means. A panel Observation (members in ``hasMember`` or values in
``component``) with no value of its own is a container, not a result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Any

from adapter.ingest import grammar
from adapter.ingest.assemble import READ_AS_NUMBER, ReadValue, usable
from adapter.ingest.codecheck import check_code
from adapter.ingest.fhir_elements import (
    UCUM,
    V3_INTERPRETATION,
    JsonObject,
    codings,
    concept_text,
    labelled_coding,
    obj,
    objects,
    parse_datetime,
    text,
)
from adapter.ingest.grammar import Reading
from adapter.ingest.values import bounded
from adapter.mapping import V3_INTERPRETATION_CODES, Answer, CodeEntry, MappingSet
from adapter.model import (
    Analyte,
    Coding,
    IngestWarning,
    Interval,
    Provenance,
    ReportedObservation,
    ResultStatus,
    UnusedResult,
)

# Result analytes that may carry a percentage instead of a word ("ER: 95%"), as in obx.py.
_R5_STATUS_READ_AS = {"specimen-in-process": ResultStatus.REGISTERED}


@dataclass
class ObservationRead:
    """What one Observation contributed to its group."""

    values: list[ReadValue] = field(default_factory=list)
    unused: list[UnusedResult] = field(default_factory=list)
    status: ResultStatus | None = None
    warnings: list[IngestWarning] = field(default_factory=list)
    group_notes: list[str] = field(default_factory=list)  # notes of a container Observation
    panel_code: Coding | None = None  # the code of a container Observation
    body_sites: list[Coding] = field(default_factory=list)
    issued: datetime | None = None
    texts: list[tuple[str, str]] = field(default_factory=list)  # report text: (locator, text)
    own_summary: bool = False  # the adapter's own summary, fed back


@dataclass(frozen=True)
class _Value:
    value_type: str | None = None
    value_text: str | None = None
    number: Interval | None = None
    ratio: tuple[Decimal, Decimal] | None = None
    text: str | None = None
    coding: Coding | None = None
    answer: Answer | None = None
    unit: str | None = None
    ucum: str | None = None
    reading: Reading | None = None


@dataclass(frozen=True)
class _Context:
    """What the parts of one Observation share."""

    mapping: MappingSet
    status: ResultStatus
    notes: tuple[str, ...]
    effective: datetime | None
    warnings: list[IngestWarning]
    method: Coding | None = None  # Observation.method: every part of the Observation shares it


def read_observation(
    resource: JsonObject, locator: str, mapping: MappingSet, zone: tzinfo
) -> ObservationRead:
    read = ObservationRead()
    read.status = _status(resource, locator, read.warnings)
    notes = tuple(t for note in objects(resource.get("note")) if (t := text(note.get("text"))))
    context = _Context(
        mapping=mapping,
        status=read.status,
        notes=notes,
        effective=_effective(resource, locator, zone, read.warnings),
        warnings=read.warnings,
        method=labelled_coding(resource.get("method")),
    )
    read.issued = _moment(resource.get("issued"), "issued", locator, zone, read.warnings)
    read.body_sites = codings(resource.get("bodySite"))
    components = list(objects(resource.get("component")))
    container = not _has_value(resource) and bool(components or resource.get("hasMember"))
    if container:
        read.group_notes.extend(notes)
        read.panel_code = _first_coding(resource.get("code"))
    else:
        _add_part(read, resource, locator, context, own_notes=notes)
    for index, component in enumerate(components):
        _add_part(read, component, f"{locator}.component[{index}]", context, own_notes=())
    return read


def _has_value(element: JsonObject) -> bool:
    return any(key.startswith("value") for key in element) or "dataAbsentReason" in element


def _first_coding(concept: Any) -> Coding | None:
    found = codings(concept)
    if found:
        return found[0]
    label = concept_text(concept)
    return Coding(display=label) if label else None


def _status(resource: JsonObject, locator: str, warnings: list[IngestWarning]) -> ResultStatus:
    code = str(resource.get("status", ""))
    if code in _R5_STATUS_READ_AS:
        warnings.append(
            IngestWarning(
                code="STATUS-R5",
                message=f"R5 status {code} is read as registered",
                locator=locator,
            )
        )
        return _R5_STATUS_READ_AS[code]
    status = ResultStatus(code)
    if status is ResultStatus.UNKNOWN:
        warnings.append(
            IngestWarning(
                code="STATUS-UNKNOWN", message="Observation.status is unknown", locator=locator
            )
        )
    return status


def _effective(
    resource: JsonObject, locator: str, zone: tzinfo, warnings: list[IngestWarning]
) -> datetime | None:
    for name in ("effectiveDateTime", "effectiveInstant"):
        if name in resource:
            return _moment(resource[name], name, locator, zone, warnings)
    if "effectivePeriod" in resource:
        start = obj(resource["effectivePeriod"]).get("start")
        return _moment(start, "effectivePeriod.start", locator, zone, warnings)
    return None


def _moment(
    value: Any, element: str, locator: str, zone: tzinfo, warnings: list[IngestWarning]
) -> datetime | None:
    """A dateTime as an aware datetime; coarse or offset-less values warn (like HL7 v2 input)."""
    sent = text(value)
    if sent is None:
        return None
    moment, coarse, naive = parse_datetime(sent, zone)
    if coarse:
        warnings.append(
            IngestWarning(
                code="DATETIME-COARSE",
                message=f"{element} has no time of day; midnight in the site zone is used",
                locator=locator,
            )
        )
    elif naive:
        warnings.append(
            IngestWarning(
                code="DATETIME-NO-OFFSET",
                message=f"{element} has no UTC offset; the site zone is used",
                locator=locator,
            )
        )
    return moment


# --------------------------------------------------------------------------------------------
# One result (the Observation itself or one component)
# --------------------------------------------------------------------------------------------


def _add_part(
    read: ObservationRead,
    part: JsonObject,
    locator: str,
    context: _Context,
    own_notes: tuple[str, ...],
) -> None:
    mapping = context.mapping
    code, mapped, excluded = _lookup(part.get("code"), mapping)
    checked = check_code(code, mapped, mapping, locator) if excluded is None else None
    entry = checked.entry if checked is not None else None
    value = _read_value(part, entry.analyte if entry else None, mapping, locator, context.warnings)
    provenance = Provenance(
        locator=locator, code=code, value_type=value.value_type, value_text=value.value_text
    )

    def unused(
        reason: str, analyte: Analyte | None = None, *, not_understood: bool = False
    ) -> None:
        read.unused.append(
            UnusedResult(
                provenance=provenance, reason=reason, analyte=analyte, not_understood=not_understood
            )
        )

    if excluded is not None:
        return unused(f"not classified: {excluded}")
    if checked is not None and checked.warning is not None:
        context.warnings.append(checked.warning)
    if entry is None:
        analyte = mapped.analyte if mapped is not None else None
        reason = checked.unused_reason if checked is not None else None
        # A mapped code whose display names another test is not understood (see obx.py).
        return unused(
            reason or "result code not in the mappings", analyte, not_understood=analyte is not None
        )
    if context.status is ResultStatus.ENTERED_IN_ERROR:
        return unused("entered in error (Observation.status entered-in-error)")
    if entry.analyte is Analyte.REPORT_TEXT:
        # A report's text: its group reads the lines for statements (report_text).
        sent = text(part.get("valueString"))
        if sent:
            read.texts.append((locator, sent))
            return None
        return unused("report text without a value")
    indeterminate = _indeterminate_reason(part, context.status)
    if value.reading is not None:
        context.warnings.extend(
            IngestWarning(code=code, message=message, locator=locator)
            for code, message in value.reading.warnings
        )
    if indeterminate is None and not usable(entry.analyte, value.number, value.answer):
        if value.value_type is None:
            return unused("no value (no value[x] and no dataAbsentReason)", entry.analyte)
        if value.reading is not None and value.reading.deferred:
            return unused("the lab says this result is still to come")
        # Not quoted: the reason reaches HTTP answers and logs (see obx.py).
        return unused(
            f"{value.value_type or 'value'} not understood for {entry.analyte}",
            entry.analyte,
            not_understood=True,
        )
    answer = value.answer
    method = concept_text(part.get("method")) or next(
        (c.display for c in codings(part.get("method")) if c.display), None
    )
    observation = ReportedObservation(
        analyte=entry.analyte,
        provenance=provenance,
        status=context.status,
        number=value.number,
        ratio=value.ratio,
        text=value.text,
        coding=value.coding,
        unit=value.unit,
        ucum=value.ucum,
        interpretation=_interpretation(part, mapping, locator, context.warnings),
        notes=own_notes,
        effective=context.effective,
        method=context.method,
    )
    read.values.append(
        ReadValue(
            observation=observation,
            answer=answer,
            probe=entry.probe,
            tissue_scope=entry.tissue,
            indeterminate_reason=indeterminate,
            reading=value.reading,
            method_text=method,
        )
    )
    return None


def _lookup(
    concept: Any, mapping: MappingSet
) -> tuple[Coding | None, CodeEntry | None, str | None]:
    """The matched coding, its mapping entry, or the exclusion reason; any coding may match."""
    found = codings(concept)
    for candidate in found:
        if not (candidate.system and candidate.code):
            continue
        excluded = mapping.exclusion(candidate.system, candidate.code)
        if excluded is not None:
            return candidate, None, excluded
        entry = mapping.code(candidate.system, candidate.code)
        if entry is not None:
            return candidate, entry, None
    if found:
        return found[0], None, None
    label = concept_text(concept)
    return (Coding(display=label) if label else None), None, None


def _indeterminate_reason(part: JsonObject, status: ResultStatus) -> str | None:
    absent = part.get("dataAbsentReason")
    if absent is not None:
        reason = next((c.code or c.display for c in codings(absent)), None)
        return f"no value: dataAbsentReason {reason or concept_text(absent) or '(uncoded)'}"
    if status is ResultStatus.CANCELLED:
        # Like OBX-11 X: a test ordered but not done is a result (indeterminate), not silence.
        return "result cannot be obtained (Observation.status cancelled)"
    return None


def _interpretation(
    part: JsonObject, mapping: MappingSet, locator: str, warnings: list[IngestWarning]
) -> tuple[str, ...]:
    found: list[str] = []
    for concept in objects(part.get("interpretation")):
        for item in codings(concept):
            code = item.code or ""
            if item.system == V3_INTERPRETATION and code in V3_INTERPRETATION_CODES:
                found.append(code)
            elif (mapped := mapping.interpretation_for(code) if code else None) is not None:
                found.append(mapped)
            else:
                warnings.append(
                    IngestWarning(
                        code="FLAG-UNKNOWN",
                        message=f"interpretation {code or '(no code)'} not mapped",
                        locator=locator,
                    )
                )
    return tuple(dict.fromkeys(found))


# --------------------------------------------------------------------------------------------
# value[x]
# --------------------------------------------------------------------------------------------


def _read_value(
    part: JsonObject,
    analyte: Analyte | None,
    mapping: MappingSet,
    locator: str,
    warnings: list[IngestWarning],
) -> _Value:
    if "valueQuantity" in part:
        return _quantity(obj(part["valueQuantity"]), analyte, mapping, locator, warnings)
    if "valueInteger" in part:
        sent = str(part["valueInteger"])
        return _number_or_words(sent, Decimal(sent), analyte, mapping, "valueInteger")
    if "valueRatio" in part:
        return _ratio(obj(part["valueRatio"]))
    if "valueCodeableConcept" in part:
        return _coded(part["valueCodeableConcept"], analyte, mapping, locator, warnings)
    if "valueString" in part:
        sent = str(part["valueString"]).strip()
        return _text_value(sent, analyte, mapping, "valueString")
    present = next((key for key in part if key.startswith("value")), None)
    if present is not None:
        return _Value(value_type=present, value_text=f"({present})")
    return _Value()


def _quantity(
    quantity: JsonObject,
    analyte: Analyte | None,
    mapping: MappingSet,
    locator: str,
    warnings: list[IngestWarning],
) -> _Value:
    amount = quantity.get("value")
    comparator = text(quantity.get("comparator")) or ""
    unit = text(quantity.get("unit")) or text(quantity.get("code"))
    sent = f"{comparator}{amount}" + (f" {unit}" if unit else "")
    if not isinstance(amount, Decimal | int) or isinstance(amount, bool):
        return _Value(value_type="valueQuantity", value_text=sent)
    number = Decimal(amount)
    if analyte is not None and analyte not in READ_AS_NUMBER:
        # Labs send an IHC score as a bare number: read it as the score's wording, and say so.
        warnings.append(
            IngestWarning(
                code="QUANTITY-AS-WORDING",
                message=f"a Quantity for {analyte} is read as the wording {amount}",
                locator=locator,
            )
        )
        wording = f"{comparator}{amount}"
        reading = grammar.read(mapping, wording, analyte)
        return _Value(
            value_type="valueQuantity",
            value_text=sent,
            text=wording,
            answer=reading.answer,
            reading=reading,
        )
    ucum: str | None = None
    if text(quantity.get("system")) == UCUM:
        ucum = text(quantity.get("code"))
    elif unit is not None:
        ucum = mapping.unit_for(unit)
    return _Value(
        value_type="valueQuantity",
        value_text=sent,
        number=bounded(comparator or "=", number, f"{comparator}{amount}"),
        unit=unit,
        ucum=ucum,
    )


def _number_or_words(
    sent: str, number: Decimal, analyte: Analyte | None, mapping: MappingSet, value_type: str
) -> _Value:
    if analyte is None or analyte in READ_AS_NUMBER:
        return _Value(value_type=value_type, value_text=sent, number=Interval.point(number, sent))
    reading = grammar.read(mapping, sent, analyte)
    return _Value(
        value_type=value_type, value_text=sent, text=sent, answer=reading.answer, reading=reading
    )


def _ratio(ratio: JsonObject) -> _Value:
    """An ISH ratio sent as numerator/denominator: the quotient, with both terms kept."""
    numerator, denominator = obj(ratio.get("numerator")), obj(ratio.get("denominator"))
    top, bottom = numerator.get("value"), denominator.get("value")
    sent = f"{top}:{bottom}"
    bounded_terms = numerator.get("comparator") or denominator.get("comparator")
    if not (isinstance(top, Decimal | int) and isinstance(bottom, Decimal | int)) or bounded_terms:
        return _Value(value_type="valueRatio", value_text=sent)
    low, high = Decimal(top), Decimal(bottom)
    try:
        quotient = low / high
    except (DivisionByZero, InvalidOperation):
        return _Value(value_type="valueRatio", value_text=sent)
    return _Value(
        value_type="valueRatio",
        value_text=sent,
        number=Interval.point(quotient, sent),
        ratio=(low, high),
    )


def _coded(
    concept: Any,
    analyte: Analyte | None,
    mapping: MappingSet,
    locator: str,
    warnings: list[IngestWarning],
) -> _Value:
    found = codings(concept)
    label = concept_text(concept)
    for item in found:
        if item.system and item.code:
            answer = mapping.answer(system=item.system, code=item.code)
            if answer is not None:
                return _Value(
                    value_type="valueCodeableConcept",
                    value_text=_concept_summary(item, label),
                    text=label or item.display,
                    coding=item,
                    answer=answer,
                )
    first = found[0] if found else None
    words = [w for w in (label, *(c.display for c in found)) if w]
    reading: Reading | None = None
    for wording in words:
        reading = grammar.read(mapping, wording, analyte)
        if reading.answer is not None or reading.number is not None:
            break
    answer = reading.answer if reading is not None else None
    number = reading.number if reading is not None and analyte in READ_AS_NUMBER else None
    if (answer is not None or number is not None) and any(c.system and c.code for c in found):
        warnings.append(
            IngestWarning(
                code="ANSWER-CODE-UNKNOWN",
                message="answer code not in the mappings; its text was used",
                locator=locator,
            )
        )
    return _Value(
        value_type="valueCodeableConcept",
        value_text=_concept_summary(first, label),
        text=label or (first.display if first else None),
        coding=first,
        answer=answer,
        number=number,
        reading=reading,
    )


def _concept_summary(item: Coding | None, label: str | None) -> str:
    """``code (display)`` or the text: how the value reads in notes and warnings."""
    if item is not None and item.code:
        shown = item.display or label
        return f"{item.code} ({shown})" if shown else item.code
    return label or (item.display if item and item.display else "")


def _text_value(sent: str, analyte: Analyte | None, mapping: MappingSet, value_type: str) -> _Value:
    reading = grammar.read(mapping, sent, analyte) if sent else Reading()
    number = reading.number if analyte is None or analyte in READ_AS_NUMBER else None
    return _Value(
        value_type=value_type,
        value_text=sent,
        number=number,
        text=sent or None,
        answer=reading.answer,
        reading=reading,
    )
