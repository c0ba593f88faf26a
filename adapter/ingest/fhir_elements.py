"""Small readers for FHIR JSON elements: typed access, codings, dateTimes.

Resources reach these helpers already validated against the R4B models, but the readers stay
defensive (a wrong type reads as absent) so that no odd input can raise from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from adapter.model import Coding

JsonObject = dict[str, Any]

V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
UCUM = "http://unitsofmeasure.org"

_DATETIME = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def obj(value: Any) -> JsonObject:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def objects(value: Any) -> Iterator[JsonObject]:
    """The JSON objects of a list element (anything else in it is skipped)."""
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def text(value: Any) -> str | None:
    """A non-blank string, else ``None``."""
    return value if isinstance(value, str) and value.strip() else None


def coding(value: Any) -> Coding | None:
    element = obj(value)
    found = Coding(
        system=text(element.get("system")),
        code=text(element.get("code")),
        display=text(element.get("display")),
    )
    return found if (found.system or found.code or found.display) else None


def codings(concept: Any) -> list[Coding]:
    """The codings of a CodeableConcept (R5 CodeableReference: of its ``concept``)."""
    element = obj(concept)
    if "concept" in element and "coding" not in element:
        element = obj(element["concept"])
    return [c for item in objects(element.get("coding")) if (c := coding(item)) is not None]


def labelled_coding(concept: Any) -> Coding | None:
    """The first coding of a CodeableConcept, with the concept's text as display if it has none."""
    found = codings(concept)
    label = concept_text(concept)
    if found:
        first = found[0]
        return first if first.display or not label else replace(first, display=label)
    return Coding(display=label) if label else None


def concept_text(concept: Any) -> str | None:
    element = obj(concept)
    if "concept" in element and "text" not in element:
        element = obj(element["concept"])
    return text(element.get("text"))


def concept_texts(concept: Any) -> list[str]:
    """The text and every display of a CodeableConcept, for word look-ups."""
    found = [concept_text(concept), *(c.display for c in codings(concept))]
    return [t for t in found if t]


def reference(value: Any) -> str | None:
    return text(obj(value).get("reference"))


def parse_datetime(value: str, zone: tzinfo) -> tuple[datetime | None, bool, bool]:
    """A FHIR dateTime/instant as an aware datetime.

    Returns (datetime or ``None`` when unreadable, coarse, naive): ``coarse`` when there is no
    time of day (midnight in ``zone`` is used), ``naive`` when a time came without an offset
    (``zone`` is used). Seconds may be missing: some senders drop them.
    """
    match = _DATETIME.fullmatch(value.strip())
    if match is None:
        return None, False, False
    parts = match.groupdict()
    fraction = (parts["fraction"] or "")[:6].ljust(6, "0")
    try:
        moment = datetime(
            int(parts["year"]),
            int(parts["month"] or 1),
            int(parts["day"] or 1),
            int(parts["hour"] or 0),
            int(parts["minute"] or 0),
            int(parts["second"] or 0),
            int(fraction),
        )
    except ValueError:
        return None, False, False
    coarse = parts["hour"] is None
    offset = _offset(parts["zone"])
    if parts["zone"] is not None and offset is None:
        return None, False, False
    naive = not coarse and offset is None
    return moment.replace(tzinfo=offset or zone), coarse, naive


def _offset(zone: str | None) -> tzinfo | None:
    if zone is None:
        return None
    if zone == "Z":
        return UTC
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    if hours > 14 or minutes > 59:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(delta if zone[0] == "+" else -delta)
