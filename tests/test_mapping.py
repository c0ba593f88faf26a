"""Mapping files: loading, look-ups, per-sender overrides and validation.

Expected tables are written by hand from codes.md and her2-rules.md section 8, never copied from
the mapping files themselves.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mapping_support import example_mappings
from typer.testing import CliRunner

from adapter.cli import app
from adapter.config import default_mappings_dir
from adapter.errors import MappingFileError
from adapter.ingest import grammar
from adapter.mapping import LOCAL_SYSTEM_PREFIX, Answer, Mappings, MappingSet
from adapter.model import (
    Analyte,
    Ihc0Subtype,
    IhcScore,
    Interpretation,
    Procedure,
    ReportStatus,
    ResultStatus,
    Tissue,
)


def worded(mapping: MappingSet, text: str) -> Answer | None:
    """What a wording means as an IHC value (the grammar's reading), ``None`` if not understood."""
    reading = grammar.read(mapping, text, Analyte.HER2_IHC)
    return reading.answer if reading.problem is None else None


LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
CAP_ECC = "https://cap.org/eCC"
EXAMPLE_LAB = "https://lis.example-pathology.org/codes"


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return example_mappings()


@pytest.fixture(scope="module")
def default(mappings: Mappings) -> MappingSet:
    return mappings.default


@pytest.fixture(scope="module")
def example_lab(mappings: Mappings) -> MappingSet:
    return mappings.for_hl7_sender(None, "EXAMPLE PATHOLOGY")


# --------------------------------------------------------------------------------------------
# Shipped mappings: result codes (codes.md "Incoming result codes")
# --------------------------------------------------------------------------------------------

# (LOINC, analyte, the code's own tissue scope): "in Breast cancer specimen" -> breast,
# "in Tissue" -> None (left to the specimen).
LOINC_RESULT_CODES = [
    ("85319-2", Analyte.HER2_IHC, Tissue.BREAST),
    ("18474-7", Analyte.HER2_IHC, None),
    ("85318-4", Analyte.HER2_ISH, Tissue.BREAST),
    ("31150-6", Analyte.HER2_ISH, None),
    ("48676-1", Analyte.HER2_INTERPRETATION, None),
    ("49683-6", Analyte.HER2_CEP17_RATIO, None),
    ("74860-8", Analyte.HER2_COPIES, None),
    ("74861-6", Analyte.CEP17_COPIES, None),
    ("85337-4", Analyte.ER_RESULT, Tissue.BREAST),
    ("40556-3", Analyte.ER_RESULT, None),
    ("16112-5", Analyte.ER_RESULT, None),
    ("85329-1", Analyte.ER_PERCENT, Tissue.BREAST),
    ("14228-1", Analyte.ER_PERCENT, None),
    ("85339-0", Analyte.PGR_RESULT, Tissue.BREAST),
    ("40557-1", Analyte.PGR_RESULT, None),
    ("16113-3", Analyte.PGR_RESULT, None),
    ("85325-9", Analyte.PGR_PERCENT, Tissue.BREAST),
    ("14230-7", Analyte.PGR_PERCENT, None),
]


@pytest.mark.parametrize(
    ("code", "analyte", "tissue"),
    [pytest.param(*row, id=f"{row[0]}-{row[1]}") for row in LOINC_RESULT_CODES],
)
def test_loinc_result_code_maps_to_its_analyte(
    default: MappingSet, code: str, analyte: Analyte, tissue: Tissue | None
) -> None:
    """Every LOINC result code in codes.md maps to its analyte and its own tissue scope."""
    entry = default.code(LOINC, code)
    assert entry is not None
    assert (entry.analyte, entry.tissue) == (analyte, tissue)


@pytest.mark.parametrize("code", ["32996-1", "42914-2", "51981-9"])
def test_serum_her2_is_excluded_not_mapped(default: MappingSet, code: str) -> None:
    """Serum HER2 codes are excluded with a reason and never map to an analyte."""
    assert default.code(LOINC, code) is None
    reason = default.exclusion(LOINC, code)
    assert reason is not None
    assert "serum" in reason


def test_result_codes_are_matched_on_system_too(default: MappingSet) -> None:
    """A LOINC code under another system is not the LOINC code."""
    assert default.code(SNOMED, "85319-2") is None
    assert default.code(LOINC, "85319-2 ") is None


def test_fish_panel_code_is_not_a_result(default: MappingSet) -> None:
    """The OBR-4 FISH panel code 74885-5 orders results; it carries no value of its own."""
    assert default.code(LOINC, "74885-5") is None


def test_cap_ecc_her2_item_maps_to_breast_ihc(default: MappingSet) -> None:
    """The CAP eCC item 52399.100004300 "HER2 (by immunohistochemistry)" is a breast IHC score."""
    entry = default.code(CAP_ECC, "52399.100004300")
    assert entry is not None
    assert (entry.analyte, entry.tissue) == (Analyte.HER2_IHC, Tissue.BREAST)


@pytest.mark.parametrize(
    ("code", "probe"),
    [
        pytest.param("49683-6", "dual", id="ratio-implies-dual-probe"),
        pytest.param("74861-6", "dual", id="cep17-implies-dual-probe"),
        pytest.param("74860-8", None, id="her2-copies-says-nothing-of-probe"),
    ],
)
def test_ish_codes_state_probe_only_when_implied(
    default: MappingSet, code: str, probe: str | None
) -> None:
    """Codes that need CEP17 imply a dual probe; HER2 copies alone do not."""
    entry = default.code(LOINC, code)
    assert entry is not None
    assert entry.probe == probe


# --------------------------------------------------------------------------------------------
# Wordings (her2-rules.md section 8) and the "WORD (SCORE)" rule
# --------------------------------------------------------------------------------------------

Z, ONE, TWO, THREE = IhcScore.ZERO, IhcScore.ONE, IhcScore.TWO, IhcScore.THREE
POS, NEG, EQV = Interpretation.POSITIVE, Interpretation.NEGATIVE, Interpretation.EQUIVOCAL
ULTRA, NULL = Ihc0Subtype.ULTRALOW, Ihc0Subtype.NULL

# text -> (score, IHC-0 sub-type, stated, indeterminate)
WORDINGS = [
    ("Positive (3+)", THREE, None, POS, False),
    ("3+", THREE, None, None, False),
    ("Score 3+", THREE, None, None, False),
    ("POS (3+)", THREE, None, POS, False),
    ("Equivocal (2+)", TWO, None, EQV, False),
    ("Borderline (2+)", TWO, None, EQV, False),
    ("Score 2+", TWO, None, None, False),
    ("Negative (1+)", ONE, None, NEG, False),
    ("Negative (0)", Z, None, NEG, False),
    ("Score 0", Z, None, None, False),
    ("Negative (Score 0)", Z, None, NEG, False),
    ("Positive (Score 3+)", THREE, None, POS, False),
    ("ultralow", Z, ULTRA, None, False),
    ("0 with membrane staining", Z, ULTRA, None, False),
    (">0 <1+", Z, ULTRA, None, False),
    ("null", Z, NULL, None, False),
    ("no staining", Z, NULL, None, False),
    ("Indeterminate", None, None, Interpretation.INDETERMINATE, True),
    ("Negative", None, None, NEG, False),
    ("Positive", None, None, POS, False),
    ("POS", None, None, POS, False),
    ("  positive   (3+) ", THREE, None, POS, False),
    ("NEGATIVE (1+)", ONE, None, NEG, False),
]


@pytest.mark.parametrize(
    ("text", "score", "subtype", "stated", "indeterminate"),
    [pytest.param(*row, id=row[0].strip()) for row in WORDINGS],
)
def test_wording_means(
    default: MappingSet,
    text: str,
    score: IhcScore | None,
    subtype: Ihc0Subtype | None,
    stated: Interpretation | None,
    indeterminate: bool,
) -> None:
    """Each wording labs use yields its score, IHC-0 sub-type and stated result, nothing more."""
    answer = worded(default, text)
    assert answer is not None
    assert (answer.score, answer.ihc0_subtype, answer.stated, answer.indeterminate) == (
        score,
        subtype,
        stated,
        indeterminate,
    )


def test_zero_plus_is_ultralow(default: MappingSet) -> None:
    """ "0+" is IHC 0 ultralow (her2-rules.md section 1 lists it with ">0 <1+")."""
    answer = worded(default, "0+")
    assert answer is not None
    assert (answer.score, answer.ihc0_subtype) == (Z, ULTRA)


def test_negative_alone_is_not_a_score(default: MappingSet) -> None:
    """ "Negative" alone says negative but never a score (it could be 0 or 1+)."""
    answer = worded(default, "Negative")
    assert answer is not None
    assert answer.stated is NEG
    assert answer.score is None
    assert answer.ihc0_subtype is None


@pytest.mark.parametrize(
    ("text", "score", "stated"),
    [
        pytest.param("Negative (3+)", THREE, NEG, id="negative-with-3+"),
        pytest.param("Positive (0)", Z, POS, id="positive-with-0"),
        pytest.param("Equivocal (1+)", ONE, EQV, id="equivocal-with-1+"),
    ],
)
def test_contradictory_wording_keeps_both_halves(
    default: MappingSet, text: str, score: IhcScore, stated: Interpretation
) -> None:
    """A self-contradicting "WORD (SCORE)" keeps the score and the word as stated, for the rules."""
    answer = worded(default, text)
    assert answer is not None
    assert (answer.score, answer.stated) == (score, stated)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Negative (foo)", id="unknown-score-half"),
        pytest.param("Maybe (3+)", id="unknown-word-half"),
        pytest.param("approximately 3+", id="unknown-phrase"),
        pytest.param("3++", id="typo"),
    ],
)
def test_unknown_wording_means_nothing(default: MappingSet, text: str) -> None:
    """A wording the tables do not know is not guessed at."""
    assert worded(default, text) is None


