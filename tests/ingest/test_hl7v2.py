"""Whole ORU^R01 messages -> AssayRecords: groups, notes, specimens, statuses, times, errors."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from mapping_support import example_mappings

from adapter.config import Settings, default_mappings_dir
from adapter.errors import MalformedMessage, NothingToClassify, UnsupportedMessage
from adapter.ingest.hl7v2 import read_message, to_records
from adapter.mapping import Mappings, load_mappings
from adapter.model import (
    AdministrativeGender,
    AssayRecord,
    Coding,
    Identifier,
    Ihc0Subtype,
    IhcScore,
    Organization,
    PersonName,
    Practitioner,
    Procedure,
    ReportStatus,
    ResultStatus,
    Tissue,
)

UTC_SETTINGS = Settings(site_timezone="UTC")
BERLIN_SETTINGS = Settings(site_timezone="Europe/Berlin")

MSH = "MSH|^~\\&|{app}|{facility}|HUB|HUB|{msh7}||{kind}|C1|P|{version}"
PID = "PID|1||MRN1^^^HOSP^MR||Doe^Jane"


def msh(
    *,
    app: str = "LIS",
    facility: str = "LAB",
    msh7: str = "20240312101500",
    kind: str = "ORU^R01^ORU_R01",
    version: str = "2.5.1",
) -> str:
    return MSH.format(app=app, facility=facility, msh7=msh7, kind=kind, version=version)


def obr(
    set_id: int = 1,
    *,
    code: str = "85319-2^HER2 IHC^LN",
    effective: str = "20240310083000",
    source: str = "",
    issued: str = "20240311120000",
    status: str = "F",
) -> str:
    fields = ["OBR", str(set_id), f"PL{set_id}", f"FI{set_id}", code, "", "", effective]
    fields += [""] * 7 + [source] + [""] * 6 + [issued, "", "", status]
    return "|".join(fields)


def obx(
    n: int, value_type: str, code: str, value: str, status: str = "F", *, sub_id: str = ""
) -> str:
    return f"OBX|{n}|{value_type}|{code}|{sub_id}|{value}||||||{status}"


IHC_3 = obx(1, "CWE", "85319-2^HER2 IHC^LN", "3+^Positive (3+)^L")
RATIO = "49683-6^HER2/CEP17^LN"


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return example_mappings()


def records(
    mappings: Mappings,
    *segments: str,
    header: str | None = None,
    settings: Settings = UTC_SETTINGS,
    encoding: str = "ascii",
) -> list[AssayRecord]:
    raw = "\r".join([header or msh(), *segments]).encode(encoding)
    return to_records(read_message(raw, settings), mappings, settings)


def one(
    mappings: Mappings,
    *segments: str,
    header: str | None = None,
    settings: Settings = UTC_SETTINGS,
    encoding: str = "ascii",
) -> AssayRecord:
    found = records(mappings, *segments, header=header, settings=settings, encoding=encoding)
    assert len(found) == 1
    return found[0]


def codes(record: AssayRecord) -> list[str]:
    return [warning.code for warning in record.warnings]


# --------------------------------------------------------------------------------------------
# Message acceptance
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "location"),
    [
        pytest.param(msh(kind="ADT^A01"), "MSH-9", id="adt-a01"),
        pytest.param(msh(kind="ORU^R30"), "MSH-9.2", id="oru-r30"),
        pytest.param(msh(version="2.1"), "MSH-12", id="version-2.1"),
        pytest.param(msh(version="2.2"), "MSH-12", id="version-2.2"),
        pytest.param(msh(version="3.0"), "MSH-12", id="version-3"),
    ],
)
def test_unsupported_messages(mappings: Mappings, header: str, location: str) -> None:
    """Only ORU^R01 in versions 2.3 to 2.8 is taken; the error names the MSH field."""
    with pytest.raises(UnsupportedMessage) as caught:
        records(mappings, PID, obr(), IHC_3, header=header)
    assert caught.value.location == location


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8"])
def test_supported_versions(mappings: Mappings, version: str) -> None:
    """Every version from 2.3 to 2.8 is read."""
    record = one(mappings, PID, obr(), IHC_3, header=msh(version=version))
    assert record.origin.hl7_version == version


def test_obx_before_obr_is_malformed(mappings: Mappings) -> None:
    """An OBX with no OBR before it belongs to no order: the message is malformed."""
    with pytest.raises(MalformedMessage) as caught:
        records(mappings, PID, IHC_3, obr())
    assert caught.value.location == "OBX[1]"


def test_obx_after_a_new_patient_without_obr_is_malformed(mappings: Mappings) -> None:
    """A new PID closes the previous order; an OBX right after it has no order."""
    with pytest.raises(MalformedMessage):
        records(mappings, PID, obr(), IHC_3, "PID|2||MRN2", IHC_3)


def test_nothing_to_classify_names_the_unused_results(mappings: Mappings) -> None:
    """A message without HER2/ER/PgR names each OBX it could not use, and why."""
    with pytest.raises(NothingToClassify) as caught:
        records(
            mappings,
            PID,
            obr(),
            obx(1, "NM", "2345-7^Glucose^LN", "5"),
            obx(2, "NM", "32996-1^HER2 serum^LN", "12"),
        )
    reason = caught.value.reason
    assert "OBX[1] 2345-7 (http://loinc.org): result code not in the mappings" in reason
    assert "OBX[2] 32996-1" in reason
    assert "serum" in reason
    assert caught.value.code == "NO-HER2-RESULT"


def test_order_without_results_is_nothing_to_classify(mappings: Mappings) -> None:
    """An OBR with no OBX carries nothing to classify."""
    with pytest.raises(NothingToClassify):
        records(mappings, PID, obr())


def test_charset_fallback_is_warned(mappings: Mappings) -> None:
    """Bytes that are not in the declared charset are read with the fallback, with a warning."""
    record = one(mappings, "PID|1||MRN1||Müller", obr(), IHC_3, encoding="latin-1")
    fallback = [w for w in record.warnings if w.code == "CHARSET-FALLBACK"]
    assert len(fallback) == 1
    assert fallback[0].locator == "MSH-18"
    assert "Müller" not in fallback[0].message


# --------------------------------------------------------------------------------------------
# Groups and origin
# --------------------------------------------------------------------------------------------


def test_several_orders_give_several_records(mappings: Mappings) -> None:
    """Each OBR group with HER2/ER/PgR results is a record; the others are skipped."""
    found = records(
        mappings,
        PID,
        obr(1),
        IHC_3,
        obr(2, code="2345-7^Glucose^LN"),
        obx(1, "NM", "2345-7^Glucose^LN", "5"),
        obr(3, code="74885-5^HER2 FISH panel^LN"),
        obx(1, "NM", RATIO, "2.3"),
    )
    assert [(r.origin.group_index, r.origin.set_id, r.origin.placer_order) for r in found] == [
        (1, "1", "PL1"),
        (3, "3", "PL3"),
    ]
    assert found[0].her2_ihc is not None
    assert found[0].her2_ish is None
    assert found[1].her2_ish is not None
    assert found[1].her2_ihc is None


def test_origin_from_msh_orc_and_obr(mappings: Mappings) -> None:
    """Control id, sender, order numbers (ORC first), OBR-4 and version fill the origin."""
    record = one(mappings, PID, "ORC|RE|ORC-PL^EHR|ORC-FI^LAB", obr(), IHC_3)
    origin = record.origin
    assert (origin.message_id, origin.sending_application, origin.sending_facility) == (
        "C1",
        "LIS",
        "LAB",
    )
    assert (origin.placer_order, origin.filler_order) == ("ORC-PL", "ORC-FI")
    assert origin.order_code is not None
    assert (origin.order_code.system, origin.order_code.code) == ("http://loinc.org", "85319-2")


@pytest.mark.parametrize(
    ("cx", "identifier"),
    [
        pytest.param(
            "MRN1^^^HOSP^MR",
            Identifier(value="MRN1", system="urn:her2-adapter:assigner:HOSP", type_code="MR"),
            id="cx4-namespace",
        ),
        pytest.param(
            "123^^^&1.2.3.4&ISO^PI",
            Identifier(value="123", system="urn:oid:1.2.3.4", type_code="PI"),
            id="cx4-iso-oid",
        ),
        pytest.param(
            "77^^^HOSP&http://hosp.example/mrn&URI",
            Identifier(value="77", system="http://hosp.example/mrn"),
            id="cx4-uri",
        ),
        pytest.param("88", Identifier(value="88"), id="no-assigner"),
    ],
)
def test_patient_identifiers(mappings: Mappings, cx: str, identifier: Identifier) -> None:
    """PID-3 identifiers get a system from CX-4 (namespace or ISO OID, else the table)."""
    record = one(mappings, f"PID|1||{cx}||Doe^Jane||19600101|F", obr(), IHC_3)
    assert record.patient.identifiers == (identifier,)


def test_assigner_table_gives_the_system_of_a_named_authority(mappings: Mappings) -> None:
    """mappings/assigners.toml: GOODHEALTH is an OID, NPI the US NPI system; no invented URN."""
    record = one(mappings, "PID|1||TST1^^^GOODHEALTH^MR~1234^^^NPI^NPI", obr(), IHC_3)
    assert [i.system for i in record.patient.identifiers] == [
        "urn:oid:2.16.840.1.113883.19.5",
        "http://hl7.org/fhir/sid/us-npi",
    ]


@pytest.mark.parametrize(
    ("pid", "name", "gender", "birth_date"),
    [
        pytest.param(
            "PID|1||M1^^^H^MR||Doe^Jane^Q||19600131|F",
            PersonName(family="Doe", given=("Jane", "Q")),
            AdministrativeGender.FEMALE,
            "1960-01-31",
            id="full",
        ),
        pytest.param(
            "PID|1||M1^^^H^MR||Roe&van^John||196001|M",
            PersonName(family="Roe", given=("John",)),
            AdministrativeGender.MALE,
            "1960-01",
            id="month-precision",
        ),
        pytest.param(
            "PID|1||M1^^^H^MR||^^||19601399|N", None, None, None, id="unreadable-left-out"
        ),
        pytest.param(
            "PID|1||M1^^^H^MR||||198002291230|U",
            None,
            AdministrativeGender.UNKNOWN,
            "1980-02-29",
            id="time-of-birth-dropped",
        ),
    ],
)
def test_patient_demographics(
    mappings: Mappings,
    pid: str,
    name: PersonName | None,
    gender: AdministrativeGender | None,
    birth_date: str | None,
) -> None:
    """PID-5 family and given names, PID-8 through HL7 table 0001, PID-7 as a FHIR date."""
    patient = one(mappings, pid, obr(), IHC_3).patient
    assert (patient.name, patient.gender, patient.birth_date) == (name, gender, birth_date)


def test_performer_is_the_sending_facility_or_the_performing_organization(
    mappings: Mappings,
) -> None:
    """MSH-4 (with its OID) names the lab; OBX-23 (v2.5+) overrides it when sent."""
    header = msh(facility="LAB^1.2.840.99^ISO")
    assert one(mappings, PID, obr(), IHC_3, header=header).origin.performer == Organization(
        name="LAB", uri="urn:oid:1.2.840.99"
    )
    performing = IHC_3 + "||||||||||||Reference Lab^L^^^^GOODHEALTH"
    assert one(mappings, PID, obr(), performing).origin.performer == Organization(
        name="Reference Lab", uri="urn:oid:2.16.840.1.113883.19.5"
    )


def test_obr32_interpreters(mappings: Mappings) -> None:
    """OBR-32 principal result interpreter: id, name and assigning authority of each repeat."""
    order = obr() + "|||||||" + "1234567893&Path&Pat&&&&&&NPI~&Other&Olga"
    assert one(mappings, PID, order, IHC_3).origin.interpreters == (
        Practitioner(
            identifier=Identifier(value="1234567893", system="http://hl7.org/fhir/sid/us-npi"),
            name=PersonName(family="Path", given=("Pat",)),
        ),
        Practitioner(name=PersonName(family="Other", given=("Olga",))),
    )


def test_specimen_collection_received_and_method(mappings: Mappings) -> None:
    """SPM-17 collection time (its start), SPM-18 received time, SPM-7 collection method."""
    spm = (
        "SPM|1|^S1||TISS^Tissue^HL70487|||CNB^Core needle biopsy^L|80248007^Left breast^SCT"
        "|||||||||20240301101500^20240301103000|20240302080000"
    )
    specimen = one(mappings, PID, obr(), IHC_3, spm).specimen
    assert specimen.collected is not None
    assert specimen.received is not None
    assert specimen.collected.isoformat() == "2024-03-01T10:15:00+00:00"
    assert specimen.received.isoformat() == "2024-03-02T08:00:00+00:00"
    assert specimen.collection_method == Coding(
        system="urn:her2-adapter:local:L", code="CNB", display="Core needle biopsy"
    )


def test_obx17_method_is_kept(mappings: Mappings) -> None:
    """OBX-17 observation method (an antibody clone, a probe kit) travels with the value."""
    value = IHC_3 + "||||||4B5^VENTANA anti-HER2/neu (4B5)^L"
    observation = one(mappings, PID, obr(), value).observations[0]
    assert observation.method == Coding(
        system="urn:her2-adapter:local:L", code="4B5", display="VENTANA anti-HER2/neu (4B5)"
    )


def test_local_order_code_maps_to_loinc_for_its_sender(mappings: Mappings, tmp_path: Path) -> None:
    """A sender file's [[report_codes]] maps HER2IHC to 18474-7; elsewhere it stays local."""
    for path in default_mappings_dir().glob("*.toml"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "senders").mkdir()
    (tmp_path / "senders" / "good.toml").write_text(
        '[sender]\nname = "good"\nfacilities = ["GOODHEALTH PATHOLOGY"]\n\n'
        '[[report_codes]]\nsystem = "urn:her2-adapter:local:L"\ncode = "HER2IHC"\n'
        'loinc = "18474-7"\ndisplay = "HER2 Ag [Presence] in Tissue by Immune stain"\n',
        encoding="utf-8",
    )
    with_sender = load_mappings(tmp_path)
    order = obr(code="HER2IHC^HER2 immunohistochemistry^L")
    header = msh(app="COPATH", facility="GOODHEALTH PATHOLOGY")
    good = one(with_sender, PID, order, IHC_3, header=header)
    assert good.origin.report_code == Coding(
        system="http://loinc.org",
        code="18474-7",
        display="HER2 Ag [Presence] in Tissue by Immune stain",
    )
    assert one(with_sender, PID, order, IHC_3).origin.report_code is None  # another sender
    assert one(mappings, PID, order, IHC_3, header=header).origin.report_code is None


