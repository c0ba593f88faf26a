"""FHIR R4 data types as plain dicts, keys in the order the specification lists the elements.

No empty strings or empty arrays are ever written: FHIR forbids them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapter.emit.codes import UCUM, V2_0203
from adapter.errors import OutputInvalid
from adapter.model import Coding, Identifier, Interval

JsonDict = dict[str, Any]


def coding(value: Coding) -> JsonDict | None:
    """A Coding, or ``None`` when nothing was coded (a display alone becomes text instead)."""
    if not value.code:
        return None
    out: JsonDict = {}
    if value.system:
        out["system"] = value.system  # ingest resolved it to a URI through the mappings
    out["code"] = value.code
    if value.display:
        out["display"] = value.display
    return out


def codeable(value: Coding | None, text: str | None = None) -> JsonDict | None:
    """A CodeableConcept from one incoming coding; its display doubles as text when no text."""
    out: JsonDict = {}
    coded = coding(value) if value is not None else None
    if coded is not None:
        out["coding"] = [coded]
    label = text or (value.display if value is not None else None)
    if label:
        out["text"] = label
    return out or None


def adapter_coding(system: str, code: str, display: str | None = None) -> JsonDict:
    out: JsonDict = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def identifier(value: Identifier) -> JsonDict:
    out: JsonDict = {}
    if value.type_code:
        out["type"] = {"coding": [{"system": V2_0203, "code": value.type_code}]}
    if value.system:
        out["system"] = value.system
    out["value"] = value.value
    return out


def reference(resource_id: str) -> JsonDict:
    """A reference to another entry of the same Bundle, by its ``fullUrl``."""
    return {"reference": f"urn:uuid:{resource_id}"}


def quantity(number: Interval, unit: str | None, ucum: str | None) -> JsonDict | None:
    """A point or a one-sided bound as a Quantity; a range or an empty interval cannot be one."""
    if number.value is not None and number.low_inclusive and number.high_inclusive:
        out: JsonDict = {"value": number.value}
    elif number.low is None and number.high is not None:
        out = {"value": number.high, "comparator": "<=" if number.high_inclusive else "<"}
    elif number.high is None and number.low is not None:
        out = {"value": number.low, "comparator": ">=" if number.low_inclusive else ">"}
    else:
        return None
    if unit and unit.strip():
        out["unit"] = unit
    if ucum is not None:
        out["system"] = UCUM
        out["code"] = ucum
    return out


def interval_text(number: Interval) -> str | None:
    """The value as the lab sent it; else the bounds written out (``1-10``)."""
    if number.text:
        return number.text
    if number.low is not None and number.high is not None:
        return f"{number.low}-{number.high}"
    return None


def date_time(value: datetime, element: str) -> str:
    """An aware datetime as FHIR ``dateTime``/``instant``: seconds always, fraction only if any.

    The offset is always written (``+00:00`` for UTC), never converted, so the sender's local
    time stays readable.
    """
    offset = value.utcoffset()
    if offset is None:
        raise OutputInvalid("datetime without a time zone", location=element)
    if offset.seconds % 60 or offset.microseconds:
        raise OutputInvalid("time zone offset is not whole minutes", location=element)
    text = value.isoformat(timespec="seconds")
    if value.microsecond:
        fraction = f"{value.microsecond:06d}".rstrip("0")
        text = f"{text[:19]}.{fraction}{text[19:]}"
    return text


class DateTimeTexts:
    """``date_time`` for one Bundle, remembering every datetime it has written.

    A record's ``issued`` and ``effective`` are repeated on each of its Observations: each is
    formatted once. Keyed by identity, never by equality, since equal instants in different
    offsets are written differently; the memo holds each datetime, so no id is reused while it
    lives.
    """

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[int, tuple[datetime, str]] = {}

    def __call__(self, value: datetime, element: str) -> str:
        found = self._known.get(id(value))
        if found is not None:
            return found[1]
        text = date_time(value, element)
        self._known[id(value)] = (value, text)
        return text