# --------------------------------------------------------------------------------------------
# Answer codes (codes.md "Incoming values")
# --------------------------------------------------------------------------------------------

ANSWER_CODES = [
    (LOINC, "LA6576-8", None, POS),
    (LOINC, "LA6577-6", None, NEG),
    (LOINC, "LA11842-4", TWO, None),
    (SNOMED, "10828004", None, POS),
    (SNOMED, "260385009", None, NEG),
    (SNOMED, "1381317004", None, Interpretation.HER2_LOW),
    (CAP_ECC, "40505.100004300", Z, NEG),
]


@pytest.mark.parametrize(
    ("system", "code", "score", "stated"),
    [pytest.param(*row, id=f"{row[1]}") for row in ANSWER_CODES],
)
def test_answer_code_means(
    default: MappingSet,
    system: str,
    code: str,
    score: IhcScore | None,
    stated: Interpretation | None,
) -> None:
    """LOINC, SNOMED CT and CAP eCC answer codes map to their score or stated result."""
    answer = default.answer(system=system, code=code)
    assert answer is not None
    assert (answer.score, answer.stated) == (score, stated)


def test_unknown_answer_code_means_nothing_by_itself(default: MappingSet) -> None:
    """An unknown answer code is not guessed at: the readers then read its display text
    (tests/ingest: ``ANSWER-CODE-UNKNOWN``)."""
    assert default.answer(system=LOINC, code="LA0000-0") is None
    answer = worded(default, "Negative (1+)")
    assert answer is not None
    assert (answer.score, answer.stated) == (ONE, NEG)