def test_repeated_patient_identifiers(mappings: Mappings) -> None:
    """Every PID-3 repetition is kept, in order."""
    record = one(mappings, "PID|1||A1^^^H1^MR~B2^^^H2^PI", obr(), IHC_3)
    assert [i.value for i in record.patient.identifiers] == ["A1", "B2"]


# --------------------------------------------------------------------------------------------
# Statuses
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obr25", "status"),
    [
        pytest.param("F", ReportStatus.FINAL, id="F"),
        pytest.param("P", ReportStatus.PRELIMINARY, id="P"),
        pytest.param("C", ReportStatus.CORRECTED, id="C"),
        pytest.param("R", ReportStatus.PARTIAL, id="R"),
        pytest.param("X", ReportStatus.CANCELLED, id="X"),
        pytest.param("O", ReportStatus.REGISTERED, id="O"),
        pytest.param("I", ReportStatus.REGISTERED, id="I"),
        pytest.param("S", ReportStatus.REGISTERED, id="S"),
    ],
)
def test_obr25_report_status(mappings: Mappings, obr25: str, status: ReportStatus) -> None:
    """OBR-25 sets the report status (HL7 v2-to-FHIR IG)."""
    record = one(mappings, PID, obr(status=obr25), IHC_3)
    assert record.report_status is status
    assert "STATUS-UNKNOWN" not in codes(record)


