"""One OBX segment at a time: OBX-2 value types, answers, statuses, flags, units and codes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from adapter import api
from adapter.config import default_mappings_dir
from adapter.ingest import er7
from adapter.ingest.obx import ObxOutcome, read_obx
from adapter.mapping import MappingSet, load_mappings
from adapter.model import Analyte, IhcScore, Interpretation, ResultStatus

D = Decimal
MSH = "MSH|^~\\&|LIS|LAB|HUB|HUB|20240312101500||ORU^R01|C1|P|2.5.1"
IHC = "85319-2^HER2^LN"
RATIO = "49683-6^^LN"
COPIES = "74860-8^^LN"
ER_PCT = "85329-1^^LN"


@pytest.fixture(scope="module")
def default() -> MappingSet:
    return load_mappings(default_mappings_dir()).default


def obx_segment(text: str) -> er7.Segment:
    return er7.parse_message(f"{MSH}\r{text}\r").segments[1]


def obx(
    value_type: str,
    code: str,
    value: str,
    status: str = "F",
    *,
    units: str = "",
    flags: str = "",
    observed: str = "",
    sub_id: str = "",
) -> str:
    return f"OBX|1|{value_type}|{code}|{sub_id}|{value}|{units}||{flags}|||{status}|||{observed}"


def read(mapping: MappingSet, text: str) -> ObxOutcome:
    return read_obx(obx_segment(text), 1, mapping, UTC)


def warning_codes(outcome: ObxOutcome) -> list[str]:
    return [warning.code for warning in outcome.warnings]


# --------------------------------------------------------------------------------------------
# Numbers: NM and SN
# --------------------------------------------------------------------------------------------

# (OBX-2, OBX-3, OBX-5) -> (low, low_inclusive, high, high_inclusive), ratio, warnings
NUMBERS = [
    ("NM", RATIO, "2.3", (D("2.3"), True, D("2.3"), True), None, []),
    ("NM", ER_PCT, "95", (D("95"), True, D("95"), True), None, []),
    ("SN", RATIO, "^2.3", (D("2.3"), True, D("2.3"), True), None, []),
    ("SN", RATIO, "=^2.3", (D("2.3"), True, D("2.3"), True), None, []),
    ("SN", COPIES, ">^6", (D("6"), False, None, True), None, []),
    ("SN", COPIES, ">=^6", (D("6"), True, None, True), None, []),
    ("SN", ER_PCT, "<^1", (None, True, D("1"), False), None, []),
    ("SN", ER_PCT, "<=^1", (None, True, D("1"), True), None, []),
    ("SN", RATIO, "^2.3^:^1", (D("2.3"), True, D("2.3"), True), (D("2.3"), D("1")), []),
    ("SN", RATIO, "^4.6^/^2", (D("2.3"), True, D("2.3"), True), (D("4.6"), D("2")), []),
    ("SN", ER_PCT, "^1^-^10", (D("1"), True, D("10"), True), None, []),
    ("SN", RATIO, "<0.10", (None, True, D("0.10"), False), None, ["SN-MALFORMED"]),
    ("SN", RATIO, "2.3", (D("2.3"), True, D("2.3"), True), None, ["SN-MALFORMED"]),
    ("ST", ER_PCT, "95%", (D("95"), True, D("95"), True), None, []),
    ("ST", ER_PCT, "1-10", (D("1"), True, D("10"), True), None, []),
    ("NM", ER_PCT, "<1", (None, True, D("1"), False), None, ["NM-NOT-NUMERIC"]),
]


@pytest.mark.parametrize(
    ("value_type", "code", "value", "bounds", "ratio", "warnings"),
    [pytest.param(*row, id=f"{row[0]}:{row[2]}") for row in NUMBERS],
)
def test_numeric_values(
    default: MappingSet,
    value_type: str,
    code: str,
    value: str,
    bounds: tuple[Decimal | None, bool, Decimal | None, bool],
    ratio: tuple[Decimal, Decimal] | None,
    warnings: list[str],
) -> None:
    """NM and SN values are read exactly, keeping bounds, ranges and ratios."""
    outcome = read(default, obx(value_type, code, value))
    assert outcome.value is not None, outcome.unused
    number = outcome.value.observation.number
    assert number is not None
    assert (number.low, number.low_inclusive, number.high, number.high_inclusive) == bounds
    assert outcome.value.observation.ratio == ratio
    assert warning_codes(outcome) == warnings


@pytest.mark.parametrize(
    ("value_type", "value"),
    [
        pytest.param("SN", "<>^2", id="sn-not-equal"),
        pytest.param("SN", "^2^:^0", id="sn-ratio-over-zero"),
        pytest.param("SN", "^10^-^1", id="sn-reversed-range"),
        pytest.param("SN", "~^2", id="sn-unknown-comparator"),
        pytest.param("NM", "about 2", id="nm-words"),
        pytest.param("ST", "approx. 2.3", id="st-approximate"),
    ],
)
def test_numbers_that_cannot_be_read_are_unused(
    default: MappingSet, value_type: str, value: str
) -> None:
    """A number that cannot be read exactly is not used, and the reason says so."""
    outcome = read(default, obx(value_type, RATIO, value))
    assert outcome.value is None
    assert outcome.unused is not None
    assert "not understood" in outcome.unused.reason


# --------------------------------------------------------------------------------------------
# Scores and wordings: NM, SN, ST/TX/FT, IS, CWE/CE
# --------------------------------------------------------------------------------------------

# (OBX-2, OBX-5) -> score, stated, warnings
ANSWERS = [
    ("NM", "2+", IhcScore.TWO, None, ["NM-NOT-NUMERIC"]),
    ("SN", "^2^+", IhcScore.TWO, None, []),
    ("ST", "Positive (3+)", IhcScore.THREE, Interpretation.POSITIVE, []),
    ("TX", "Negative (1+)", IhcScore.ONE, Interpretation.NEGATIVE, []),
    ("FT", "Equivocal\\.br\\(2+)", IhcScore.TWO, Interpretation.EQUIVOCAL, []),
    ("IS", "3+", IhcScore.THREE, None, []),
    ("CWE", "3+^Positive (3+)^L", IhcScore.THREE, Interpretation.POSITIVE, []),
    ("CE", "3+^Positive (3+)^L", IhcScore.THREE, Interpretation.POSITIVE, []),
    ("CWE", "2+^^99LAB", IhcScore.TWO, None, []),
    ("CWE", "LA11842-4^2+^LN", IhcScore.TWO, None, []),
    ("CWE", "LA6577-6^Negative^LN", None, Interpretation.NEGATIVE, []),
    ("CWE", "260385009^Negative^SCT", None, Interpretation.NEGATIVE, []),
    (
        "CWE",
        "LA0000-0^Negative (0)^LN",
        IhcScore.ZERO,
        Interpretation.NEGATIVE,
        ["ANSWER-CODE-UNKNOWN"],
    ),
    ("XX", "3+", IhcScore.THREE, None, ["VALUE-TYPE-UNKNOWN"]),
]


@pytest.mark.parametrize(
    ("value_type", "value", "score", "stated", "warnings"),
    [pytest.param(*row, id=f"{row[0]}:{row[1]}") for row in ANSWERS],
)
def test_answers_by_value_type(
    default: MappingSet,
    value_type: str,
    value: str,
    score: IhcScore | None,
    stated: Interpretation | None,
    warnings: list[str],
) -> None:
    """Each OBX-2 type is read into the answer the mappings give; oddities are warned about."""
    outcome = read(default, obx(value_type, IHC, value))
    assert outcome.value is not None, outcome.unused
    answer = outcome.value.answer
    assert answer is not None
    assert (answer.score, answer.stated) == (score, stated)
    assert warning_codes(outcome) == warnings


def test_formatted_text_keeps_its_line_break(default: MappingSet) -> None:
    """FT line breaks (\\.br\\) are kept in the text as sent."""
    outcome = read(default, obx("FT", IHC, "Equivocal\\.br\\(2+)"))
    assert outcome.value is not None
    assert outcome.value.observation.text == "Equivocal\n(2+)"


def test_coded_value_keeps_its_coding(default: MappingSet) -> None:
    """A CWE answer keeps code, FHIR system and display for the emitted Observation."""
    outcome = read(default, obx("CWE", IHC, "LA6577-6^Negative^LN"))
    assert outcome.value is not None
    coding = outcome.value.observation.coding
    assert coding is not None
    assert (coding.system, coding.code, coding.display) == (
        "http://loinc.org",
        "LA6577-6",
        "Negative",
    )


@pytest.mark.parametrize(
    ("value_type", "value"),
    [
        pytest.param("CWE", "LA0000-0^Whatever^LN", id="unknown-code-unknown-text"),
        pytest.param("ST", "see report", id="unknown-text"),
        pytest.param("ST", "", id="empty"),
    ],
)
def test_unknown_answers_are_unused(default: MappingSet, value_type: str, value: str) -> None:
    """An answer the mappings do not know is reported as unused, with why."""
    outcome = read(default, obx(value_type, IHC, value))
    assert outcome.value is None
    assert outcome.unused is not None
    assert outcome.unused.provenance.locator == "OBX[1]"


def test_empty_value_reason(default: MappingSet) -> None:
    """An empty OBX-5 is reported as such."""
    outcome = read(default, obx("CWE", IHC, ""))
    assert outcome.unused is not None
    assert outcome.unused.reason == "no value (OBX-5 empty)"


# --------------------------------------------------------------------------------------------
# Result codes
# --------------------------------------------------------------------------------------------


def test_alternate_code_is_tried(default: MappingSet) -> None:
    """OBX-3 with a local primary code and LOINC as the alternate (CWE-4..6) is recognised."""
    outcome = read(default, obx("CWE", "H2^HER2 IHC^L^85319-2^HER2^LN", "3+^^L"))
    assert outcome.value is not None
    assert outcome.value.analyte is Analyte.HER2_IHC


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        pytest.param("32996-1^HER2 serum^LN", "serum", id="serum-excluded"),
        pytest.param("2345-7^Glucose^LN", "not in the mappings", id="unknown-code"),
        pytest.param("85319-2^HER2", "not in the mappings", id="code-without-system"),
    ],
)
def test_unclassified_codes_are_unused(default: MappingSet, code: str, reason: str) -> None:
    """Serum HER2 and unknown codes are never classified; the reason travels with them."""
    outcome = read(default, obx("NM", code, "12"))
    assert outcome.value is None
    assert outcome.unused is not None
    assert reason in outcome.unused.reason


def test_provenance_keeps_code_sub_id_and_value(default: MappingSet) -> None:
    """The incoming code, OBX-4 sub-id, OBX-2 and OBX-5 are kept to find the value again."""
    outcome = read(default, obx("SN", RATIO, "^2.3^:^1", sub_id="2"))
    assert outcome.value is not None
    provenance = outcome.value.provenance
    assert provenance.code is not None
    assert (provenance.code.system, provenance.code.code) == ("http://loinc.org", "49683-6")
    assert provenance.sub_id == "2"
    assert provenance.value_type == "SN"
    assert provenance.value_text == "^2.3^:^1"


def test_code_scope_and_probe_come_from_the_mapping(default: MappingSet) -> None:
    """The read value carries its code's tissue scope and probe for assembly."""
    ihc = read(default, obx("CWE", IHC, "3+^^L")).value
    ratio = read(default, obx("NM", RATIO, "2.3")).value
    assert ihc is not None
    assert ratio is not None
    assert (ihc.tissue_scope, ratio.probe) == ("breast", "dual")