def test_answer_code_is_matched_on_system(default: MappingSet) -> None:
    """A LOINC answer code under another system means nothing."""
    assert default.answer(system=SNOMED, code="LA6576-8") is None


# --------------------------------------------------------------------------------------------
# Tissue and procedure words
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tissue"),
    [
        pytest.param("Left breast, core", Tissue.BREAST, id="breast"),
        pytest.param("Mammary carcinoma", Tissue.BREAST, id="mammary"),
        pytest.param("Gastric antrum", Tissue.GASTROESOPHAGEAL, id="gastric"),
        pytest.param("Distal oesophagus", Tissue.GASTROESOPHAGEAL, id="oesophagus"),
        pytest.param("Stomach", Tissue.GASTROESOPHAGEAL, id="stomach"),
        pytest.param("Breast carcinoma metastatic to stomach", None, id="ambiguous-both"),
        pytest.param("Lymph node", None, id="neither"),
        pytest.param("", None, id="empty"),
    ],
)
def test_tissue_words(default: MappingSet, text: str, tissue: Tissue | None) -> None:
    """Free text names a tissue only when it names exactly one."""
    assert default.tissue_for_text(text) is tissue


@pytest.mark.parametrize(
    ("text", "procedure"),
    [
        pytest.param("Core needle biopsy", Procedure.BIOPSY, id="core-biopsy"),
        pytest.param("Endoscopic biopsy", Procedure.BIOPSY, id="endoscopic"),
        pytest.param("Mastectomy specimen", Procedure.SURGICAL, id="mastectomy"),
        pytest.param("Partial gastrectomy", Procedure.SURGICAL, id="gastrectomy"),
        pytest.param("Biopsy of resection margin", None, id="ambiguous-both"),
        pytest.param("Tumour tissue", None, id="neither"),
    ],
)
def test_procedure_words(default: MappingSet, text: str, procedure: Procedure | None) -> None:
    """Free text names a procedure only when it names exactly one."""
    assert default.procedure_for_text(text) is procedure


@pytest.mark.parametrize(
    ("system", "code", "tissue"),
    [
        pytest.param(SNOMED, "76752008", Tissue.BREAST, id="sct-breast"),
        pytest.param(SNOMED, "80248007", Tissue.BREAST, id="sct-left-breast"),
        pytest.param(SNOMED, "69695003", Tissue.GASTROESOPHAGEAL, id="sct-stomach"),
        pytest.param(SNOMED, "25271004", Tissue.GASTROESOPHAGEAL, id="sct-ge-junction"),
        pytest.param(SNOMED, "39607008", None, id="sct-lung-unknown"),
        pytest.param(LOINC, "76752008", None, id="wrong-system"),
    ],
)
def test_site_codes(default: MappingSet, system: str, code: str, tissue: Tissue | None) -> None:
    """Body-site codes give their tissue; unknown sites or systems give none."""
    assert default.tissue_for_code(system, code) is tissue


# --------------------------------------------------------------------------------------------
# Status maps, flags, units, coding systems (codes.md "Status mappings")
# --------------------------------------------------------------------------------------------

OBX11 = [
    ("F", ResultStatus.FINAL),
    ("P", ResultStatus.PRELIMINARY),
    ("C", ResultStatus.CORRECTED),
    ("A", ResultStatus.AMENDED),
    ("D", ResultStatus.ENTERED_IN_ERROR),
    ("W", ResultStatus.ENTERED_IN_ERROR),
    ("X", ResultStatus.CANCELLED),
    ("I", ResultStatus.PRELIMINARY),
    ("R", ResultStatus.PRELIMINARY),
    ("f", ResultStatus.FINAL),
    ("Z", None),
]