def test_unknown_obr25_is_unknown_with_warning(mappings: Mappings) -> None:
    """An OBR-25 code the mappings do not know gives status unknown and a warning."""
    record = one(mappings, PID, obr(status="Q"), IHC_3)
    assert record.report_status is ReportStatus.UNKNOWN
    assert "STATUS-UNKNOWN" in codes(record)


@pytest.mark.parametrize(
    ("obr25", "obx11", "status"),
    [
        pytest.param("F", "C", ReportStatus.CORRECTED, id="obx-corrected-under-final-obr"),
        pytest.param("", "C", ReportStatus.CORRECTED, id="obx-corrected-no-obr25"),
        pytest.param("", "F", ReportStatus.FINAL, id="all-final-no-obr25"),
        pytest.param("", "P", ReportStatus.PRELIMINARY, id="preliminary-no-obr25"),
    ],
)
def test_report_status_from_results(
    mappings: Mappings, obr25: str, obx11: str, status: ReportStatus
) -> None:
    """A corrected result corrects the report; without OBR-25 the results decide."""
    record = one(
        mappings,
        PID,
        obr(status=obr25),
        obx(1, "CWE", "85319-2^^LN", "3+^^L", obx11),
    )
    assert record.report_status is status


@pytest.mark.parametrize(
    ("obx11", "status", "warning"),
    [
        pytest.param("I", ResultStatus.PRELIMINARY, "STATUS-PRELIMINARY", id="I"),
        pytest.param("R", ResultStatus.PRELIMINARY, "STATUS-PRELIMINARY", id="R"),
        pytest.param("Q", ResultStatus.PRELIMINARY, "STATUS-UNKNOWN", id="unknown"),
    ],
)
def test_odd_obx11_reads_as_preliminary_with_warning(
    mappings: Mappings, obx11: str, status: ResultStatus, warning: str
) -> None:
    """OBX-11 I, R or an unknown code is preliminary, and the record warns."""
    record = one(mappings, PID, obr(), obx(1, "CWE", "85319-2^^LN", "3+^^L", obx11))
    assert record.observations[0].status is status
    assert warning in codes(record)


