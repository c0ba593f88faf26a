"""--strict: hl7apy's findings as the segment, field and rule an interface analyst looks up."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.errors import MalformedMessage
from adapter.ingest.hl7_strict import _explain, check_structure

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hl7v2"
GOOD = (FIXTURES / "ihc3-positive.hl7").read_text().replace("\r\n", "\n").replace("\r", "\n")
SEGMENTS = [s for s in GOOD.split("\n") if s]


def _failure(segments: list[str]) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as raised:
        check_structure("\r".join(segments))
    return raised.value


def test_a_valid_message_passes() -> None:
    check_structure("\r".join(SEGMENTS))


def test_required_field_from_a_real_message() -> None:
    error = _failure([s for s in (FIXTURES / "ish-g4-no-ihc.hl7").read_text().splitlines() if s])
    assert error.reason == "structure check: rule 'required': field ORC-7 is empty"
    assert error.location == "ORC[1].7"


def test_required_field_names_the_occurrence_that_lacks_it() -> None:
    """Of two ORCs, the second has ORC-7 empty: the location says ORC[2].7."""
    segments = ["MSH|^~\\&|A|B", "ORC|RE|1|||||1^once", "ORC|RE|2"]
    said = "Missing required child ORC.ORC_7"
    assert _explain("ValidationError", said, segments) == (
        "rule 'required': field ORC-7 is empty",
        "ORC[2].7",
    )


def test_msh_fields_count_from_the_separator() -> None:
    """MSH-1 is the field separator itself: MSH-9 is the ninth field, not the tenth."""
    segments = ["MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1"]
    said = "Datatype ST is not correct for MSH.MSH_9 (it must be MSG)"
    assert _explain("ValidationError", said, segments)[1] == "MSH[1].9"


def test_missing_segment() -> None:
    error = _failure([s for s in SEGMENTS if not s.startswith("OBR")])
    assert error.reason == (
        "structure check: rule 'required': segment OBR is missing from ORDER_OBSERVATION"
    )
    assert error.location == "OBR"


@pytest.mark.parametrize(
    ("said", "reason", "location"),
    [
        (
            "Datatype ST is not correct for OBX.OBX_5 (it must be NM)",
            "rule 'data type': OBX-5 is ST, the version defines NM",
            "OBX[1].5",
        ),
        (
            "Child limit exceeded ORU_R01_ORDER_OBSERVATION.OBR",
            "rule 'repetitions': OBR occurs more often than ORDER_OBSERVATION allows",
            "OBR",
        ),
        (
            "Cannot add <Group ORU_R01_COMMON_ORDER>: max limit (1) reached for "
            "<Group ORU_R01_ORDER_OBSERVATION>",
            "rule 'repetitions': COMMON_ORDER may occur once in ORDER_OBSERVATION; "
            "here it occurs again",
            None,
        ),
        (
            "Missing required child ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION",
            "rule 'required': group ORDER_OBSERVATION is missing from PATIENT_RESULT",
            None,
        ),
    ],
    ids=["data-type", "child-limit", "group-limit", "missing-group"],
)
def test_hl7apy_findings_in_our_words(said: str, reason: str, location: str | None) -> None:
    kind = "MaxChildLimitReached" if said.startswith("Cannot add") else "ValidationError"
    assert _explain(kind, said, SEGMENTS) == (reason, location)


def test_an_unknown_finding_keeps_hl7apy_words() -> None:
    assert _explain("InvalidName", "Invalid name for Component: MSG_4", SEGMENTS) == (
        "InvalidName: Invalid name for Component: MSG_4",
        "MSH",
    )
