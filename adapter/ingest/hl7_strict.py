"""``--strict``: hold a message to its declared version's structure, using hl7apy.

Off the hot path on purpose (hl7apy's parse costs milliseconds): the fast tokenizer reads every
message; this check only runs when asked for. hl7apy is imported here and nowhere else in
``adapter/``, so its untyped API and its exceptions stay behind this one function.

hl7apy words its findings in its own names (``Missing required child ORC.ORC_7``, ``max limit (1)
reached for <Group ORU_R01_ORDER_OBSERVATION>``); they are translated here into the segment, field
and rule an interface analyst looks up (``ORC[1].7``: a required field is empty), with the
location in the form ERR-2 takes. hl7apy's texts name elements only, never values, and so do ours.
"""

from __future__ import annotations

import re
from typing import Final

from adapter.errors import MalformedMessage

_FIELD: Final = re.compile(r"([A-Z][A-Z0-9]{2})_(\d+)")
_SEGMENT: Final = re.compile(r"[A-Z][A-Z0-9]{2}")
_MISSING: Final = re.compile(r"Missing required child (\w+)\.(\w+)")
_TOO_MANY: Final = re.compile(r"Child limit exceeded (\w+)\.(\w+)")
_DATATYPE: Final = re.compile(
    r"Datatype (\w+) is not correct for (\w+)\.(\w+) \(it must be (\w+)\)"
)
_MAX_REACHED: Final = re.compile(
    r"Cannot add <\w+ (\w+)>: max limit \((\d+)\) reached for <\w+ (\w+)>"
)


def check_structure(text: str) -> None:
    """Raise MalformedMessage naming the segment, field and rule the message breaks."""
    from hl7apy import exceptions
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    segments = [s for s in text.replace("\n", "\r").split("\r") if s]
    try:
        message = parse_message(
            "\r".join(segments), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True
        )
        message.validate()
    except exceptions.HL7apyException as error:
        reason, location = _explain(type(error).__name__, str(error), segments)
        raise MalformedMessage(f"structure check: {reason}", location=location) from error
    except (ValueError, KeyError, IndexError, AttributeError) as error:
        # hl7apy raises plain exceptions on some truncated or oddly separated input.
        raise MalformedMessage(
            f"structure check: hl7apy could not read the segments ({type(error).__name__})",
            location="MSH",
        ) from error


def _explain(kind: str, said: str, segments: list[str]) -> tuple[str, str | None]:
    """``(reason, location)`` for what hl7apy said; its own words when they are not known.

    The location is a segment or field (ERR-2 can name nothing else), None for a group.
    """
    if found := _MISSING.fullmatch(said):
        return _missing(_short(found.group(1)), found.group(2), segments)
    if found := _TOO_MANY.fullmatch(said):
        child = _short(found.group(2))
        where = child if _SEGMENT.fullmatch(child) else None
        return (
            f"rule 'repetitions': {child} occurs more often than {_short(found.group(1))} allows",
            where,
        )
    if found := _DATATYPE.fullmatch(said):
        where = _field_location(found.group(3), segments, empty=False)
        return (
            f"rule 'data type': {_field_name(found.group(3))} is {found.group(1)}, "
            f"the version defines {found.group(4)}",
            where,
        )
    if found := _MAX_REACHED.fullmatch(said):
        group, limit, parent = (_short(found.group(n)) for n in (1, 2, 3))
        return (
            f"rule 'repetitions': {group} may occur "
            f"{'once' if limit == '1' else f'{limit} times'} in {parent}; here it occurs again",
            group if _SEGMENT.fullmatch(group) else None,
        )
    if kind == "OperationNotAllowed":
        return "rule 'known structure': hl7apy has no definition of this version or type", "MSH"
    return f"{kind}: {said}", "MSH"


def _missing(parent: str, child: str, segments: list[str]) -> tuple[str, str | None]:
    if _FIELD.fullmatch(child):
        where = _field_location(child, segments, empty=True)
        return f"rule 'required': field {_field_name(child)} is empty", where
    if _SEGMENT.fullmatch(child):
        return f"rule 'required': segment {child} is missing from {parent}", child
    return f"rule 'required': group {_short(child)} is missing from {parent}", None


def _field_location(name: str, segments: list[str], *, empty: bool) -> str:
    """``ORC[2].7``: the first occurrence of the segment whose field is empty (or valued)."""
    found = _FIELD.fullmatch(name)
    if found is None:
        return name
    segment, number = found.group(1), int(found.group(2))
    occurrences = [s for s in segments if s.startswith(segment)]
    for index, text in enumerate(occurrences, start=1):
        fields = text.split(text[3], number + 1) if len(text) > 3 else []
        # MSH-1 is the separator itself, so MSH field N is at split index N - 1.
        position = number - 1 if segment == "MSH" else number
        value = fields[position] if position < len(fields) else ""
        if (value == "") is empty:
            return f"{segment}[{index}].{number}"
    return f"{segment}.{number}"


def _field_name(name: str) -> str:
    found = _FIELD.fullmatch(name)
    return f"{found.group(1)}-{int(found.group(2))}" if found else name


def _short(name: str) -> str:
    """``ORU_R01_ORDER_OBSERVATION`` -> ``ORDER_OBSERVATION``: the group's name in the standard."""
    return re.sub(r"^[A-Z]{3}_[A-Z]\d{2}_", "", name)