@pytest.mark.parametrize("obx11", ["D", "W"])
def test_entered_in_error_result_is_unused(mappings: Mappings, obx11: str) -> None:
    """OBX-11 D/W results are listed as unused "entered in error", not classified."""
    record = one(
        mappings,
        PID,
        obr(),
        obx(1, "CWE", "85319-2^^LN", "3+^^L", obx11),
        obx(2, "NM", "85329-1^^LN", "95"),
    )
    assert record.her2_ihc is None
    assert [u.provenance.locator for u in record.unused] == ["OBX[1]"]
    assert "entered in error" in record.unused[0].reason


def test_cancelled_result_makes_ihc_indeterminate(mappings: Mappings) -> None:
    """OBX-11 X "result cannot be obtained" is reported as an indeterminate HER2 IHC."""
    record = one(mappings, PID, obr(), obx(1, "CWE", "85319-2^^LN", "", "X"))
    assert record.her2_ihc is not None
    assert record.her2_ihc.score is None
    assert record.her2_ihc.indeterminate_reason is not None


# --------------------------------------------------------------------------------------------
# Notes, recounts, second counts
# --------------------------------------------------------------------------------------------


def test_nte_attaches_to_what_it_follows(mappings: Mappings) -> None:
    """An NTE after OBR is a record note; after an OBX it is that observation's note."""
    record = one(
        mappings,
        PID,
        obr(),
        "NTE|1||Order comment",
        IHC_3,
        "NTE|1||First line~Second line",
        obx(2, "NM", "85329-1^^LN", "95"),
    )
    assert record.notes == ("Order comment",)
    assert [o.notes for o in record.observations] == [("First line\nSecond line",), ()]