@pytest.mark.parametrize(("code", "status"), [pytest.param(*row, id=row[0]) for row in OBX11])
def test_obx11_status_map(default: MappingSet, code: str, status: ResultStatus | None) -> None:
    """OBX-11 maps to Observation.status as the HL7 v2-to-FHIR IG says; unknown codes to None."""
    assert default.observation_status_for(code) is status


OBR25 = [
    ("F", ReportStatus.FINAL),
    ("P", ReportStatus.PRELIMINARY),
    ("C", ReportStatus.CORRECTED),
    ("R", ReportStatus.PARTIAL),
    ("X", ReportStatus.CANCELLED),
    ("O", ReportStatus.REGISTERED),
    ("I", ReportStatus.REGISTERED),
    ("S", ReportStatus.REGISTERED),
    ("Q", None),
]


@pytest.mark.parametrize(("code", "status"), [pytest.param(*row, id=row[0]) for row in OBR25])
def test_obr25_status_map(default: MappingSet, code: str, status: ReportStatus | None) -> None:
    """OBR-25 maps to DiagnosticReport.status as the HL7 v2-to-FHIR IG says."""
    assert default.report_status_for(code) is status


@pytest.mark.parametrize(
    ("flag", "interpretation"),
    [
        pytest.param("POS", "POS", id="POS"),
        pytest.param("NEG", "NEG", id="NEG"),
        pytest.param("IND", "IND", id="IND"),
        pytest.param("E", "E", id="E"),
        pytest.param("A", "A", id="A"),
        pytest.param("N", "N", id="N"),
        pytest.param("pos", "POS", id="lower-case"),
        pytest.param("ZZ", None, id="unknown"),
    ],
)
def test_obx8_flags_map_one_to_one(
    default: MappingSet, flag: str, interpretation: str | None
) -> None:
    """OBX-8 flags map one-to-one onto v3-ObservationInterpretation codes."""
    assert default.interpretation_for(flag) == interpretation


@pytest.mark.parametrize(
    ("unit", "ucum"),
    [
        pytest.param("%", "%", id="percent-sign"),
        pytest.param("Percent", "%", id="percent-word"),
        pytest.param("copies/cell", "{copies}/{cell}", id="copies-per-cell"),
        pytest.param("Signals/Nucleus", "{copies}/{cell}", id="signals-per-nucleus"),
        pytest.param("ratio", "{ratio}", id="ratio"),
        pytest.param("mg/dL", None, id="unknown"),
    ],
)
def test_units_map_to_ucum(default: MappingSet, unit: str, ucum: str | None) -> None:
    """Unit texts map to UCUM codes, case-insensitively; unknown units to None."""
    assert default.unit_for(unit) == ucum


@pytest.mark.parametrize(
    ("name", "uri"),
    [
        pytest.param("LN", LOINC, id="LN"),
        pytest.param("ln", LOINC, id="lower-case"),
        pytest.param("SCT", SNOMED, id="SCT"),
        pytest.param("CAPECC", CAP_ECC, id="CAPECC"),
        pytest.param(LOINC, LOINC, id="uri-passes-through"),
        pytest.param("L", LOCAL_SYSTEM_PREFIX + "L", id="local-L"),
        pytest.param("99ABC", LOCAL_SYSTEM_PREFIX + "99ABC", id="local-99zzz"),
    ],
)
def test_system_uri(default: MappingSet, name: str, uri: str) -> None:
    """HL7 v2 coding system names become FHIR system URIs; unknown names a local system."""
    assert default.system_uri(name) == uri


def test_local_systems_are_recognised(default: MappingSet) -> None:
    """Only systems no mapping file knows are local."""
    assert default.is_local(default.system_uri("L"))
    assert not default.is_local(default.system_uri("LN"))


# --------------------------------------------------------------------------------------------
# Per-sender overrides
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("application", "facility"),
    [
        pytest.param(None, "EXAMPLE PATHOLOGY", id="by-msh4-facility"),
        pytest.param("EXLAB-LIS", None, id="by-msh3-application"),
        pytest.param("EXLAB-LIS", "SOMEWHERE ELSE", id="by-msh3-when-msh4-unknown"),
    ],
)
def test_example_lab_matched_by_hl7_sender(
    mappings: Mappings, application: str | None, facility: str | None
) -> None:
    """The example lab's file applies when MSH-4 or MSH-3 names it."""
    assert mappings.for_hl7_sender(application, facility).name == "example-lab"


def test_example_lab_matched_by_fhir_source(mappings: Mappings) -> None:
    """The example lab's file applies to its FHIR source (meta.source / MessageHeader)."""
    assert mappings.for_fhir_source("https://lis.example-pathology.org/fhir").name == "example-lab"


@pytest.mark.parametrize(
    ("application", "facility"),
    [
        pytest.param(None, None, id="no-sender"),
        pytest.param("OTHER-LIS", "OTHER LAB", id="unknown-sender"),
        pytest.param(None, "example pathology", id="facility-case-differs"),
    ],
)
def test_unknown_sender_gets_defaults(
    mappings: Mappings, application: str | None, facility: str | None
) -> None:
    """A sender no file names gets the defaults only: no local codes, no default tissue."""
    chosen = mappings.for_hl7_sender(application, facility)
    assert chosen is mappings.default
    assert chosen.default_tissue is None


