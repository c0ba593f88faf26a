"""Report text (issue 11): narrative and synoptic pathology reports as NAACCR Volume V feeds and
CAP-template lines carry them, each with the statements it must give, line by line.

Every report is written for this corpus (short realistic lines, no copied report). Each expected
statement is (line, analyte, score, stated, number, quantities); a report gives exactly these
statements, no more, and the warnings named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from mapping_support import example_mappings

from adapter.ingest.report_text import Source, Statement, read_text, statement_values
from adapter.mapping import MappingSet
from adapter.model import Analyte, ResultStatus

IHC, ISH, INTERP = Analyte.HER2_IHC, Analyte.HER2_ISH, Analyte.HER2_INTERPRETATION
ER, PGR = Analyte.ER_RESULT, Analyte.PGR_RESULT


@dataclass(frozen=True)
class S:
    line: int
    analyte: Analyte
    score: str | None = None
    stated: str | None = None
    number: str | None = None  # the number's text as written
    quantities: dict[str, str] = field(default_factory=dict)
    subtype: str | None = None


@dataclass(frozen=True)
class Report:
    name: str
    text: str
    statements: tuple[S, ...]
    warnings: tuple[str, ...] = ()
    lang: str = "en"


REPORTS = [
    Report(
        "cap-synoptic-her2-ihc-er-pgr",
        """BREAST BIOMARKER REPORT
Estrogen Receptor (ER) Status: Positive
Percentage of cells with nuclear positivity: 91-100%
Average intensity of staining: Strong
Progesterone Receptor (PgR) Status: Negative (<1%)
HER2 by Immunohistochemistry: Negative (Score 1+)
Ki-67: 15%""",
        (
            S(2, ER, stated="positive"),
            S(5, PGR, stated="negative", number="<1%"),
            S(6, IHC, "1+", "negative"),
        ),
    ),
    Report(
        "cap-synoptic-her2-ish",
        """HER2 (ERBB2) by ISH: Not amplified
Ratio of HER2 to CEP17 signals: 1.3
Average HER2 copy number per cell: 2.1
Average CEP17 copy number per cell: 1.6
Number of invasive tumor cells counted: 20""",
        (
            S(1, ISH, stated="negative"),
            S(2, ISH, quantities={"her2-cep17-ratio": "1.3"}),
            S(3, ISH, quantities={"her2-copies": "2.1"}),
            S(4, ISH, quantities={"cep17-copies": "1.6"}),
            S(5, ISH, quantities={"ish-cells-counted": "20"}),
        ),
    ),
    Report(
        "narrative-final-diagnosis",
        """LEFT BREAST, 2 O'CLOCK, ULTRASOUND-GUIDED CORE NEEDLE BIOPSY:
- INVASIVE DUCTAL CARCINOMA, NOTTINGHAM GRADE 2.
- Tumor cells are positive for estrogen receptor (95%) and negative for progesterone receptor.
- HER2 by IHC: Positive (Score 3+).""",
        (S(4, IHC, "3+", "positive"),),
        warnings=("TEXT-AMBIGUOUS",),
    ),
    Report(
        "narrative-one-marker-per-sentence",
        """IMMUNOHISTOCHEMISTRY:
The tumor cells are positive for estrogen receptor (90%, strong intensity).
Progesterone receptor is positive in 40% of tumor cells.
HER2 is equivocal (2+); reflex FISH to follow.""",
        (
            S(2, ER, stated="positive", number="90%"),
            S(3, PGR, stated="positive", number="40%"),
            S(4, IHC, "2+", "equivocal"),
        ),
        warnings=("TEXT-DEFERRED",),
    ),
    Report(
        "addendum-section-to-follow",
        """HER2 by IHC: Equivocal (Score 2+)

ADDENDUM TO FOLLOW:
HER2 by FISH: Amplified, ratio 2.6""",
        (S(1, IHC, "2+", "equivocal"),),
        warnings=("TEXT-DEFERRED",),
    ),
    Report(
        "pending-statements",
        """ER: Pending