def test_nte_after_unused_obx_is_not_an_order_note(mappings: Mappings) -> None:
    """A note on a result that was not used stays with that result, not with the order."""
    record = one(
        mappings,
        PID,
        obr(),
        obx(1, "NM", RATIO, "2.3"),
        obx(2, "NM", "2345-7^Glucose^LN", "5"),
        "NTE|1||second count pending",
    )
    assert record.notes == ()
    assert record.her2_ish is not None
    assert record.her2_ish.recount_done is False


@pytest.mark.parametrize(
    "segments",
    [
        pytest.param(
            (obx(1, "NM", RATIO, "2.3"), "NTE|1||Recount performed by additional observer"),
            id="nte-after-obx",
        ),
        pytest.param(
            ("NTE|1||Blinded count by second observer", obx(1, "NM", RATIO, "2.3")),
            id="nte-after-obr",
        ),
    ],
)
def test_recount_reported_by_note(mappings: Mappings, segments: tuple[str, ...]) -> None:
    """A note mentioning a recount reports that the ISH was recounted."""
    record = one(mappings, PID, obr(), *segments)
    assert record.her2_ish is not None
    assert record.her2_ish.recount_done is True


def test_no_recount_without_evidence(mappings: Mappings) -> None:
    """One count and no note: no recount."""
    record = one(mappings, PID, obr(), obx(1, "NM", RATIO, "2.3"), "NTE|1||40 cells counted")
    assert record.her2_ish is not None
    assert record.her2_ish.recount_done is False


