"""The fuzzing corpus and every finding, replayed: no crash, and every Bundle valid FHIR R4.

``tests/fuzz/run.py`` (atheris, in CI for a bounded time) explores from ``tests/fuzz/corpus/``;
what it finds is kept in ``tests/fuzz/findings/`` and checked here on every run, so a fixed
crash stays fixed. Findings are named ``<kind>-crash-<sha1>`` by the entry point they came from.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz.invariant import check

FUZZ = Path(__file__).resolve().parent / "fuzz"
CASES = [
    pytest.param(path, kind, id=f"{kind}/{path.name}")
    for kind in ("hl7v2", "fhir")
    for path in sorted((FUZZ / "corpus" / kind).iterdir())
] + [
    pytest.param(path, path.name.split("-", 1)[0], id=f"finding/{path.name}")
    for path in sorted((FUZZ / "findings").iterdir())
    if path.name != "README.md"
]


@pytest.mark.parametrize(("path", "kind"), CASES)
def test_input_gets_a_specific_error_or_a_valid_bundle(path: Path, kind: str) -> None:
    check(path.read_bytes(), kind)
