"""What the ingest reads of its inputs, recorded while it reads them (for the datatype sweep).

``hl7_positions`` patches the ER7 accessors and gives every (segment, field, component,
subcomponent) the HL7 v2 ingest asked for; ``fhir_paths`` wraps the parsed JSON so that every
key read is recorded, and gives the paths (list positions as ``[]``) of the strings read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from fuzz.invariant import context

import adapter.ingest.fhir_document as fhir_document
from adapter.ingest import er7
from adapter.model import SourceFormat
from adapter.pipeline import RawMessage, process

Position = tuple[str, int, int, int]
"""Segment, field, component (0: the whole field), subcomponent (0: the whole component)."""
Path = tuple[str, ...]


@contextmanager
def _hl7_recorder() -> Iterator[set[Position]]:
    asked: set[Position] = set()
    raw, repetition = er7.Segment.raw, er7.Segment.raw_repetition
    component, subcomponents = er7.Segment.raw_component, er7.Segment.raw_subcomponents

    def raw_field(self: er7.Segment, n: int) -> str:
        asked.add((self.name, n, 0, 0))
        return raw(self, n)

    def raw_repetition(self: er7.Segment, n: int, rep: int = 1) -> str:
        asked.add((self.name, n, 0, 0))
        return repetition(self, n, rep)

    def raw_component(self: er7.Segment, n: int, c: int = 1, s: int = 1, rep: int = 1) -> str:
        asked.add((self.name, n, c, s))
        return component(self, n, c, s, rep)

    def raw_subcomponents(self: er7.Segment, n: int, c: int = 1, rep: int = 1) -> list[str]:
        asked.add((self.name, n, c, 0))
        return subcomponents(self, n, c, rep)

    with (
        mock.patch.object(er7.Segment, "raw", raw_field),
        mock.patch.object(er7.Segment, "raw_repetition", raw_repetition),
        mock.patch.object(er7.Segment, "raw_component", raw_component),
        mock.patch.object(er7.Segment, "raw_subcomponents", raw_subcomponents),
    ):
        yield asked


def hl7_positions(messages: list[bytes]) -> set[Position]:
    """Every position the HL7 v2 ingest asks for, over ``messages``."""
    with _hl7_recorder() as asked:
        for data in messages:
            process(RawMessage(data, SourceFormat.HL7V2), context())
    return asked


def hl7_value(segment: er7.Segment, position: Position) -> str:
    """The value at ``position`` in ``segment``, every repetition of it joined."""
    _, n, c, s = position
    if c == 0:
        return segment.raw(n)
    repetitions = max(1, len(segment.raw_repetitions(n)))
    if s == 0:
        return "".join(
            "".join(segment.raw_subcomponents(n, c, r)) for r in range(1, repetitions + 1)
        )
    return "".join(segment.raw_component(n, c, s, r) for r in range(1, repetitions + 1))


class _Read(dict[str, Any]):
    """A JSON object that records each key read (``get``, ``[]``, iteration)."""

    def __init__(self, items: dict[str, Any], path: Path, read: set[Path]) -> None:
        super().__init__(items)
        self._path, self._read = path, read

    def __getitem__(self, key: str) -> Any:
        self._read.add((*self._path, key))
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key in self:
            self._read.add((*self._path, key))
        return super().get(key, default)

    def _all(self) -> None:
        self._read.update((*self._path, key) for key in super().__iter__())

    def __iter__(self) -> Iterator[str]:
        self._all()
        return super().__iter__()

    def items(self) -> Any:
        self._all()
        return super().items()

    def values(self) -> Any:
        self._all()
        return super().values()


def _wrapped(node: Any, path: Path, read: set[Path]) -> Any:
    if isinstance(node, dict):
        return _Read({k: _wrapped(v, (*path, k), read) for k, v in node.items()}, path, read)
    if isinstance(node, list):
        return [_wrapped(v, (*path, "[]"), read) for v in node]
    return node


def string_paths(
    node: Any, generic: Path = (), exact: tuple[str | int, ...] = ()
) -> Iterator[tuple[Path, tuple[str | int, ...]]]:
    """(path with list positions as ``[]``, exact path) of every string, ``resourceType``
    aside (changing it changes what is read, not a value)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "resourceType":
                yield from string_paths(value, (*generic, key), (*exact, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from string_paths(value, (*generic, "[]"), (*exact, index))
    elif isinstance(node, str):
        yield generic, exact


def fhir_paths(document: bytes) -> set[Path]:
    """The paths of the strings of ``document`` that the FHIR ingest reads."""
    read: set[Path] = set()
    loads: Callable[..., Any] = fhir_document._loads

    def recording(content: str, line_offset: int = 0) -> Any:
        return _wrapped(loads(content, line_offset), (), read)

    with mock.patch.object(fhir_document, "_loads", recording):
        process(RawMessage(document, SourceFormat.FHIR), context())
    try:
        parsed = json.loads(document)
    except ValueError:
        return set()  # not JSON: nothing of it is read
    return read & {generic for generic, _ in string_paths(parsed)}