def test_second_count_uses_the_last_and_counts_as_recount(mappings: Mappings) -> None:
    """A ratio reported twice is a recount: the last count is used, with a warning."""
    record = one(
        mappings,
        PID,
        obr(),
        obx(1, "NM", RATIO, "2.3", sub_id="1"),
        obx(2, "NM", RATIO, "1.9", sub_id="2"),
    )
    ish = record.her2_ish
    assert ish is not None
    assert ish.ratio is not None
    assert ish.ratio.value == Decimal("1.9")
    assert ish.recount_done is True
    assert "SECOND-COUNT" in codes(record)


# --------------------------------------------------------------------------------------------
# Specimen: SPM, OBR-15, tissue, procedure
# --------------------------------------------------------------------------------------------

SPM_STOMACH = "SPM|1|SP1&EHR^FS1&LAB||TUMOR^Tumor tissue^HL70487|||BX^Core needle biopsy^HL70488|69695003^Stomach structure^SCT"  # noqa: E501 (one HL7 segment)


def test_spm_specimen_id_type_site_and_procedure(mappings: Mappings) -> None:
    """SPM gives the specimen id, type, body site, tissue and procedure."""
    record = one(mappings, PID, obr(), obx(1, "CWE", "18474-7^^LN", "3+^^L"), SPM_STOMACH)
    specimen = record.specimen
    assert specimen.id == "FS1"
    assert specimen.type is not None
    assert (specimen.type.system, specimen.type.code) == (
        "http://terminology.hl7.org/CodeSystem/v2-0487",
        "TUMOR",
    )
    assert [(s.system, s.code) for s in specimen.body_sites] == [
        ("http://snomed.info/sct", "69695003")
    ]
    assert (specimen.tissue, specimen.procedure) == (Tissue.GASTROESOPHAGEAL, Procedure.BIOPSY)


def test_obr15_specimen_source_in_v23(mappings: Mappings) -> None:
    """OBR-15 sub-components (v2.3/2.4) give specimen type, body site and collection method."""
    source = "TISS&Tissue&HL70070^^Excision^76752008&Breast structure&SCT"
    record = one(
        mappings,
        PID,
        obr(source=source),
        obx(1, "CWE", "18474-7^^LN", "3+^^L"),
        header=msh(version="2.3"),
    )
    specimen = record.specimen
    assert specimen.type is not None
    assert specimen.type.code == "TISS"
    assert [(s.system, s.code) for s in specimen.body_sites] == [
        ("http://snomed.info/sct", "76752008")
    ]
    assert (specimen.tissue, specimen.procedure) == (Tissue.BREAST, Procedure.SURGICAL)


def test_breast_code_with_stomach_site_is_conflicting_tissue(mappings: Mappings) -> None:
    """A breast-scoped result code on a stomach specimen: tissue unknown, with a warning."""
    record = one(mappings, PID, obr(), IHC_3, SPM_STOMACH)
    assert record.specimen.tissue is Tissue.UNKNOWN
    assert "CONFLICTING-TISSUE" in codes(record)


