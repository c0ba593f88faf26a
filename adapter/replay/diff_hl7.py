"""Field-level comparison of two HL7 v2 messages, named the way an interface analyst reads them.

Segments are matched by name and occurrence (``OBX[2]`` is the second OBX); a difference is named
down to the component (``OBX[2]-5.1``) when both sides have the same repetitions. Values are
compared as sent (escapes kept). Trailing empty fields, repetitions and components count as
absent, so ``PID|1||X`` equals ``PID|1||X||``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from adapter.ingest import er7
from adapter.replay.diff import Change

_ABSENT = "(absent)"
_T = TypeVar("_T")


@dataclass(frozen=True)
class _Field:
    """One field as repetitions of components, trailing empties removed at every level."""

    repetitions: tuple[tuple[str, ...], ...]

    def text(self, separators: er7.Separators) -> str:
        return separators.repetition.join(
            separators.component.join(components) for components in self.repetitions
        )


def parse(raw: bytes) -> er7.Message:
    """One message's bytes as parsed segments; raises MalformedMessage / EncodingError."""
    messages = er7.split_messages(raw)
    if len(messages) != 1:
        raise ValueError(f"expected one HL7 v2 message, found {len(messages)}")
    return er7.parse_message(er7.decode_message(messages[0]).text)


def diff_messages(
    before: er7.Message, after: er7.Message, ignore: Sequence[str] = ()
) -> list[Change]:
    """Every field that differs; ``ignore`` holds field names such as ``MSH-7`` or ``OBX-14``."""
    ignored = {name.upper() for name in ignore}
    old, new = _named_segments(before), _named_segments(after)
    changes: list[Change] = []
    for name in [*old, *(n for n in new if n not in old)]:
        if name not in new:
            changes.append(Change(name, "present", "removed"))
        elif name not in old:
            changes.append(Change(name, _ABSENT, "added"))
        else:
            _diff_segment(name, old[name], new[name], ignored, changes)
    return changes


def _named_segments(message: er7.Message) -> dict[str, er7.Segment]:
    seen: dict[str, int] = {}
    named: dict[str, er7.Segment] = {}
    for segment in message.segments:
        seen[segment.name] = seen.get(segment.name, 0) + 1
        count = seen[segment.name]
        named[segment.name if count == 1 else f"{segment.name}[{count}]"] = segment
    return named


def _diff_segment(
    name: str, a: er7.Segment, b: er7.Segment, ignored: set[str], out: list[Change]
) -> None:
    for n in range(1, max(a.field_count, b.field_count) + 1):
        if f"{a.name}-{n}" in ignored:
            continue
        x, y = _field(a, n), _field(b, n)
        if x == y:
            continue
        where = f"{name}-{n}"
        if len(x.repetitions) == len(y.repetitions) == 1 and n > 2:
            _diff_components(where, x.repetitions[0], y.repetitions[0], out)
        else:
            out.append(
                Change(where, x.text(a.separators) or _ABSENT, y.text(b.separators) or _ABSENT)
            )


def _diff_components(where: str, a: tuple[str, ...], b: tuple[str, ...], out: list[Change]) -> None:
    if len(a) <= 1 and len(b) <= 1:
        out.append(Change(where, (a or ("",))[0] or _ABSENT, (b or ("",))[0] or _ABSENT))
        return
    for c in range(max(len(a), len(b))):
        x = a[c] if c < len(a) else ""
        y = b[c] if c < len(b) else ""
        if x != y:
            out.append(Change(f"{where}.{c + 1}", x or _ABSENT, y or _ABSENT))


def _field(segment: er7.Segment, n: int) -> _Field:
    if n <= 2 and segment.name == "MSH":
        return _Field(((segment.raw(n),),) if segment.raw(n) else ())
    repetitions = [
        tuple(_trim(segment.raw_components(n, rep)))
        for rep in range(1, len(segment.raw_repetitions(n)) + 1)
    ]
    return _Field(tuple(_trim(repetitions)))


def _trim(values: Sequence[_T]) -> list[_T]:
    items = list(values)
    while items and not items[-1]:
        items.pop()
    return items