# --------------------------------------------------------------------------------------------
# OBX-11 status
# --------------------------------------------------------------------------------------------

STATUSES = [
    ("F", ResultStatus.FINAL, []),
    ("P", ResultStatus.PRELIMINARY, []),
    ("C", ResultStatus.CORRECTED, []),
    ("A", ResultStatus.AMENDED, []),
    ("X", ResultStatus.CANCELLED, []),
    ("I", ResultStatus.PRELIMINARY, ["STATUS-PRELIMINARY"]),
    ("R", ResultStatus.PRELIMINARY, ["STATUS-PRELIMINARY"]),
    ("Z", ResultStatus.PRELIMINARY, ["STATUS-UNKNOWN"]),
    ("", ResultStatus.PRELIMINARY, ["STATUS-UNKNOWN"]),
]


@pytest.mark.parametrize(
    ("code", "status", "warnings"), [pytest.param(*row, id=row[0] or "empty") for row in STATUSES]
)
def test_obx11_status(
    default: MappingSet, code: str, status: ResultStatus, warnings: list[str]
) -> None:
    """OBX-11 sets the observation status; anything read as preliminary but P is warned about."""
    outcome = read(default, obx("CWE", IHC, "3+^^L", code))
    assert outcome.value is not None
    assert outcome.value.observation.status is status
    assert warning_codes(outcome) == warnings