PR: to follow
HER2: see addendum""",
        (),
        warnings=("TEXT-DEFERRED",),
    ),
    Report(
        "ihc0-ultralow-narrative",
        """HER2 (4B5) by IHC: Negative (score 0), faint incomplete staining in 5% of tumor cells
ER: Positive (80%)
PgR: Positive (30%)""",
        (
            S(1, IHC, "0", "negative", subtype="ultralow", quantities={"percent": "5%"}),
            S(2, ER, stated="positive", number="80%"),
            S(3, PGR, stated="positive", number="30%"),
        ),
    ),
    Report(
        "negation-not-read",
        """No HER2 amplification was identified.
Estrogen receptor: Negative (0%)""",
        (S(2, ER, stated="negative", number="0%"),),
        warnings=("TEXT-NOT-UNDERSTOOD",),
    ),
    Report(
        "value-first-lines",
        """Negative for estrogen receptor
Positive for progesterone receptor (60%)
Amplified HER2 by FISH (HER2/CEP17 ratio 4.2)""",
        (
            S(1, ER, stated="negative"),
            S(2, PGR, stated="positive", number="60%"),
            S(3, ISH, stated="positive", quantities={"her2-cep17-ratio": "4.2"}),
        ),
    ),
    Report(
        "one-line-synoptic",
        "ER: Positive (95%); PR: Positive (70%); HER2: 1+ (negative); Ki-67: 10%",
        (
            S(1, ER, stated="positive", number="95%"),
            S(1, PGR, stated="positive", number="70%"),
            S(1, IHC, "1+", "negative"),
        ),
    ),
    Report(
        "her2-overall-call-only",
        """HER2 status: Negative
ER/PR: see separate report""",
        (S(1, INTERP, stated="negative"),),
        warnings=("TEXT-AMBIGUOUS",),
    ),
    Report(
        "several-markers-one-value",
        "ER and PR: Positive",
        (),
        warnings=("TEXT-AMBIGUOUS",),
    ),
    Report(
        "german-befund",
        """Östrogenrezeptor: positiv, 90% der Tumorzellen, starke Intensität