def test_unknown_fhir_source_gets_defaults(mappings: Mappings) -> None:
    """A FHIR source no file names (or none) gets the defaults."""
    assert mappings.for_fhir_source("https://elsewhere.org/fhir") is mappings.default
    assert mappings.for_fhir_source(None) is mappings.default


EXAMPLE_LAB_CODES = [
    ("HER2IHC", Analyte.HER2_IHC),
    ("HER2SUB", Analyte.HER2_IHC0_SUBTYPE),
    ("HER2RATIO", Analyte.HER2_CEP17_RATIO),
    ("HER2CN", Analyte.HER2_COPIES),
    ("CEP17CN", Analyte.CEP17_COPIES),
    ("HER2SP", Analyte.HER2_COPIES),
    ("ERPCT", Analyte.ER_PERCENT),
    ("PRPCT", Analyte.PGR_PERCENT),
    ("RECOUNT", Analyte.ISH_RECOUNT),
]


@pytest.mark.parametrize(
    ("code", "analyte"), [pytest.param(*r, id=r[0]) for r in EXAMPLE_LAB_CODES]
)
def test_example_lab_local_codes(
    mappings: Mappings, example_lab: MappingSet, code: str, analyte: Analyte
) -> None:
    """The example lab's local codes (system EXL) map for that lab and for no one else."""
    system = example_lab.system_uri("EXL")
    assert system == EXAMPLE_LAB
    entry = example_lab.code(system, code)
    assert entry is not None
    assert entry.analyte is analyte
    assert mappings.default.code(mappings.default.system_uri("EXL"), code) is None


def test_example_lab_keeps_the_defaults(example_lab: MappingSet) -> None:
    """A sender file adds to the defaults: LOINC codes and wordings still work for it."""
    assert example_lab.code(LOINC, "85319-2") is not None
    assert worded(example_lab, "Negative (1+)") is not None


def test_example_lab_default_tissue(example_lab: MappingSet) -> None:
    """The example lab says once that it reports breast specimens only."""
    assert example_lab.default_tissue is Tissue.BREAST


@pytest.mark.parametrize(
    ("text", "score", "subtype", "recount"),
    [
        pytest.param("Absent", Z, NULL, False, id="absent"),
        pytest.param("Recount done", None, None, True, id="recount-done"),
    ],
)
def test_example_lab_wordings(
    mappings: Mappings,
    example_lab: MappingSet,
    text: str,
    score: IhcScore | None,
    subtype: Ihc0Subtype | None,
    recount: bool,
) -> None:
    """The example lab's own wordings mean what its file says, for that lab only."""
    answer = worded(example_lab, text)
    assert answer is not None
    assert (answer.score, answer.ihc0_subtype, answer.recount) == (score, subtype, recount)
    assert worded(mappings.default, text) is None


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


SENDER_A = """
[sender]
name = "lab-a"
applications = ["SHARED-LIS"]
facilities = ["LAB A"]
"""
SENDER_B = """
[sender]
name = "lab-b"
applications = ["B-LIS"]
facilities = ["LAB B"]
"""


def test_facility_is_matched_before_application(tmp_path: Path) -> None:
    """MSH-4 decides before MSH-3: one LIS application may serve several facilities."""
    write(tmp_path / "base.toml", "")
    write(tmp_path / "senders" / "a.toml", SENDER_A)
    write(tmp_path / "senders" / "b.toml", SENDER_B)
    loaded = Mappings.load(tmp_path)
    assert loaded.for_hl7_sender("SHARED-LIS", "LAB B").name == "lab-b"
    assert loaded.for_hl7_sender("SHARED-LIS", "UNKNOWN").name == "lab-a"


@pytest.mark.parametrize("kind", ["facilities", "applications", "fhir_sources"])
def test_two_sender_files_claiming_one_identity_are_refused(tmp_path: Path, kind: str) -> None:
    """Which lab's tables apply never depends on the order of file names: a facility (or
    application, or FHIR source) claimed by two sender files fails the load, naming both."""
    write(tmp_path / "base.toml", "")
    write(tmp_path / "senders" / "a.toml", f'[sender]\nname = "lab-a"\n{kind} = ["SHARED"]\n')
    write(tmp_path / "senders" / "b.toml", f'[sender]\nname = "lab-b"\n{kind} = ["SHARED"]\n')
    with pytest.raises(MappingFileError) as raised:
        Mappings.load(tmp_path)
    assert raised.value.key == f"sender.{kind}"
    assert "already claimed by" in str(raised.value)
    assert "a.toml" in str(raised.value)
    assert "b.toml" in str(raised.value)