@pytest.mark.parametrize("code", ["D", "W"])
def test_entered_in_error_is_unused(default: MappingSet, code: str) -> None:
    """OBX-11 D or W: the value was entered in error and is not used."""
    outcome = read(default, obx("CWE", IHC, "3+^^L", code))
    assert outcome.value is None
    assert outcome.unused is not None
    assert "entered in error" in outcome.unused.reason
    assert outcome.status is ResultStatus.ENTERED_IN_ERROR


@pytest.mark.parametrize("value", ["", "3+^^L"])
def test_cancelled_result_is_indeterminate(default: MappingSet, value: str) -> None:
    """OBX-11 X "result cannot be obtained" is used, as an indeterminate result."""
    outcome = read(default, obx("CWE", IHC, value, "X"))
    assert outcome.value is not None
    assert outcome.value.indeterminate_reason is not None
    assert "OBX-11 X" in outcome.value.indeterminate_reason


# --------------------------------------------------------------------------------------------
# OBX-8 flags, OBX-6 units, OBX-14 time
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "interpretation", "warnings"),
    [
        pytest.param("POS", ("POS",), [], id="POS"),
        pytest.param("NEG~A", ("NEG", "A"), [], id="repeated"),
        pytest.param("ZZ", (), ["FLAG-UNKNOWN"], id="unknown"),
        pytest.param("", (), [], id="none"),
    ],
)
def test_obx8_flags(
    default: MappingSet, flags: str, interpretation: tuple[str, ...], warnings: list[str]
) -> None:
    """OBX-8 flags become v3 interpretation codes; unknown flags are warned about, not kept."""
    outcome = read(default, obx("CWE", IHC, "3+^^L", flags=flags))
    assert outcome.value is not None
    assert outcome.value.observation.interpretation == interpretation
    assert warning_codes(outcome) == warnings


