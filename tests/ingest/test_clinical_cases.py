"""Cases from the clinical review: messages whose reading must not change a HER2 result silently.

Each test builds a small ORU^R01, runs the whole pipeline and states what a pathologist expects.
"""

from __future__ import annotations

import pytest
from mapping_support import example_settings

from adapter.model import Classification, ReportStatus, SourceFormat, Tissue
from adapter.pipeline import Context, Outcome, RawMessage, process

HEADER = "MSH|^~\\&|{app}|LAB|HUB|HUB|20240312101500||ORU^R01^ORU_R01|{id}|P|2.5.1"
PID = "PID|1||MRN1^^^HOSP^MR"
OBR = "OBR|1|PL1|FI1|PROG^Prognostic markers^L|||20240310083000" + "|" * 17 + "{status}"
SPM_BREAST = "SPM|1|^S1||TISS^Tissue^HL70487|||||80248007^Left breast structure^SCT"
IHC = "85319-2^HER2 IHC^LN"
RATIO = "49683-6^HER2/CEP17 ratio^LN"
HER2 = "74860-8^HER2 copies^LN"
CEP17 = "74861-6^CEP17 copies^LN"


def obx(n: int, kind: str, code: str, value: str, status: str = "F", sub_id: str = "") -> str:
    return f"OBX|{n}|{kind}|{code}|{sub_id}|{value}||||||{status}"


def run(
    *segments: str,
    report_status: str = "F",
    site: str = SPM_BREAST,
    header_app: str = "LIS",
    error: str | None = None,
) -> Outcome:
    """``error``: the code expected beside the Bundle (a value not understood)."""
    lines = [HEADER.format(app=header_app, id="case"), PID, OBR.format(status=report_status)]
    lines.extend(segments)
    if site:
        lines.append(site)
    outcome = process(
        RawMessage("\r".join(lines).encode(), SourceFormat.HL7V2),
        Context.from_settings(example_settings()),
    )
    assert getattr(outcome.error, "code", None) == error, outcome.error
    assert outcome.bundle is not None
    return outcome


def only(outcome: Outcome) -> Classification:
    (classification,) = outcome.classifications
    return classification


def test_a_cep17_not_counted_does_not_discard_a_group_1_count() -> None:
    """Ratio 3.1 and 8.2 HER2 copies with CEP17 'cannot be obtained': still group 1, positive."""
    outcome = run(
        obx(1, "CWE", IHC, "0^Negative (0)^L"),
        obx(2, "NM", RATIO, "3.1"),
        obx(3, "NM", HER2, "8.2"),
        obx(4, "NM", CEP17, "", status="X"),
    )
    result = only(outcome)
    assert (result.official_result.value, result.ish_group) == ("positive", 1)
    assert "ISH-VALUE-FAILED" in [w.code for w in outcome.records[0].warnings]


def test_a_failed_stain_beside_a_repeat_stain_uses_the_repeat() -> None:
    """A first IHC that could not be scored and a repeat scored 3+: the repeat counts."""
    result = only(
        run(
            obx(1, "CWE", IHC, "", status="X", sub_id="1"),
            obx(2, "CWE", IHC, "3+^Positive (3+)^L", sub_id="2"),
        )
    )
    assert result.official_result.value == "positive"


def test_a_correction_in_the_same_message_replaces_the_value() -> None:
    """OBX 2+ final, then the same result (code and sub-id) corrected to 3+: 3+ is used."""
    outcome = run(
        obx(1, "CWE", IHC, "2+^Equivocal (2+)^L", sub_id="1"),
        obx(2, "CWE", IHC, "3+^Positive (3+)^L", status="C", sub_id="1"),
    )
    assert only(outcome).official_result.value == "positive"
    assert outcome.records[0].report_status is ReportStatus.CORRECTED


def test_a_preliminary_then_final_count_is_not_a_recount() -> None:
    """A count sent preliminary then final is one count: group 2 with IHC 2+ stays pending."""
    result = only(
        run(
            obx(1, "CWE", IHC, "2+^Equivocal (2+)^L"),
            obx(2, "NM", RATIO, "2.1", status="P", sub_id="1"),
            obx(3, "NM", HER2, "3.4", status="P", sub_id="1"),
            obx(4, "NM", RATIO, "2.1", sub_id="1"),
            obx(5, "NM", HER2, "3.4", sub_id="1"),
        )
    )
    assert result.official_result.value == "equivocal"
    assert "pending-workup" in [flag.code.value for flag in result.flags]


@pytest.mark.parametrize(
    "note",
    [
        "Recount: not performed",
        "Not recounted",
        "Recount recommended",
        "Recount will be performed by a second pathologist",
        "To be reviewed by an additional observer",
        "Second observer review pending",
    ],
)
def test_a_recount_that_did_not_happen_leaves_the_work_up_pending(note: str) -> None:
    """Group 2 with IHC 2+ and a note that only mentions a recount: equivocal, pending."""
    result = only(
        run(
            obx(1, "CWE", IHC, "2+^Equivocal (2+)^L"),
            obx(2, "NM", RATIO, "2.1"),
            obx(3, "NM", HER2, "3.4"),
            f"NTE|1||{note}",
        )
    )
    assert result.official_result.value == "equivocal"