def test_sender_entries_win_over_defaults(tmp_path: Path) -> None:
    """A sender's code, wording and status entries replace the defaults' for that sender only."""
    write(
        tmp_path / "base.toml",
        """
[[codes]]
system = "urn:lab"
code = "X1"
analyte = "her2-ihc"

[[answers]]
text = "faint"
score = "1+"

[observation_status]
S = "preliminary"
""",
    )
    write(
        tmp_path / "senders" / "a.toml",
        SENDER_A
        + """
[[codes]]
system = "urn:lab"
code = "X1"
analyte = "her2-ihc0-subtype"

[[answers]]
text = "Faint"
score = "0"
ihc0_subtype = "ultralow"

[observation_status]
S = "final"
""",
    )
    loaded = Mappings.load(tmp_path)
    sender = loaded.for_hl7_sender(None, "LAB A")
    default = loaded.default
    sender_entry, default_entry = sender.code("urn:lab", "X1"), default.code("urn:lab", "X1")
    assert sender_entry is not None
    assert default_entry is not None
    assert (sender_entry.analyte, default_entry.analyte) == (
        Analyte.HER2_IHC0_SUBTYPE,
        Analyte.HER2_IHC,
    )
    sender_answer, default_answer = (
        worded(sender, "faint"),
        worded(default, "faint"),
    )
    assert sender_answer is not None
    assert default_answer is not None
    assert (sender_answer.score, default_answer.score) == (Z, ONE)
    assert sender.observation_status_for("S") is ResultStatus.FINAL
    assert default.observation_status_for("S") is ResultStatus.PRELIMINARY


def test_files_lists_defaults_then_senders(mappings: Mappings) -> None:
    """The shipped directory's seven default files and language, with the two example senders."""
    assert mappings.files == [
        "assigners.toml",
        "cap-ecc.toml",
        "display-words.toml",
        "hl7-tables.toml",
        "loinc.toml",
        "snomed.toml",
        "wordings.toml",
        "languages/de.toml",
        "senders/example-lab.toml",
        "senders/pathologie-beispiel.toml",
    ]


def test_a_language_applies_only_to_the_senders_that_write_it(mappings: Mappings) -> None:
    """German words are read for the German-writing lab only; there "null" is a bare 0."""
    german = mappings.for_hl7_sender(None, "PATHOLOGIE BEISPIEL")
    assert worded(mappings.default, "Positiv (3+)") is None
    answer = worded(german, "Positiv (3+)")
    assert answer is not None
    assert (answer.score, answer.stated) == (THREE, POS)
    default_null, german_null = worded(mappings.default, "null"), worded(german, "null")
    assert default_null is not None
    assert german_null is not None
    assert (default_null.ihc0_subtype, german_null.ihc0_subtype) == (NULL, None)
    assert german.grammar.decimal_comma
    assert not mappings.default.grammar.decimal_comma


def test_a_sender_naming_a_language_without_a_file_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "base.toml", 'description = "defaults"\n')
    write(
        tmp_path / "senders" / "lab.toml",
        '[sender]\nname = "lab"\nfacilities = ["LAB"]\nlanguages = ["fr"]\n',
    )
    with pytest.raises(MappingFileError) as raised:
        Mappings.load(tmp_path)
    assert "languages/fr.toml" in str(raised.value)
    assert raised.value.key == "sender.languages.0"


def test_a_language_file_must_not_name_a_sender(tmp_path: Path) -> None:
    write(tmp_path / "base.toml", 'description = "defaults"\n')
    write(tmp_path / "languages" / "fr.toml", '[sender]\nname = "x"\n')
    with pytest.raises(MappingFileError) as raised:
        Mappings.load(tmp_path)
    assert raised.value.key == "sender"


def test_a_grammar_word_with_two_meanings_in_one_file_is_refused(tmp_path: Path) -> None:
    write(
        tmp_path / "base.toml",
        '[grammar]\nfiller = ["faint"]\n[grammar.intensities]\nfaint = ["faint"]\n',
    )
    with pytest.raises(MappingFileError) as raised:
        Mappings.load(tmp_path)
    assert "faint" in str(raised.value)


# --------------------------------------------------------------------------------------------
# Validation of bad files
# --------------------------------------------------------------------------------------------

CODE = """
[[codes]]
system = "http://loinc.org"
code = "85319-2"
analyte = "{analyte}"
"""

BAD_DEFAULT_FILES = [
    pytest.param("codes = [", None, "not valid TOML", id="bad-toml"),
    pytest.param('colour = "red"', "colour", "Extra inputs", id="unknown-top-level-key"),
    pytest.param(
        '[[codes]]\nsystem = "s"\ncode = "1"\nanalyte = "her2-ihc"\nscore = "3+"',
        "codes.0.score",
        "Extra inputs",
        id="unknown-key-in-table",
    ),
    pytest.param(CODE.format(analyte="her3"), "codes.0.analyte", "her2-ihc", id="bad-analyte"),
    pytest.param('[[codes]]\nsystem = "s"\ncode = "1"', "codes.0.analyte", "", id="missing-key"),
    pytest.param(
        CODE.format(analyte="her2-ihc") + CODE.format(analyte="her2-ish"),
        "codes.1",
        "her2-ihc and her2-ish",
        id="conflicting-duplicate-code",
    ),
    pytest.param(
        '[[answers]]\ntext = "pos"\nsystem = "http://loinc.org"\ncode = "LA6576-8"\n'
        'stated = "positive"',
        "answers.0",
        "either text, or both system and code",
        id="answer-with-text-and-code",
    ),
    pytest.param(
        '[[answers]]\nsystem = "http://loinc.org"\nstated = "positive"',
        "answers.0",
        "either text, or both system and code",
        id="answer-with-system-but-no-code",
    ),
    pytest.param(
        '[[answers]]\ntext = "3+"\nscore = "4+"', "answers.0.score", "", id="bad-score-value"
    ),
    pytest.param('[abnormal_flags]\nPOS = "POSITIVE"', "abnormal_flags", "POSITIVE", id="v3-flag"),
    pytest.param('[observation_status]\nF = "done"', "observation_status.F", "", id="bad-status"),
    pytest.param("[tissue_words]\nlung = ['lung']", "tissue_words.lung", "", id="bad-tissue"),
]


