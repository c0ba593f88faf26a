"""Hand-built records and classifications for the emit tests (no ingest, no classifier)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapter.config import Settings
from adapter.model import (
    Analyte,
    AssayRecord,
    Category,
    Classification,
    Coding,
    FiredRule,
    Identifier,
    IhcResult,
    IhcScore,
    Interval,
    OfficialResult,
    Origin,
    PatientRef,
    Provenance,
    ReportedObservation,
    ReportStatus,
    ResultStatus,
    SourceFormat,
    Specimen,
    Tissue,
)

EFFECTIVE = datetime(2024, 3, 5, 14, 30, tzinfo=ZoneInfo("Europe/Berlin"))
ISSUED = datetime(2024, 3, 6, 9, 15, 12, 250000, tzinfo=UTC)
CODESYSTEM = "http://example.org/fhir/CodeSystem/her2-test"


def observation(
    code: str,
    *,
    analyte: Analyte = Analyte.HER2_IHC,
    system: str | None = "http://loinc.org",
    sub_id: str | None = None,
    locator: str = "OBX[5]",
    **values: Any,
) -> ReportedObservation:
    return ReportedObservation(
        analyte=analyte,
        provenance=Provenance(
            locator=locator, code=Coding(system=system, code=code), sub_id=sub_id
        ),
        status=values.pop("status", ResultStatus.FINAL),
        **values,
    )


def ihc_observation() -> ReportedObservation:
    return observation(
        "85319-2",
        coding=Coding(system="urn:her2-adapter:local:L", code="1+", display="Negative (1+)"),
        interpretation=("NEG",),
        notes=("Faint incomplete staining in 40% of invasive tumour cells",),
    )


def make_origin(**overrides: Any) -> Origin:
    fields: dict[str, Any] = {
        "format": SourceFormat.HL7V2,
        "message_id": "MSG-0001",
        "sending_application": "LIS",
        "sending_facility": "PATHLAB",
        "placer_order": "PL-123",
        "filler_order": "FL-456",
        "set_id": "1",
        "hl7_version": "2.5.1",
        "order_code": Coding(system="http://loinc.org", code="74885-5", display="HER2 FISH panel"),
    }
    fields.update(overrides)
    return Origin(**fields)


def make_record(**overrides: Any) -> AssayRecord:
    fields: dict[str, Any] = {
        "origin": make_origin(),
        "patient": PatientRef(
            identifiers=(
                Identifier(system="urn:her2-adapter:assigner:HOSP", value="MRN-42", type_code="MR"),
            )
        ),
        "specimen": Specimen(
            id="S24-1234",
            type=Coding(
                system="http://snomed.info/sct",
                code="122737000",
                display="Tissue specimen from breast",
            ),
            body_sites=(
                Coding(
                    system="http://snomed.info/sct", code="76752008", display="Breast structure"
                ),
            ),
            tissue=Tissue.BREAST,
        ),
        "report_status": ReportStatus.FINAL,
        "effective": EFFECTIVE,
        "issued": ISSUED,
        "her2_ihc": IhcResult(score=IhcScore.ONE),
        "observations": (
            ihc_observation(),
            observation(
                "49683-6",
                analyte=Analyte.HER2_CEP17_RATIO,
                ratio=(Decimal("1.30"), Decimal("1")),
                locator="OBX[6]",
            ),
            observation(
                "85329-1",
                analyte=Analyte.ER_PERCENT,
                number=Interval.point(Decimal("95"), "95"),
                unit="%",
                locator="OBX[7]",
            ),
        ),
    }
    fields.update(overrides)
    return AssayRecord(**fields)


def make_classification(**overrides: Any) -> Classification:
    fields: dict[str, Any] = {
        "guideline": "ASCO/CAP HER2 2018 (affirmed 2023)",
        "tissue": Tissue.BREAST,
        "official_result": OfficialResult.NEGATIVE,
        "category": Category.HER2_LOW,
        "rules": (
            FiredRule(rule_id="BR-IHC-1", citation="ASCO/CAP 2018", reason="IHC 1+: negative"),
        ),
    }
    fields.update(overrides)
    return Classification(**fields)


@pytest.fixture
def settings() -> Settings:
    return Settings(codesystem_url=CODESYSTEM)


@pytest.fixture
def record() -> AssayRecord:
    return make_record()


@pytest.fixture
def classification() -> Classification:
    return make_classification()


@pytest.fixture
def record_factory() -> Callable[..., AssayRecord]:
    return make_record


@pytest.fixture
def classification_factory() -> Callable[..., Classification]:
    return make_classification