def test_any_tissue_code_without_site_is_unknown_with_warning(mappings: Mappings) -> None:
    """An "in Tissue" code and no site: tissue unknown, and the record says why."""
    record = one(mappings, PID, obr(code="X^HER2^L"), obx(1, "CWE", "18474-7^^LN", "3+^^L"))
    assert record.specimen.tissue is Tissue.UNKNOWN
    assert "TISSUE-UNKNOWN" in codes(record)


def test_tissue_from_order_text(mappings: Mappings) -> None:
    """The OBR-4 text is a last-resort tissue word."""
    record = one(
        mappings,
        PID,
        obr(code="GHER2^Gastric HER2 panel^L"),
        obx(1, "CWE", "18474-7^^LN", "3+^^L"),
    )
    assert record.specimen.tissue is Tissue.GASTROESOPHAGEAL


EXAMPLE_LAB = msh(app="EXLAB-LIS", facility="EXAMPLE PATHOLOGY")


def test_example_lab_local_codes_and_default_tissue(mappings: Mappings) -> None:
    """The example lab's local codes are read and its default tissue applies."""
    record = one(
        mappings,
        PID,
        obr(code="P1^HER2 panel^EXL"),
        obx(1, "CWE", "HER2IHC^HER2 IHC^EXL", "0^^L"),
        obx(2, "ST", "HER2SUB^^EXL", "Faint (ultralow)"),
        header=EXAMPLE_LAB,
    )
    assert record.specimen.tissue is Tissue.BREAST
    assert record.her2_ihc is not None
    assert (record.her2_ihc.score, record.her2_ihc.ihc0_subtype) == (
        IhcScore.ZERO,
        Ihc0Subtype.ULTRALOW,
    )
    assert "TISSUE-UNKNOWN" not in codes(record)


def test_example_lab_site_code_beats_its_default_tissue(mappings: Mappings) -> None:
    """A stomach site code wins over the lab's breast default (the default is the last resort)."""
    record = one(
        mappings, PID, obr(), obx(1, "CWE", "18474-7^^LN", "3+^^L"), SPM_STOMACH, header=EXAMPLE_LAB
    )
    assert record.specimen.tissue is Tissue.GASTROESOPHAGEAL


def test_example_lab_codes_unknown_for_other_senders(mappings: Mappings) -> None:
    """Another sender's local code is not the example lab's: it is read only from its display,
    which names one marker and one method (HER2, IHC), and flagged code-inferred."""
    record = one(mappings, PID, obr(), obx(1, "CWE", "HER2IHC^HER2 IHC^EXL", "3+^^L"))
    assert record.her2_ihc is not None
    assert record.her2_ihc.score is IhcScore.THREE
    assert "CODE-INFERRED" in codes(record)


def test_local_code_with_an_unplaceable_display_is_rejected_with_what_was_found(
    mappings: Mappings,
) -> None:
    """A local code whose display names no single marker and method: rejected, saying why."""
    with pytest.raises(NothingToClassify, match=r"markers: her2; methods: none"):
        records(mappings, PID, obr(), obx(1, "CWE", "HER2X^HER2 result^EXL", "3+^^L"))


def test_local_code_without_a_coding_system_is_not_inferred(mappings: Mappings) -> None:
    """OBX-3 with no coding system (a fuzz finding, once INTERNAL): not read from its display."""
    with pytest.raises(NothingToClassify, match="without a coding system"):
        records(mappings, PID, obr(), obx(1, "CWE", "HER2IHC^HER2 IHC", "3+^^L"))


def test_a_standard_code_whose_display_names_another_marker_is_not_used(
    mappings: Mappings,
) -> None:
    """Ki-67 sent under ER's LOINC code: not read as ER; flagged; the position is kept."""
    ki67 = obx(2, "NM", "85329-1^Ki-67 proliferation index^LN", "15")
    record = one(mappings, PID, obr(), IHC_3, ki67)
    assert record.er is None
    assert "CODE-DISPLAY-MISMATCH" in codes(record)
    [unused] = record.unused
    assert unused.provenance.locator == "OBX[2]"
    assert unused.not_understood
    assert "ki67" in unused.reason