@pytest.mark.parametrize(
    ("units", "unit", "ucum"),
    [
        pytest.param("%", "%", "%", id="percent"),
        pytest.param("%^percent^UCUM", "%", "%", id="coded-unit"),
        pytest.param("^Percent", "Percent", "%", id="text-only-unit"),
        pytest.param("widgets", "widgets", None, id="unknown-unit"),
        pytest.param("", None, None, id="no-unit"),
    ],
)
def test_obx6_units(default: MappingSet, units: str, unit: str | None, ucum: str | None) -> None:
    """OBX-6 is kept as sent, with its UCUM code when the mappings know it."""
    outcome = read(default, obx("NM", ER_PCT, "95", units=units))
    assert outcome.value is not None
    assert (outcome.value.observation.unit, outcome.value.observation.ucum) == (unit, ucum)


def test_obx14_is_the_observation_time(default: MappingSet) -> None:
    """OBX-14 becomes the observation's effective time."""
    outcome = read(default, obx("NM", ER_PCT, "95", observed="20240309101010+0100"))
    assert outcome.value is not None
    effective = outcome.value.observation.effective
    assert effective == datetime(2024, 3, 9, 9, 10, 10, tzinfo=UTC)


_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hl7v2"
_NOTE = b"NTE|1|L|Reviewed by a second pathologist."


def _with_note_after(data: bytes, obx_start: bytes) -> bytes:
    segments = data.split(b"\r")
    at = next(i for i, s in enumerate(segments) if s.startswith(obx_start)) + 1
    return b"\r".join([*segments[:at], _NOTE, *segments[at:]])


@pytest.mark.parametrize(
    ("value", "category", "flags"),
    [
        pytest.param(b"Score 0, staining in 8% of cells", "HER2-ultralow", set(), id="ultralow"),
        pytest.param(b"3+, heterogeneous staining", "HER2-positive", {"heterogeneity"}, id="het"),
        pytest.param(b"1+ in 5% of cells", "HER2-low", {"discordance"}, id="stained-1+"),
    ],
)
def test_a_note_keeps_what_the_value_said(value: bytes, category: str, flags: set[str]) -> None:
    """An NTE after an OBX adds a note; the value's own words still count. A note used to drop
    the value's grammar reading: 'Score 0, staining in 8% of cells' with any note became
    HER2-negative instead of HER2-ultralow, and flags the words raised were lost."""
    base = (_FIXTURES / "ihc0-ultralow-membrane.hl7").read_bytes()
    plain = base.replace(b"0 with membrane staining", value)
    for data in (plain, _with_note_after(plain, b"OBX|1|")):
        result = api.convert(data)
        (classification,) = result.classifications
        assert classification.category.value == category
        assert {f.code.value for f in classification.flags} == flags


def test_a_note_keeps_the_method_obx17_names() -> None:
    """OBX-17 'Single-probe SISH' stays stated with a note after the OBX: no probe-inferred."""
    base = (_FIXTURES / "method-single-probe-obx17.hl7").read_bytes()
    result = api.convert(_with_note_after(base, b"OBX|2|"))
    (classification,) = result.classifications
    assert classification.category.value == "HER2-positive"
    assert "probe-inferred" not in {f.code.value for f in classification.flags}