Progesteronrezeptor: negativ (<1%)
HER2 (Immunhistochemie): Score 2+, grenzwertig
HER2 FISH: nicht amplifiziert, HER2/CEP17-Quotient 1,4
Ki-67-Index: 20%""",
        (
            S(1, ER, stated="positive", number="90%"),
            S(2, PGR, stated="negative", number="<1%"),
            S(3, IHC, "2+", "equivocal"),
            S(4, ISH, stated="negative", quantities={"her2-cep17-ratio": "1,4"}),
        ),
        lang="de",
    ),
]


@pytest.fixture(scope="module")
def senders() -> dict[str, MappingSet]:
    mappings = example_mappings()  # the German-writing example lab active
    german = mappings.for_hl7_sender(None, "PATHOLOGIE BEISPIEL")
    assert german is not mappings.default
    return {"en": mappings.default, "de": german}


def test_the_corpus_has_ten_reports_or_more() -> None:
    assert len(REPORTS) >= 10


@pytest.mark.parametrize("report", [pytest.param(r, id=r.name) for r in REPORTS])
def test_report_gives_its_statements(report: Report, senders: dict[str, MappingSet]) -> None:
    statements, warnings = read_text([("OBX[1]", report.text)], senders[report.lang])
    got = []
    for statement in statements:
        answer = statement.reading.answer
        got.append(
            S(
                int(statement.locator.rsplit(" ", 1)[1]),
                statement.analyte,
                answer.score.value if answer and answer.score else None,
                answer.stated.value if answer and answer.stated else None,
                statement.reading.number.text if statement.reading.number else None,
                {q.value: n.text for q, n in statement.reading.quantities},
                answer.ihc0_subtype.value if answer and answer.ihc0_subtype else None,
            )
        )
        assert statement.line in report.text.splitlines()
    assert tuple(got) == report.statements
    assert {w.code for w in warnings} == set(report.warnings)
    assert all(report.text.splitlines()[0] not in w.message for w in warnings)


def test_statements_name_their_source_and_line(senders: dict[str, MappingSet]) -> None:
    statements, _ = read_text(
        [("OBX[3]", "ER: Positive (95%)"), ("OBX[4]", "Microscopic description\nHER2 by IHC: 3+")],
        senders["en"],
    )
    assert [s.locator for s in statements] == ["OBX[3] line 1", "OBX[4] line 2"]


# --------------------------------------------------------------------------------------------
# Report text beside coded results, and numbers named in a value's words (whole pipeline)
# --------------------------------------------------------------------------------------------


def _run(*segments: str) -> tuple[list[str], str, int | None]:
    from adapter.config import Settings
    from adapter.model import SourceFormat
    from adapter.pipeline import Context, RawMessage, process

    lines = [
        "MSH|^~\\&|LIS|LAB|HUB|HUB|20240312101500||ORU^R01^ORU_R01|t1|P|2.5.1",
        "PID|1||MRN1^^^HOSP^MR",
        "OBR|1|PL1|FI1|PROG^Prognostic markers^L|||20240310083000" + "|" * 17 + "F",
        *segments,
        "SPM|1|^S1||TISS^Tissue^HL70487|||||80248007^Left breast structure^SCT",
    ]
    outcome = process(
        RawMessage("\r".join(lines).encode(), SourceFormat.HL7V2), Context.from_settings(Settings())
    )
    assert outcome.error is None, outcome.error
    (record,) = outcome.records
    (result,) = outcome.classifications
    return [w.code for w in record.warnings], result.category.value, result.ish_group


def test_a_text_ratio_that_differs_from_the_coded_one_is_said_not_used() -> None:
    warnings, category, group = _run(
        "OBX|1|CWE|85319-2^HER2 IHC^LN||1+^Negative (1+)^L||||||F",
        "OBX|2|NM|49683-6^HER2/CEP17 ratio^LN||1.3||||||F",
        "OBX|3|NM|74860-8^HER2 copies^LN||2.5||||||F",
        "OBX|4|TX|22637-3^Final diagnosis^LN||HER2 by FISH: Amplified (ratio 2.6)||||||F",
    )
    assert "TEXT-DISAGREES" in warnings
    assert (category, group) == ("HER2-low", 5)


def test_a_text_that_agrees_with_the_coded_result_adds_nothing() -> None:
    warnings, category, _ = _run(
        "OBX|1|CWE|85319-2^HER2 IHC^LN||3+^Positive (3+)^L||||||F",
        "OBX|2|TX|22637-3^Final diagnosis^LN||HER2 by IHC: Positive (Score 3+)||||||F",
    )
    assert "TEXT-DISAGREES" not in warnings
    assert category == "HER2-positive"


def test_a_ratio_named_in_words_that_differs_from_the_reported_one_is_not_a_recount() -> None:
    """'Amplified (ratio 2.6)' beside a ratio OBX of 1.3: said (VALUE-DISAGREES), never a
    second count, and the reported ratio decides."""
    warnings, category, group = _run(
        "OBX|1|CWE|85319-2^HER2 IHC^LN||2+^Equivocal (2+)^L||||||F",
        "OBX|2|ST|85318-4^HER2 ISH^LN||Amplified (ratio 2.6)||||||F",
        "OBX|3|NM|49683-6^HER2/CEP17 ratio^LN||1.3||||||F",
        "OBX|4|NM|74860-8^HER2 copies^LN||2.5||||||F",
    )
    assert "VALUE-DISAGREES" in warnings
    assert "SECOND-COUNT" not in warnings
    assert group == 5
    assert category == "HER2-low"


def test_allred_and_intensity_are_kept_and_the_percentage_decides() -> None:
    from adapter.config import Settings
    from adapter.model import SourceFormat
    from adapter.pipeline import Context, RawMessage, process

    lines = [
        "MSH|^~\\&|LIS|LAB|HUB|HUB|20240312101500||ORU^R01^ORU_R01|t2|P|2.5.1",
        "PID|1||MRN1^^^HOSP^MR",
        "OBR|1|PL1|FI1|PROG^Prognostic markers^L|||20240310083000" + "|" * 17 + "F",
        "OBX|1|ST|85337-4^ER^LN||Positive, 5% of tumor cells, weak intensity, Allred 3||||||F",
        "SPM|1|^S1||TISS^Tissue^HL70487|||||80248007^Left breast structure^SCT",
    ]
    outcome = process(
        RawMessage("\r".join(lines).encode(), SourceFormat.HL7V2), Context.from_settings(Settings())
    )
    (record,) = outcome.records
    er = record.er
    assert er is not None
    assert er.allred is not None
    assert er.percent is not None
    assert (er.allred.value, er.intensity, er.percent.value) == (3, "weak", 5)
    assert outcome.classifications[0].er_result is not None
    assert outcome.classifications[0].er_result.value == "low-positive"


@pytest.mark.parametrize(
    ("line", "code"),
    [
        pytest.param("HER2 by Immunohistochemistry: Negative (Score 1+)", "18474-7", id="ihc"),
        pytest.param("HER2 (ERBB2) by ISH: Not amplified", "31150-6", id="ish"),
        pytest.param("Ratio of HER2 to CEP17 signals: 1.3", "49683-6", id="ratio"),
        pytest.param("Average HER2 copy number per cell: 2.1", "74860-8", id="her2-copies"),
        pytest.param("Average CEP17 copy number per cell: 1.6", "74861-6", id="cep17-copies"),
        pytest.param("HER2 status: Negative", "48676-1", id="interpretation"),
        pytest.param("Estrogen receptor: Positive (95%)", "40556-3", id="er"),
        pytest.param("Progesterone receptor: Negative (<1%)", "40557-1", id="pgr"),
        pytest.param("Number of invasive tumor cells counted: 20", None, id="cells-no-loinc"),
    ],
)
def test_a_statement_carries_the_loinc_code_of_its_kind(
    senders: dict[str, MappingSet], line: str, code: str | None
) -> None:
    """codes.md's any-tissue LOINC code for the kind of result (a line does not say the tissue);
    a kind codes.md names no code for keeps none. The value stays the line, read from text."""
    statements, _ = read_text([("OBX[1]", line)], senders["en"])
    (value,) = statement_values(statements, ResultStatus.FINAL)
    provenance = value.observation.provenance
    assert provenance.from_text
    assert provenance.code is not None
    assert provenance.code.code == code
    assert provenance.code.system == ("http://loinc.org" if code else None)
    assert value.observation.text == line


# --------------------------------------------------------------------------------------------
# Values over several lines: CAP-template labels with the value below, continued statements
# --------------------------------------------------------------------------------------------


def _read(senders: dict[str, MappingSet], *sources: Source) -> tuple[list[Statement], set[str]]:
    statements, warnings = read_text(list(sources), senders["en"])
    return statements, {w.code for w in warnings}


def test_a_label_line_takes_its_value_from_the_next_line(senders: dict[str, MappingSet]) -> None:
    """A CAP-template label on a line of its own, the value indented below it."""
    statements, warnings = _read(
        senders,
        ("OBX[2]", "HER2 (ERBB2) STATUS BY IMMUNOHISTOCHEMISTRY:\n    NEGATIVE (SCORE 1+)"),
    )
    (statement,) = statements
    assert statement.analyte is IHC
    assert statement.reading.answer is not None
    assert statement.reading.answer.score is not None
    assert statement.reading.answer.score.value == "1+"
    assert statement.locator == "OBX[2] lines 1-2"
    assert statement.line == "HER2 (ERBB2) STATUS BY IMMUNOHISTOCHEMISTRY: NEGATIVE (SCORE 1+)"
    assert warnings == set()


def test_a_label_and_its_value_in_two_obx_segments(senders: dict[str, MappingSet]) -> None:
    """One OBX per report line (NAACCR FT feeds): the value is in the next segment of the run."""
    run = "http://loinc.org|22639-9"
    statements, _ = _read(
        senders,
        ("OBX[4]", "Estrogen Receptor (ER) Status:", run),
        ("OBX[5]", "Positive (95%)", run),
    )
    (statement,) = statements
    assert statement.analyte is ER
    assert statement.reading.number is not None
    assert statement.reading.number.text == "95%"
    assert statement.locator == "OBX[4] line 1 to OBX[5] line 1"
    assert statement.sources == ("OBX[4]", "OBX[5]")


@pytest.mark.parametrize(
    "runs",
    [
        pytest.param(("LN|22637-3", "LN|22639-9"), id="another-code"),
        pytest.param((None, None), id="no-run"),
    ],
)
def test_lines_do_not_run_on_into_another_text(
    senders: dict[str, MappingSet], runs: tuple[str | None, str | None]
) -> None:
    """A label at the end of one text (the final diagnosis) takes nothing from the next."""
    statements, warnings = _read(
        senders, ("OBX[1]", "ER Status:", runs[0]), ("OBX[2]", "Positive (95%)", runs[1])
    )
    assert statements == []
    assert "TEXT-NOT-UNDERSTOOD" in warnings


@pytest.mark.parametrize(
    "after",
    [
        pytest.param("", id="end-of-text"),
        pytest.param("\n\nPgR: Negative (<1%)", id="blank-line"),
        pytest.param("\nPgR: Negative (<1%)", id="next-marker"),
    ],
)
def test_a_label_without_a_value_gives_nothing_and_is_said(
    senders: dict[str, MappingSet], after: str
) -> None:
    """A label whose value never comes is not read into the next marker's statement."""
    statements, warnings = _read(senders, ("OBX[1]", f"ER Status:{after}"))
    assert [s.analyte for s in statements] == ([PGR] if after else [])
    assert "TEXT-NOT-UNDERSTOOD" in warnings


