"""Hold each incoming resource to FHIR R4 (through the fhir.resources R4B models), with the
tolerances the adapter documents in ``docs/fhir-input.md``.

Tolerated, with a warning from the reader:
- a dateTime without an offset, a date-only ``issued``: checked here, read in the site zone;
- R5 spellings whose meaning is clear: ``Specimen.collection.bodySite`` as a CodeableReference,
  ``MessageHeader.source.endpointUrl``, ``MessageHeader.eventCanonical``;
- R5-only elements that carry nothing the adapter reads (``R5_ONLY``) are dropped before
  validation.

Everything else the models reject is an ``InvalidResource`` naming the element.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from adapter.errors import InvalidResource
from adapter.ingest.fhir_elements import JsonObject, obj, objects, parse_datetime, text
from adapter.model import IngestWarning, ReportStatus, ResultStatus

SUPPORTED_TYPES = ("Observation", "DiagnosticReport", "Patient", "Specimen", "MessageHeader")

_MODELS = {
    "Observation": ("fhir.resources.R4B.observation", "Observation"),
    "DiagnosticReport": ("fhir.resources.R4B.diagnosticreport", "DiagnosticReport"),
    "Patient": ("fhir.resources.R4B.patient", "Patient"),
    "Specimen": ("fhir.resources.R4B.specimen", "Specimen"),
    "MessageHeader": ("fhir.resources.R4B.messageheader", "MessageHeader"),
}

R5_ONLY: dict[str, tuple[str, ...]] = {
    "Observation": (
        "instantiatesCanonical",
        "instantiatesReference",
        "triggeredBy",
        "bodyStructure",
    ),
    # DiagnosticReport.note (R5) is read before it is dropped: it holds report-level notes.
    "DiagnosticReport": ("note", "supportingInfo", "study", "composition"),
    "Specimen": ("role", "combined", "feature"),
}
"""Elements that exist only in R5, dropped (with a warning) so the R4B models accept the rest."""

# Date/time elements the reader parses itself so that a missing offset is a warning, not an error.
_TOLERATED_DATETIMES = {
    "Observation": ("effectiveDateTime", "effectiveInstant", "issued"),
    "DiagnosticReport": ("effectiveDateTime", "issued"),
}

_VALUE_KEYS = (
    "valueQuantity",
    "valueCodeableConcept",
    "valueString",
    "valueBoolean",
    "valueInteger",
    "valueRange",
    "valueRatio",
    "valueSampledData",
    "valueTime",
    "valueDateTime",
    "valuePeriod",
    "valueAttachment",
    "valueReference",
)

OBSERVATION_STATUSES = frozenset(status.value for status in ResultStatus)
REPORT_STATUSES = frozenset(status.value for status in ReportStatus)


@dataclass(frozen=True)
class Checked:
    """A resource that passed validation, in the shape the readers expect."""

    resource: JsonObject
    warnings: tuple[IngestWarning, ...]


def check_resource(resource: JsonObject, locator: str) -> Checked:
    """Validate one resource (contained resources included); raises InvalidResource."""
    kind = str(resource.get("resourceType"))
    readable, warnings = _r5_tolerance(kind, resource, locator)
    _check_values(kind, readable, locator)
    for index, contained in enumerate(objects(readable.get("contained"))):
        inner = contained.get("resourceType")
        where = f"{locator}.contained[{index}]"
        if not isinstance(inner, str) or not _is_r4_type(inner):
            # The models would fail on it with a KeyError rather than a validation error.
            raise InvalidResource(
                f"{where}: resourceType is not an R4 resource type",
                location=f"{kind}.contained[{index}].resourceType",
            )
        if inner in SUPPORTED_TYPES:
            _check_values(inner, contained, where)
    _validate_model(kind, _without_tolerated(kind, readable), locator)
    return Checked(readable, tuple(warnings))


def _r5_tolerance(
    kind: str, resource: JsonObject, locator: str
) -> tuple[JsonObject, list[IngestWarning]]:
    readable = dict(resource)
    dropped = [name for name in R5_ONLY.get(kind, ()) if name in readable]
    for name in dropped:
        if kind == "DiagnosticReport" and name == "note":
            readable["_r5_note"] = readable["note"]  # read by the grouping, never validated
        del readable[name]
    warnings = [
        IngestWarning(
            code="R5-ELEMENT-IGNORED",
            message=f"R5-only element {kind}.{name} is not read",
            locator=locator,
        )
        for name in dropped
        if not (kind == "DiagnosticReport" and name == "note")
    ]
    if kind == "Specimen":
        collection = obj(readable.get("collection"))
        site = obj(collection.get("bodySite"))
        if "concept" in site or "reference" in site:
            readable["collection"] = {**collection, "bodySite": obj(site.get("concept"))}
    if kind == "MessageHeader":
        source = obj(readable.get("source"))
        if "endpointUrl" in source and "endpoint" not in source:
            moved = {k: v for k, v in source.items() if k != "endpointUrl"}
            readable["source"] = {**moved, "endpoint": source["endpointUrl"]}
        if "eventCanonical" in readable and "eventUri" not in readable:
            readable["eventUri"] = readable.pop("eventCanonical")
    return readable, warnings


def _check_values(kind: str, resource: JsonObject, locator: str) -> None:
    """What the models leave unchecked or report without an element name."""
    if kind == "Observation":
        _check_one_value(resource, locator, "value[x]")
        for index, component in enumerate(objects(resource.get("component"))):
            _check_one_value(component, locator, f"component[{index}].value[x]")
        _check_code(
            kind, resource.get("status"), OBSERVATION_STATUSES, "ObservationStatus", locator
        )
    elif kind == "DiagnosticReport":
        _check_code(
            kind, resource.get("status"), REPORT_STATUSES, "DiagnosticReportStatus", locator
        )
    elif kind == "MessageHeader":
        endpoint = obj(resource.get("source")).get("endpoint")
        if endpoint is not None and not isinstance(endpoint, str):
            # The model's url type calls str methods on it before it checks the type.
            raise InvalidResource(
                f"{locator}: source.endpoint: a url must be a JSON string",
                location="MessageHeader.source.endpoint",
            )


def _is_r4_type(name: str) -> bool:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        get_fhir_model_class(name)
    except (KeyError, ValueError):
        return False
    return True


def _check_one_value(element: JsonObject, locator: str, where: str) -> None:
    present = [key for key in _VALUE_KEYS if key in element]
    if len(present) > 1:
        raise InvalidResource(
            f"{locator}: {where}: more than one value ({', '.join(present)}); R4 allows one",
            location=f"Observation.{where}",
        )
    if present and "dataAbsentReason" in element:
        raise InvalidResource(
            f"{locator}: {where}: {present[0]} and dataAbsentReason together (R4 obs-6)",
            location=f"Observation.{where}",
        )


def _check_code(kind: str, value: Any, allowed: frozenset[str], name: str, locator: str) -> None:
    if value is None:
        return  # the model reports a missing status
    if not isinstance(value, str) or value not in allowed:
        raise InvalidResource(
            f"{locator}: status: {value!r} is not an R4 {name} code", location=f"{kind}.status"
        )


def _without_tolerated(kind: str, resource: JsonObject) -> JsonObject:
    """The resource minus dateTimes the reader accepts (with a warning) that R4 would reject."""
    names = [
        name
        for name in _TOLERATED_DATETIMES.get(kind, ())
        if (value := text(resource.get(name))) is not None
        and parse_datetime(value, UTC)[0] is not None
    ]
    cleaned = {k: v for k, v in resource.items() if k not in names and not k.startswith("_r5_")}
    if "contained" in cleaned:
        cleaned["contained"] = [
            _without_tolerated(str(inner.get("resourceType")), inner)
            for inner in objects(cleaned["contained"])
        ]
    return cleaned


def _validate_model(kind: str, resource: JsonObject, locator: str) -> None:
    from pydantic import ValidationError

    module_name, class_name = _MODELS[kind]
    model = getattr(importlib.import_module(module_name), class_name)
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = _element_path(first["loc"]) or kind
        message = str(first["msg"]).removeprefix("Value error, ")
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise InvalidResource(
            f"{locator}: {where}: {message}{more}", location=f"{kind}.{where}"
        ) from exc
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # The models' own validators fail like this on some wrongly typed JSON, before they
        # report it: it is still the resource that is wrong.
        raise InvalidResource(
            f"{locator}: not a valid {kind} ({type(exc).__name__})", location=kind
        ) from exc


def _element_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path
