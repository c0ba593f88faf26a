"""The fuzzing invariant, shared by the atheris harness (``run.py``) and the regression test.

For any bytes given to the pipeline as HL7 v2 or as FHIR: no crash (no exception escapes, no
``INTERNAL`` or ``OUTPUT-INVALID`` outcome: bad input gets its specific error), and every Bundle
produced passes the FHIR R4 JSON schema and the fhir.resources models.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: fhir_validation

from fhir_validation import assert_valid_r4

from adapter.config import Settings
from adapter.model import SourceFormat
from adapter.pipeline import Context, RawMessage, process

FORMATS = {"hl7v2": SourceFormat.HL7V2, "fhir": SourceFormat.FHIR}
BUGS = frozenset({"INTERNAL", "OUTPUT-INVALID"})


class InvariantBroken(AssertionError):
    """The pipeline crashed on an input, or produced a Bundle FHIR R4 refuses."""


@cache
def context() -> Context:
    return Context.from_settings(Settings())


def check(data: bytes, kind: str) -> None:
    """Raise InvariantBroken unless ``data`` gets a specific error or a valid Bundle."""
    outcome = process(RawMessage(data, FORMATS[kind]), context())
    if outcome.error is not None:
        if outcome.error.code in BUGS:
            raise InvariantBroken(f"{outcome.error.code}: {outcome.error.reason}")
        return
    if outcome.bundle_json is None:
        raise InvariantBroken("neither an error nor a Bundle")
    try:
        assert_valid_r4(outcome.bundle_json)
    except AssertionError as invalid:
        raise InvariantBroken(f"invalid Bundle: {str(invalid)[:2000]}") from None