@pytest.mark.parametrize(("text", "key", "problem"), BAD_DEFAULT_FILES)
def test_bad_file_names_file_and_key(
    tmp_path: Path, text: str, key: str | None, problem: str
) -> None:
    """A bad default file fails to load, naming the file, the key and the problem."""
    bad = write(tmp_path / "bad.toml", text)
    with pytest.raises(MappingFileError) as caught:
        Mappings.load(tmp_path)
    error = caught.value
    assert error.file == str(bad)
    if key is None:
        assert error.key is None
    else:
        assert error.key is not None
        assert error.key.startswith(key)
    assert problem in error.reason
    assert error.code == "MAPPING-INVALID"


def test_same_code_twice_with_same_analyte_is_allowed(tmp_path: Path) -> None:
    """Repeating a code with the same meaning is harmless and loads."""
    write(tmp_path / "ok.toml", CODE.format(analyte="her2-ihc") * 2)
    entry = Mappings.load(tmp_path).default.code(LOINC, "85319-2")
    assert entry is not None
    assert entry.analyte is Analyte.HER2_IHC


def test_sender_table_among_defaults_is_rejected(tmp_path: Path) -> None:
    """A [sender] table in a default file would apply a lab's entries to everyone."""
    bad = write(tmp_path / "lab.toml", SENDER_A)
    with pytest.raises(MappingFileError) as caught:
        Mappings.load(tmp_path)
    assert (caught.value.file, caught.value.key) == (str(bad), "sender")


def test_sender_file_without_sender_table_is_rejected(tmp_path: Path) -> None:
    """A file in senders/ must say whom it applies to."""
    write(tmp_path / "base.toml", "")
    bad = write(tmp_path / "senders" / "lab.toml", CODE.format(analyte="her2-ihc"))
    with pytest.raises(MappingFileError) as caught:
        Mappings.load(tmp_path)
    assert (caught.value.file, caught.value.key) == (str(bad), "sender")


def test_bad_sender_file_names_its_key(tmp_path: Path) -> None:
    """A bad key inside a sender file is named like any other."""
    write(tmp_path / "base.toml", "")
    bad = write(tmp_path / "senders" / "lab.toml", SENDER_A + 'default_tissue = "lung"\n')
    with pytest.raises(MappingFileError) as caught:
        Mappings.load(tmp_path)
    assert (caught.value.file, caught.value.key) == (str(bad), "sender.default_tissue")


def test_missing_directory_is_rejected(tmp_path: Path) -> None:
    """A mappings directory that does not exist is named in the error."""
    missing = tmp_path / "nowhere"
    with pytest.raises(MappingFileError) as caught:
        Mappings.load(missing)
    assert caught.value.file == str(missing)
    assert "does not exist" in caught.value.reason


def test_empty_directory_is_rejected(tmp_path: Path) -> None:
    """A directory without default files would leave every code unmapped."""
    with pytest.raises(MappingFileError) as caught:
        Mappings.load(tmp_path)
    assert caught.value.file == str(tmp_path)
    assert "no default mapping files" in caught.value.reason


def test_conflicting_code_across_default_files_is_rejected(tmp_path: Path) -> None:
    """Two default files may not give one code two meanings."""
    write(tmp_path / "a.toml", CODE.format(analyte="her2-ihc"))
    write(tmp_path / "b.toml", CODE.format(analyte="her2-ish"))
    with pytest.raises(MappingFileError):
        Mappings.load(tmp_path)


def test_conflicting_duplicate_wording_is_rejected(tmp_path: Path) -> None:
    """One wording (compared case- and space-insensitively) may not mean two scores."""
    wordings = '[[answers]]\ntext = "0"\nscore = "0"\n\n[[answers]]\ntext = " 0 "\nscore = "3+"\n'
    bad = write(tmp_path / "wordings.toml", wordings)
    with pytest.raises(MappingFileError) as caught:
        Mappings.load(tmp_path)
    assert (caught.value.file, caught.value.key) == (str(bad), "answers.1")


def test_blank_answer_text_is_rejected(tmp_path: Path) -> None:
    """A blank wording can match nothing sensible and is a typo."""
    write(tmp_path / "a.toml", '[[answers]]\ntext = "  "\nscore = "0"\n')
    with pytest.raises(MappingFileError):
        Mappings.load(tmp_path)