def test_a_recount_that_happened_completes_the_work_up() -> None:
    """Group 2 with IHC 2+ and 'Blinded recount by an additional observer': negative, HER2-low."""
    result = only(
        run(
            obx(1, "CWE", IHC, "2+^Equivocal (2+)^L"),
            obx(2, "NM", RATIO, "2.1"),
            obx(3, "NM", HER2, "3.4"),
            "NTE|1||Blinded recount by an additional observer: same group",
        )
    )
    assert (result.official_result.value, result.category.value) == ("negative", "HER2-low")


def test_pericardial_is_not_gastric_cardia() -> None:
    """'Pericardial effusion' names no gastroesophageal tissue."""
    outcome = run(
        obx(1, "CWE", "18474-7^HER2 IHC^LN", "1+^Negative (1+)^L"),
        site="SPM|1|^S1||FLD^Pericardial effusion^L",
    )
    assert outcome.records[0].specimen.tissue is Tissue.UNKNOWN


def test_a_preliminary_result_makes_the_report_preliminary() -> None:
    """OBR-25 final over a preliminary OBX: the report is preliminary and says so."""
    outcome = run(obx(1, "CWE", IHC, "3+^Positive (3+)^L", status="P"))
    assert outcome.records[0].report_status is ReportStatus.PRELIMINARY
    assert outcome.bundle is not None
    (report,) = [
        e["resource"]
        for e in outcome.bundle["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
    ]
    assert report["conclusion"].startswith("This report is preliminary")


def test_a_value_not_understood_is_not_echoed() -> None:
    """Free text in a result field never reaches reasons (they go into ACKs and logs)."""
    outcome = run(
        obx(1, "ST", IHC, "SMITH JOHN MRN123456"),
        obx(2, "NM", "85329-1^ER %^LN", "95"),
        error="VALUE-NOT-UNDERSTOOD",
    )
    reasons = " ".join(u.reason for u in outcome.records[0].unused)
    assert "not understood" in reasons
    assert "SMITH" not in reasons
    assert outcome.error is not None
    assert "SMITH" not in outcome.error.reason
    assert "OBX[1]" in outcome.error.reason


@pytest.mark.parametrize("value", ["150", "-5", "95-150"])
def test_a_percentage_outside_0_to_100_is_not_used(value: str) -> None:
    """ER 150% or -5% is a typo or another quantity: reported as not used, never classified."""
    outcome = run(
        obx(1, "CWE", IHC, "3+^Positive (3+)^L"),
        obx(2, "ST", "85329-1^ER %^LN", value),
        error="VALUE-NOT-UNDERSTOOD",
    )
    assert only(outcome).er_result is None
    assert [u.provenance.locator for u in outcome.records[0].unused] == ["OBX[2]"]


@pytest.mark.parametrize(
    ("cells", "official"),
    [pytest.param("12", "equivocal", id="12-cells"), pytest.param("20", "negative", id="20-cells")],
)
def test_a_recount_of_fewer_than_20_cells_does_not_complete_the_work_up(
    cells: str, official: str
) -> None:
    """Group 2, IHC 2+, and the lab's recount result given as cells counted: 20 is the minimum."""
    outcome = run(
        obx(1, "CWE", IHC, "2+^Equivocal (2+)^L"),
        obx(2, "NM", RATIO, "2.1"),
        obx(3, "NM", HER2, "3.4"),
        obx(4, "NM", "RECOUNT^ISH recount by second observer^EXL", cells),
        header_app="EXLAB-LIS",
    )
    assert only(outcome).official_result.value == official


def test_an_nte_naming_the_ihc0_sub_type_gives_it() -> None:
    """IHC 0 with an NTE 'ultralow' on the score: HER2-ultralow, as a FHIR note would give."""
    outcome = run(obx(1, "CWE", IHC, "0^Negative (0)^L"), "NTE|1||ultralow")
    assert only(outcome).category.value == "HER2-ultralow"


@pytest.mark.parametrize(
    ("text", "er_result"),
    [
        pytest.param("Positive (95%)", "positive", id="positive-95"),
        pytest.param("Low positive (5%)", "low-positive", id="low-positive-5"),
        pytest.param("Negative (<1%)", "negative", id="negative-lt1"),
    ],
)
def test_an_er_result_worded_with_its_percentage_is_read(text: str, er_result: str) -> None:
    """'Positive (95%)' in an ER result gives the percentage and the word, both used."""
    outcome = run(obx(1, "CWE", IHC, "3+^Positive (3+)^L"), obx(2, "ST", "85337-4^ER^LN", text))
    result = only(outcome)
    assert result.er_result is not None
    assert result.er_result.value == er_result
    assert outcome.records[0].unused == ()


def test_an_er_word_contradicting_its_percentage_is_flagged() -> None:
    """'Negative (95%)': no ER call is made, and the contradiction is flagged for review."""
    outcome = run(
        obx(1, "CWE", IHC, "3+^Positive (3+)^L"), obx(2, "ST", "85337-4^ER^LN", "Negative (95%)")
    )
    result = only(outcome)
    assert result.er_result is None
    assert "discordance" in [flag.code.value for flag in result.flags]