def test_a_code_read_before_is_warned_about_at_each_obx_that_sends_it(mappings: Mappings) -> None:
    """OBX-3 look-ups are remembered per sender; the warning still names each OBX, message
    after message."""
    ki67 = "85329-1^Ki-67 proliferation index^LN"
    for first, second in ((2, 3), (3, 4)):
        extra = [obx(2, "NM", "85337-4^ER^LN", "90")] if first == 3 else []
        record = one(
            mappings,
            PID,
            obr(),
            IHC_3,
            *extra,
            obx(first, "NM", ki67, "15"),
            obx(second, "NM", ki67, "20"),
        )
        mismatches = [w for w in record.warnings if w.code == "CODE-DISPLAY-MISMATCH"]
        assert [w.locator for w in mismatches] == [f"OBX[{first}]", f"OBX[{second}]"]
        assert [u.provenance.locator for u in record.unused] == [f"OBX[{first}]", f"OBX[{second}]"]


# --------------------------------------------------------------------------------------------
# Times
# --------------------------------------------------------------------------------------------


def test_effective_and_issued_from_obr(mappings: Mappings) -> None:
    """OBR-7 is the effective time and OBR-22 the issued time."""
    record = one(mappings, PID, obr(), IHC_3)
    assert record.effective == datetime(2024, 3, 10, 8, 30, tzinfo=UTC)
    assert record.issued == datetime(2024, 3, 11, 12, 0, tzinfo=UTC)
    assert not [c for c in codes(record) if c.startswith("DATETIME")]


def test_issued_falls_back_to_msh7(mappings: Mappings) -> None:
    """Without OBR-22 the message time (MSH-7) is the issued time."""
    record = one(mappings, PID, obr(issued=""), IHC_3)
    assert record.issued == datetime(2024, 3, 12, 10, 15, tzinfo=UTC)


def test_effective_falls_back_to_obx14(mappings: Mappings) -> None:
    """Without OBR-7 the observation time (OBX-14) is the effective time."""
    record = one(
        mappings, PID, obr(effective=""), "OBX|1|CWE|85319-2^^LN||3+^^L||||||F|||20240309101010"
    )
    assert record.effective == datetime(2024, 3, 9, 10, 10, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("settings", "offset"),
    [
        pytest.param(UTC_SETTINGS, timedelta(0), id="utc"),
        pytest.param(BERLIN_SETTINGS, timedelta(hours=1), id="berlin-winter"),
    ],
)
def test_naive_times_take_the_site_zone(
    mappings: Mappings, settings: Settings, offset: timedelta
) -> None:
    """Naive HL7 timestamps are placed in the configured site zone."""
    record = one(mappings, PID, obr(), IHC_3, settings=settings)
    assert record.effective is not None
    assert record.effective.utcoffset() == offset


def test_date_only_is_coarse_with_warning(mappings: Mappings) -> None:
    """A date without time of day is midnight in the site zone, with a warning naming the field."""
    record = one(mappings, PID, obr(effective="20240310"), IHC_3, settings=BERLIN_SETTINGS)
    assert record.effective is not None
    assert record.effective.isoformat() == "2024-03-10T00:00:00+01:00"
    assert [(w.code, w.locator) for w in record.warnings] == [("DATETIME-COARSE", "OBR-7")]


def test_invalid_time_is_dropped_with_warning(mappings: Mappings) -> None:
    """An unreadable timestamp is not guessed: no time, and a warning naming the field."""
    record = one(mappings, PID, obr(effective="2024-03-10"), IHC_3)
    assert record.effective is None
    assert ("DATETIME-INVALID", "OBR-7") in [(w.code, w.locator) for w in record.warnings]


def test_impossible_offset_is_a_warning_not_a_crash(mappings: Mappings) -> None:
    """A timestamp with an offset beyond ±24h is invalid, and the message is still read."""
    record = one(mappings, PID, obr(effective="20240310083000+2500"), IHC_3)
    assert record.effective is None
    assert "DATETIME-INVALID" in codes(record)