def test_two_senders_claiming_one_facility_are_rejected(tmp_path: Path) -> None:
    """Which lab's codes apply must never depend on file names."""
    write(tmp_path / "base.toml", "")
    write(tmp_path / "senders" / "a.toml", SENDER_A)
    write(tmp_path / "senders" / "b.toml", SENDER_B.replace('"LAB B"', '"LAB A"'))
    with pytest.raises(MappingFileError):
        Mappings.load(tmp_path)


# --------------------------------------------------------------------------------------------
# her2-adapter mappings check
# --------------------------------------------------------------------------------------------


def test_mappings_check_lists_every_file(tmp_path: Path) -> None:
    """A good directory exits 0 and lists each file it checked."""
    write(tmp_path / "base.toml", CODE.format(analyte="her2-ihc"))
    write(tmp_path / "senders" / "a.toml", SENDER_A)
    result = CliRunner().invoke(app, ["mappings", "check", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"ok  {tmp_path / 'base.toml'}",
        f"ok  {tmp_path / 'senders' / 'a.toml'}",
    ]


def test_mappings_check_default_is_the_shipped_directory() -> None:
    """Without an argument the shipped mappings are checked, and they pass: the defaults and the
    languages; no example is active."""
    result = CliRunner().invoke(app, ["mappings", "check"])
    assert result.exit_code == 0, result.stderr
    checked = [line.removeprefix("ok  ") for line in result.stdout.splitlines()]
    shipped = default_mappings_dir()
    assert checked == [
        *(str(p) for p in sorted(shipped.glob("*.toml"))),
        *(str(p) for p in sorted((shipped / "languages").glob("*.toml"))),
    ]


def test_mappings_check_reports_the_bad_file(tmp_path: Path) -> None:
    """A bad directory exits 1 with one stderr line: file:key and the problem."""
    bad = write(tmp_path / "base.toml", CODE.format(analyte="her3"))
    result = CliRunner().invoke(app, ["mappings", "check", str(tmp_path)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{bad}:codes.0.analyte: ")
    assert "her2-ihc" in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("name", ["missing", "a-file.toml"])
def test_mappings_check_of_no_folder_is_a_usage_error(tmp_path: Path, name: str) -> None:
    """A path that is not a folder is the user's typo (exit 2), not a bad mapping file (exit 1)."""
    write(tmp_path / "a-file.toml", CODE.format(analyte="her2-ihc"))
    result = CliRunner().invoke(app, ["mappings", "check", str(tmp_path / name)])
    assert result.exit_code == 2
    assert result.stderr == f"her2-adapter: cannot check {tmp_path / name}: no such folder\n"
    assert result.stdout == ""


def test_mappings_check_warns_about_miscoded_entries(tmp_path: Path) -> None:
    """A display naming another marker, a re-mapped default code and a mapped excluded code
    are warned about (exit 0: the files are valid, a reviewer decides)."""
    shipped = Path(__file__).resolve().parent.parent / "mappings"
    for path in shipped.glob("*.toml"):
        write(tmp_path / path.name, path.read_text(encoding="utf-8"))
    write(
        tmp_path / "senders" / "odd.toml",
        """
[sender]
name = "Odd lab"
facilities = ["ODD"]

[[codes]]
system = "http://loinc.org"
code = "85329-1"
analyte = "pgr-percent"
display = "Ki-67 proliferation index"

[[codes]]
system = "http://loinc.org"
code = "42914-2"
analyte = "her2-ihc"
""",
    )
    result = CliRunner().invoke(app, ["mappings", "check", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warn  ")]
    assert warnings == [
        "warn  senders/odd.toml: codes.0: code 85329-1: the display names ki67, not pgr-percent",
        "warn  senders/odd.toml: codes.0: re-maps the default code 85329-1 (er-percent, tissue "
        "breast) as pgr-percent, tissue None",
        "warn  senders/odd.toml: codes.1: maps 42914-2, which the defaults exclude from "
        "classification",
    ]


def test_shipped_mappings_raise_no_warning() -> None:
    """Every shipped code's display names its own marker and method."""
    result = CliRunner().invoke(app, ["mappings", "check"])
    assert not [line for line in result.stdout.splitlines() if line.startswith("warn")]


def test_remembered_look_ups_answer_as_the_first_time(default: MappingSet) -> None:
    """A text looked up again, after the memo has been filled past its bound, means the same."""
    texts = ["Positive (3+)", "breast, left", "core needle biopsy", "%"]
    first = [
        (
            worded(default, text),
            default.tissue_for_text(text),
            default.procedure_for_text(text),
            default.unit_for(text),
        )
        for text in texts
    ]
    for number in range(5000):  # more distinct texts than the memo keeps
        worded(default, f"free text {number}")
    again = [
        (
            worded(default, text),
            default.tissue_for_text(text),
            default.procedure_for_text(text),
            default.unit_for(text),
        )
        for text in texts
    ]
    assert again == first
    assert first[0][0] is not None
    assert first[0][0].score is not None
    assert first[1][1] is Tissue.BREAST
