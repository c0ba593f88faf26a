"""The profiles the emitted resources claim in ``meta.profile``, and when each is claimed.

A profile is claimed only by a resource built to meet it; tests validate every claim with
Medplum's validator against the published StructureDefinitions (tests/peers), and check the US Core
lab DiagnosticReport elements the packages there do not carry (docs/output.md).
"""

from __future__ import annotations

from typing import Final

from adapter.emit.datatypes import JsonDict

US_CORE_DIAGNOSTIC_REPORT_LAB: Final = (
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-diagnosticreport-lab"
)
"""US Core 5.0.1 DiagnosticReport Profile for Laboratory Results Reporting."""

US_CORE_PATIENT: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
"""US Core 5.0.1 Patient: identifier, name and gender are required, so only ``full`` claims it."""

MCODE_TUMOR_MARKER_TEST: Final = (
    "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-tumor-marker-test"
)
"""mCODE STU4 (4.0.0) TumorMarkerTest, derived from US Core Laboratory Result Observation."""


def meta(profile: str) -> JsonDict:
    return {"profile": [profile]}


def tumor_marker_conformant(observation: JsonDict) -> bool:
    """TumorMarkerTest wants a value (1..1): a test with none (cancelled, no result) is no claim."""
    return any(key.startswith("value") for key in observation)
