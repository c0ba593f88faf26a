r"""FHIR R4 data types as plain dicts, keys in the order the specification lists the elements.

No empty strings or empty arrays are ever written: FHIR forbids them.

Every value copied from the input is held to its FHIR datatype here, where it is written:
``code`` and ``uri`` values that their pattern refuses (whitespace at an end or a line break
inside, often an escaped CR such as ``\X0D\``), an empty identifier, a time zone offset beyond
±14:00 raise :class:`ValueNotWritable` naming the element (and the input position the caller
knows); free text keeps its words, with the whitespace characters FHIR's ``string`` pattern
refuses (vertical tab, form feed, no-break space...) written as plain spaces.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Final

from adapter.emit.codes import UCUM, V2_0203
from adapter.errors import OutputInvalid, ValueNotWritable
from adapter.model import Coding, Identifier, Interval

JsonDict = dict[str, Any]

_CODE: Final = re.compile(r"\S+(?: \S+)*")
r"""FHIR ``code``: no whitespace at either end, single spaces inside (Python's ``\S`` refuses
every Unicode space, as the R4 JSON schema's pattern does)."""
_URI: Final = re.compile(r"\S+")
_NOT_IN_STRING: Final = re.compile(
    "[\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
)
"""Whitespace other than space, tab, CR and LF: FHIR's ``string`` pattern refuses it."""
_LARGEST_OFFSET: Final = timedelta(hours=14)


_CHECKED_LIMIT: Final = 4096
"""How many checked values each memo below holds before it starts again: a sender's codes,
units and displays repeat from message to message, a patient's values do not."""
_codes: set[str] = set()
_uris: set[str] = set()
_texts: dict[str, str] = {}  # "" for a blank value
_codings: dict[tuple[str | None, str | None, str | None], tuple[str | None, str, str | None]] = {}
"""Each value already held to its datatype (or a Coding's parts, as written): a value seen
before is not checked again. Only values that passed are kept, so a refused value is refused
each time, naming the element where it was met this time."""


def _remember(memo: dict[Any, Any] | set[Any]) -> None:
    # Bounded: cleared when full, so memory stays flat and output cannot depend on it.
    if len(memo) >= _CHECKED_LIMIT:
        memo.clear()


def _where(at: str | None, element: str) -> str:
    """An error's location: the input position (``OBX[3]``, ``SPM-4``) the caller knows, if any.

    Built only when a value is refused, never for the values that pass."""
    return f"{at}: {element}" if at is not None else element


def code(value: str, element: str, at: str | None = None) -> str:
    """``value`` as a FHIR ``code``, or ValueNotWritable at ``element`` (after ``at``)."""
    if value in _codes:
        return value
    if _CODE.fullmatch(value) is None:
        raise ValueNotWritable(
            "a code with a line break, a tab or spaces at an end cannot be written as FHIR",
            location=_where(at, element),
        )
    _remember(_codes)
    _codes.add(value)
    return value


def uri(value: str, element: str, at: str | None = None) -> str:
    """``value`` as a FHIR ``uri`` (no whitespace at all), or ValueNotWritable at ``element``."""
    if value in _uris:
        return value
    if _URI.fullmatch(value) is None:
        raise ValueNotWritable(
            "a URI with whitespace cannot be written as FHIR", location=_where(at, element)
        )
    _remember(_uris)
    _uris.add(value)
    return value


def text(value: str | None) -> str | None:
    """Free text as a FHIR ``string``: refused whitespace becomes a space; None when blank."""
    if value is None:
        return None
    found = _texts.get(value)
    if found is not None:
        return found or None
    written = value
    # Printable ASCII (nearly every value) holds none of them: no pattern search needed.
    if not (value.isascii() and value.isprintable()) and _NOT_IN_STRING.search(value) is not None:
        written = _NOT_IN_STRING.sub(" ", value)
    if not written.strip():
        written = ""
    _remember(_texts)
    _texts[value] = written
    return written or None


def identifier_value(value: str, element: str, at: str | None = None) -> str:
    """A non-blank FHIR ``string`` for ``Identifier.value``, or ValueNotWritable."""
    written = text(value)
    if written is None:
        raise ValueNotWritable("an identifier is empty", location=_where(at, element))
    return written


def coding(value: Coding, element: str, at: str | None = None) -> JsonDict | None:
    """A Coding, or ``None`` when nothing was coded (a display alone becomes text instead)."""
    return _coding(value, element, "", at) if value.code else None


def _coding(value: Coding, element: str, suffix: str, at: str | None) -> JsonDict:
    """``value`` (which has a code) at ``element`` + ``suffix``: the path joined only to be
    named in an error."""
    key = (value.system, value.code, value.display)
    checked = _codings.get(key)
    if checked is None:
        system = value.system
        if system:
            # ingest resolved it to a URI through the mappings, or kept the sender's own
            system = uri(system, f"{element}{suffix}.system", at)
        written = code(value.code or "", f"{element}{suffix}.code", at)
        checked = (system, written, text(value.display))
        _remember(_codings)
        _codings[key] = checked
    system, written, display = checked
    out: JsonDict = {"system": system, "code": written} if system else {"code": written}
    if display:
        out["display"] = display
    return out


def codeable(
    value: Coding | None, element: str, label: str | None = None, at: str | None = None
) -> JsonDict | None:
    """A CodeableConcept from one incoming coding; its display doubles as text when no text."""
    out: JsonDict = {}
    if value is not None:
        if value.code:
            out["coding"] = [_coding(value, element, ".coding", at)]
        written = text(label or value.display)
    else:
        written = text(label)
    if written:
        out["text"] = written
    return out or None


def adapter_coding(system: str, code: str, display: str | None = None) -> JsonDict:
    out: JsonDict = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def identifier(value: Identifier, element: str) -> JsonDict:
    out: JsonDict = {}
    if value.type_code:
        type_code = code(value.type_code, f"{element}.type.coding.code")
        out["type"] = {"coding": [{"system": V2_0203, "code": type_code}]}
    if value.system:
        out["system"] = uri(value.system, f"{element}.system")
    out["value"] = identifier_value(value.value, f"{element}.value")
    return out


def reference(resource_id: str) -> JsonDict:
    """A reference to another entry of the same Bundle, by its ``fullUrl``."""
    return {"reference": f"urn:uuid:{resource_id}"}


def quantity(
    number: Interval, unit: str | None, ucum: str | None, element: str, at: str | None = None
) -> JsonDict | None:
    """A point or a one-sided bound as a Quantity; a range or an empty interval cannot be one.

    ``ucum`` may be the sender's own (a FHIR ``valueQuantity.code``): held to ``code``."""
    if number.value is not None and number.low_inclusive and number.high_inclusive:
        out: JsonDict = {"value": number.value}
    elif number.low is None and number.high is not None:
        out = {"value": number.high, "comparator": "<=" if number.high_inclusive else "<"}
    elif number.high is None and number.low is not None:
        out = {"value": number.low, "comparator": ">=" if number.low_inclusive else ">"}
    else:
        return None
    unit = text(unit)
    if unit:
        out["unit"] = unit
    if ucum is not None:
        out["system"] = UCUM
        out["code"] = ucum if ucum in _codes else code(ucum, f"{element}.code", at)
    return out


def interval_text(number: Interval) -> str | None:
    """The value as the lab sent it; else the bounds written out (``1-10``)."""
    if number.text:
        return text(number.text)
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
        raise ValueNotWritable("a time zone offset is not whole minutes", location=element)
    if abs(offset) > _LARGEST_OFFSET:
        raise ValueNotWritable(
            "a time zone offset beyond ±14:00 cannot be written as FHIR", location=element
        )
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

    def __call__(self, value: datetime, element: str, at: str | None = None) -> str:
        found = self._known.get(id(value))
        if found is not None:
            return found[1]
        text = date_time(value, _where(at, element))
        self._known[id(value)] = (value, text)
        return text