def test_a_deferring_value_below_its_label_gives_no_result(
    senders: dict[str, MappingSet],
) -> None:
    statements, warnings = _read(senders, ("OBX[1]", "HER2 by FISH:\n  Pending"))
    assert statements == []
    assert warnings == {"TEXT-DEFERRED"}


def test_a_statement_continued_on_the_next_line_is_read_whole(
    senders: dict[str, MappingSet],
) -> None:
    """The continuation qualifies the statement: IHC 0 with faint staining in 5% is ultralow."""
    statements, warnings = _read(
        senders,
        (
            "OBX[1]",
            "HER2 by IHC: Negative (score 0), faint incomplete staining\nin 5% of tumor cells",
        ),
    )
    (statement,) = statements
    answer = statement.reading.answer
    assert answer is not None
    assert answer.ihc0_subtype is not None
    assert answer.ihc0_subtype.value == "ultralow"
    assert {q.value: n.text for q, n in statement.reading.quantities} == {"percent": "5%"}
    assert statement.locator == "OBX[1] lines 1-2"
    assert warnings == set()


def test_an_open_parenthesis_runs_on_whatever_the_case(senders: dict[str, MappingSet]) -> None:
    statements, _ = _read(senders, ("OBX[1]", "ESTROGEN RECEPTOR: POSITIVE (95%,\nSTRONG)"))
    (statement,) = statements
    assert statement.reading.number is not None
    assert statement.reading.number.text == "95%"
    assert statement.locator == "OBX[1] lines 1-2"


def test_a_continuation_not_understood_takes_the_statement_back(
    senders: dict[str, MappingSet],
) -> None:
    """Never half a statement: a continuation that cannot be read may change the meaning."""
    statements, warnings = _read(
        senders, ("OBX[1]", "HER2 by IHC: Positive (3+)\nin rare scattered foci only")
    )
    assert statements == []
    assert warnings == {"TEXT-NOT-UNDERSTOOD"}


def test_a_new_sentence_or_marker_is_not_a_continuation(senders: dict[str, MappingSet]) -> None:
    statements, _ = _read(
        senders,
        ("OBX[1]", "ER: Positive (95%)\nPR: Positive (40%)\nControls appropriate."),
    )
    assert [(s.analyte, s.locator) for s in statements] == [
        (ER, "OBX[1] line 1"),
        (PGR, "OBX[1] line 2"),
    ]
