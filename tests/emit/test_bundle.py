"""The transaction Bundle: entries, references, value shapes, summary components, determinism."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from bundle_support import build_bundle

from adapter.config import Settings
from adapter.emit.bundle import dumps
from adapter.emit.datatypes import date_time
from adapter.errors import OutputInvalid, ValueNotWritable
from adapter.model import (
    Analyte,
    AssayRecord,
    Category,
    Classification,
    Coding,
    FiredRule,
    Flag,
    FlagCode,
    HrStatus,
    Identifier,
    IngestWarning,
    Interval,
    OfficialResult,
    PatientRef,
    Provenance,
    ReceptorCall,
    ReceptorResult,
    ReportedObservation,
    ReportStatus,
    ResultStatus,
    Specimen,
    Tissue,
    UnusedResult,
)

RecordFactory = Callable[..., AssayRecord]
ClassificationFactory = Callable[..., Classification]
Validator = Callable[[Any], None]

CS = "http://example.org/fhir/CodeSystem/her2-test"  # the settings fixture's codesystem_url
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"


def resources(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    ]


def only(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    (resource,) = resources(bundle, resource_type)
    return resource


def summary_of(bundle: dict[str, Any]) -> dict[str, Any]:
    (summary,) = [
        o
        for o in resources(bundle, "Observation")
        if o["code"].get("coding", [{}])[0].get("code") == "48676-1"
    ]
    return summary


def components(summary: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [c for c in summary["component"] if c["code"]["coding"][0]["code"] == code]


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def observation(code: str, **values: Any) -> ReportedObservation:
    return ReportedObservation(
        analyte=values.pop("analyte", Analyte.HER2_IHC),
        provenance=Provenance(
            locator="OBX[5]",
            code=Coding(system=values.pop("system", "http://loinc.org"), code=code),
        ),
        status=values.pop("status", ResultStatus.FINAL),
        **values,
    )


def single_value(
    record_factory: RecordFactory,
    classification: Classification,
    settings: Settings,
    reported: ReportedObservation,
) -> dict[str, Any]:
    """The emitted Observation for one reported value (the record holds only that value)."""
    bundle = build_bundle(
        "M1", [(record_factory(observations=(reported,)), classification)], settings
    )
    (emitted,) = [o for o in resources(bundle, "Observation") if "component" not in o]
    return emitted


# --------------------------------------------------------------------------------------------
# Validity and Bundle shape
# --------------------------------------------------------------------------------------------


def test_bundle_is_valid_fhir_r4_as_dict_and_as_bytes(
    record: AssayRecord, classification: Classification, settings: Settings, valid_r4: Validator
) -> None:
    """The Bundle passes the R4 JSON schema and the R4B models, before and after serialising."""
    bundle = build_bundle("MSG-0001", [(record, classification)], settings)
    valid_r4(bundle)
    valid_r4(dumps(bundle))


def test_bundle_header(
    record: AssayRecord, classification: Classification, settings: Settings
) -> None:
    """A transaction Bundle identified by the message id, its id derived from it."""
    bundle = build_bundle("MSG-0001", [(record, classification)], settings)
    again = build_bundle("MSG-0001", [(record, classification)], settings)
    other = build_bundle("MSG-0002", [(record, classification)], settings)
    assert bundle["type"] == "transaction"
    assert bundle["identifier"] == {"system": "urn:her2-adapter:message-id", "value": "MSG-0001"}
    assert bundle["id"] == again["id"] != other["id"]


def test_every_entry_is_a_put_of_its_own_id_but_the_patient(
    record: AssayRecord, classification: Classification, settings: Settings
) -> None:
    """fullUrl is urn:uuid:<id>; PUT Type/<id> except the Patient, a conditional create."""
    bundle = build_bundle("MSG-0001", [(record, classification)], settings)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
        if resource["resourceType"] == "Patient":
            assert entry["request"] == {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": "identifier=urn:her2-adapter:assigner:HOSP|MRN-42",
            }
            continue
        assert entry["request"] == {
            "method": "PUT",
            "url": f"{resource['resourceType']}/{resource['id']}",
        }
    full_urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(full_urls)) == len(full_urls)


def test_entries_of_one_record(
    record: AssayRecord, classification: Classification, settings: Settings
) -> None:
    """Patient, Specimen, one Observation per reported value, the summary, the report."""
    bundle = build_bundle("MSG-0001", [(record, classification)], settings)
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    expected_observations = len(record.observations) + 1
    assert types == [
        "Patient",
        "Specimen",
        *["Observation"] * expected_observations,
        "DiagnosticReport",
    ]


def test_references_resolve_inside_the_bundle(
    record_factory: RecordFactory, classification: Classification, settings: Settings
) -> None:
    """Every reference names the fullUrl of an entry in the same Bundle."""
    second = record_factory(origin=replace(record_factory().origin, set_id="2"))
    bundle = build_bundle(
        "MSG-0001", [(record_factory(), classification), (second, classification)], settings
    )
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    found = list(references(bundle))
    assert found
    assert set(found) <= full_urls


def test_records_of_one_patient_share_patient_and_specimen(
    record_factory: RecordFactory, classification: Classification, settings: Settings
) -> None:
    """Two orders on one patient and specimen: one Patient, one Specimen, two reports."""
    ihc = record_factory()
    fish = record_factory(origin=replace(ihc.origin, set_id="2"))
    bundle = build_bundle("MSG-0001", [(ihc, classification), (fish, classification)], settings)
    assert len(resources(bundle, "Patient")) == 1
    assert len(resources(bundle, "Specimen")) == 1
    assert len(resources(bundle, "DiagnosticReport")) == 2


def test_patient_identifiers_are_merged_across_records(
    record_factory: RecordFactory, classification: Classification, settings: Settings
) -> None:
    """A second record's extra identifier for the same patient is added once."""
    mrn = Identifier(system="urn:her2-adapter:assigner:HOSP", value="MRN-42", type_code="MR")
    national = Identifier(system="urn:oid:2.16.840.1.113883.2.4.6.3", value="999", type_code="NI")
    first = record_factory(patient=PatientRef(identifiers=(mrn,)))
    second = record_factory(
        patient=PatientRef(identifiers=(mrn, national)),
        origin=replace(first.origin, set_id="2"),
    )
    bundle = build_bundle("M", [(first, classification), (second, classification)], settings)
    assert [i["value"] for i in only(bundle, "Patient")["identifier"]] == ["MRN-42", "999"]


def test_repeated_order_in_one_message_is_not_overwritten(
    record: AssayRecord, classification: Classification, settings: Settings, valid_r4: Validator
) -> None:
    """Two groups with the same order identity become two reports, not one PUT twice."""
    bundle = build_bundle("M", [(record, classification), (record, classification)], settings)
    reports = resources(bundle, "DiagnosticReport")
    assert len({r["id"] for r in reports}) == 2
    valid_r4(bundle)


def test_empty_message_gives_a_bundle_without_entries(
    settings: Settings, valid_r4: Validator
) -> None:
    """No records: a valid transaction with no ``entry`` (FHIR forbids empty arrays)."""
    bundle = build_bundle("M", [], settings)
    assert "entry" not in bundle
    valid_r4(bundle)


# --------------------------------------------------------------------------------------------
# Patient and Specimen
# --------------------------------------------------------------------------------------------


def test_patient_carries_identifiers_only_when_sent_no_more(
    record: AssayRecord, classification: Classification, settings: Settings
) -> None:
    """A record without demographics: identifiers only, and no US Core Patient claim."""
    patient = only(build_bundle("M", [(record, classification)], settings), "Patient")
    assert set(patient) == {"resourceType", "id", "identifier"}
    assert patient["identifier"] == [
        {
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                ]
            },
            "system": "urn:her2-adapter:assigner:HOSP",
            "value": "MRN-42",
        }
    ]


def test_specimen_type_site_and_identifier(
    record: AssayRecord, classification: Classification, settings: Settings
) -> None:
    """Specimen keeps its id, type and body site, and points at the patient."""
    bundle = build_bundle("M", [(record, classification)], settings)
    specimen = only(bundle, "Specimen")
    assert specimen["identifier"] == [{"value": "S24-1234"}]
    assert specimen["type"]["coding"] == [
        {"system": SNOMED, "code": "122737000", "display": "Tissue specimen from breast"}
    ]
    assert specimen["collection"]["bodySite"]["coding"][0]["code"] == "76752008"
    assert specimen["subject"]["reference"] == f"urn:uuid:{only(bundle, 'Patient')['id']}"


def test_no_specimen_entry_when_nothing_is_known(
    record_factory: RecordFactory, classification: Classification, settings: Settings
) -> None:
    """No specimen id, type or site: no empty Specimen, and nothing references one."""
    bundle = build_bundle(
        "M", [(record_factory(specimen=Specimen(tissue=Tissue.BREAST)), classification)], settings
    )
    assert resources(bundle, "Specimen") == []
    assert "specimen" not in only(bundle, "DiagnosticReport")
    assert all("specimen" not in o for o in resources(bundle, "Observation"))


def test_specimen_known_only_by_its_site_is_written(
    record_factory: RecordFactory, classification: Classification, settings: Settings
) -> None:
    """A body site alone is worth a Specimen (it tells breast from gastric)."""
    site = Coding(system="http://snomed.info/sct", code="69695003", display="Stomach structure")
    record = record_factory(specimen=Specimen(body_sites=(site,)))
    bundle = build_bundle("M", [(record, classification)], settings)
    specimen = only(bundle, "Specimen")
    assert "identifier" not in specimen
    assert specimen["collection"]["bodySite"]["coding"][0]["code"] == "69695003"


# --------------------------------------------------------------------------------------------
# DiagnosticReport
# --------------------------------------------------------------------------------------------


def test_report_shape(
    record: AssayRecord, classification: Classification, settings: Settings
) -> None:
    """US Core lab shape: status, LAB category, order code, subject, times, specimen, results."""
    bundle = build_bundle("M", [(record, classification)], settings)
    report = only(bundle, "DiagnosticReport")
    assert report["status"] == "final"
    assert report["category"] == [
        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}
    ]
    assert report["code"]["coding"] == [
        {"system": LOINC, "code": "74885-5", "display": "HER2 FISH panel"}
    ]
    assert report["subject"]["reference"] == f"urn:uuid:{only(bundle, 'Patient')['id']}"
    assert report["specimen"] == [{"reference": f"urn:uuid:{only(bundle, 'Specimen')['id']}"}]
    observation_urls = [f"urn:uuid:{o['id']}" for o in resources(bundle, "Observation")]
    assert [r["reference"] for r in report["result"]] == observation_urls
    assert report["meta"] == {
        "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-diagnosticreport-lab"]
    }
    assert [i["value"] for i in report["identifier"]] == ["PL-123", "FL-456"]
    assert [i["type"]["coding"][0]["code"] for i in report["identifier"]] == ["PLAC", "FILL"]


@pytest.mark.parametrize("status", list(ReportStatus), ids=lambda s: s.value)
def test_report_status_is_the_records(
    record_factory: RecordFactory,
    classification: Classification,
    settings: Settings,
    valid_r4: Validator,
    status: ReportStatus,
) -> None:
    """DiagnosticReport.status is the record's status; the summary gets a valid status too."""
    bundle = build_bundle("M", [(record_factory(report_status=status), classification)], settings)
    assert only(bundle, "DiagnosticReport")["status"] == status.value
    valid_r4(bundle)


def test_report_code_defaults_to_her2_interpretation(
    record_factory: RecordFactory, classification: Classification, settings: Settings
) -> None:
    """Without an order code the report is coded LOINC 48676-1."""
    record = record_factory(origin=replace(record_factory().origin, order_code=None))
    report = only(build_bundle("M", [(record, classification)], settings), "DiagnosticReport")
    assert report["code"]["coding"][0]["system"] == LOINC
    assert report["code"]["coding"][0]["code"] == "48676-1"


def test_datetimes_keep_their_offset_and_fraction(
    record: AssayRecord, classification: Classification, settings: Settings
) -> None:
    """effective and issued are written with the record's offset and without invented digits."""
    bundle = build_bundle("M", [(record, classification)], settings)
    for resource in (only(bundle, "DiagnosticReport"), *resources(bundle, "Observation")):
        assert resource["effectiveDateTime"] == "2024-03-05T14:30:00+01:00"
        assert resource["issued"] == "2024-03-06T09:15:12.25+00:00"


def test_observation_effective_overrides_the_records(
    record_factory: RecordFactory, classification: Classification, settings: Settings
) -> None:
    """An OBX-14 time is kept for its own Observation."""
    own = datetime(2024, 3, 4, 8, 0, tzinfo=timezone(timedelta(hours=-5)))
    emitted = single_value(
        record_factory,
        classification,
        settings,
        observation("85319-2", text="1+", effective=own),
    )
    assert emitted["effectiveDateTime"] == "2024-03-04T08:00:00-05:00"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(datetime(2024, 1, 2, 3, 4, tzinfo=UTC), "2024-01-02T03:04:00+00:00", id="utc"),
        pytest.param(
            datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2024-01-02T03:04:05.12+05:30",
            id="fraction-and-half-hour-offset",
        ),
    ],
)
def test_date_time_rendering(value: datetime, expected: str) -> None:
    """Seconds are always written, fractions only when present, the offset always."""
    assert date_time(value, "x") == expected


def test_date_time_refuses_offsets_fhir_cannot_write() -> None:
    """An offset with seconds (historic local mean time) cannot be a FHIR dateTime."""
    odd = datetime(1890, 1, 1, tzinfo=timezone(timedelta(minutes=53, seconds=28)))
    with pytest.raises(ValueNotWritable, match="whole minutes"):
        date_time(odd, "DiagnosticReport.issued")


@pytest.mark.parametrize(("hours", "minutes"), [(-15, 0), (14, 1), (-14, -1), (23, 59)])
def test_date_time_refuses_offsets_beyond_14_hours(hours: int, minutes: int) -> None:
    """FHIR's dateTime allows -14:00 to +14:00 (an HL7 offset of -1500 is beyond it)."""
    moment = datetime(2024, 3, 5, 9, 30, tzinfo=timezone(timedelta(hours=hours, minutes=minutes)))
    with pytest.raises(ValueNotWritable, match="14:00") as raised:
        date_time(moment, "OBX[1]: Observation.effectiveDateTime")
    assert raised.value.location == "OBX[1]: Observation.effectiveDateTime"


@pytest.mark.parametrize("hours", [-14, 14, 0])
def test_date_time_writes_the_outermost_offsets(hours: int) -> None:
    moment = datetime(2024, 3, 5, 9, 30, tzinfo=timezone(timedelta(hours=hours)))
    assert date_time(moment, "issued").startswith("2024-03-05T09:30:00")


# --------------------------------------------------------------------------------------------
# Conclusion and conclusionCode, per category
# --------------------------------------------------------------------------------------------

CATEGORY_CASES = [
    pytest.param("positive", Category.HER2_POSITIVE, "10828004", False, id="HER2-positive"),
    pytest.param("negative", Category.HER2_LOW, "260385009", True, id="HER2-low"),
    pytest.param("negative", Category.HER2_ULTRALOW, "260385009", True, id="HER2-ultralow"),
    pytest.param("negative", Category.HER2_NULL, "260385009", True, id="HER2-null"),
    pytest.param("negative", Category.HER2_NEGATIVE, "260385009", False, id="HER2-negative"),
    pytest.param("equivocal", Category.HER2_EQUIVOCAL, "42425007", False, id="HER2-equivocal"),
    pytest.param("indeterminate", Category.INDETERMINATE, "82334004", False, id="indeterminate"),
]


ABSENT_CASES = [
    pytest.param(
        Category.HER2_NOT_REPORTED, "not-performed", "HER2 not reported", id="not-reported"
    ),
    pytest.param(
        Category.HER2_NOT_UNDERSTOOD,
        "error",
        "HER2 reported but not understood",
        id="not-understood",
    ),
]


def test_every_category_is_covered() -> None:
    """The tables below list every Category value."""
    listed = {case.values[1] for case in CATEGORY_CASES} | {c.values[0] for c in ABSENT_CASES}
    assert listed == set(Category)


@pytest.mark.parametrize(("category", "absent_code", "words"), ABSENT_CASES)
def test_no_official_result_is_said_not_coded(
    record: AssayRecord,
    classification_factory: ClassificationFactory,
    settings: Settings,
    valid_r4: Validator,
    category: Category,
    absent_code: str,
    words: str,
) -> None:
    """No HER2 result: the summary has a dataAbsentReason, no SNOMED result, and says which."""
    classification = classification_factory(official_result=None, category=category)
    bundle = build_bundle("M", [(record, classification)], settings)
    summary = summary_of(bundle)
    assert "valueCodeableConcept" not in summary
    assert summary["dataAbsentReason"]["coding"][0]["code"] == absent_code
    assert summary["dataAbsentReason"]["text"] == words
    report = only(bundle, "DiagnosticReport")
    codings = [c for concept in report["conclusionCode"] for c in concept["coding"]]
    assert [c["code"] for c in codings] == [category.value]
    assert report["conclusion"].startswith(f"{words}; category {category.value}.")
    assert "indeterminate" not in report["conclusion"]
    valid_r4(bundle)


@pytest.mark.parametrize(("official", "category", "snomed", "not_official_note"), CATEGORY_CASES)
def test_conclusion_codes_per_category(
    record: AssayRecord,
    classification_factory: ClassificationFactory,
    settings: Settings,
    valid_r4: Validator,
    official: str,
    category: Category,
    snomed: str,
    not_official_note: bool,
) -> None:
    """conclusionCode: the category (adapter CodeSystem) and the official result in SNOMED."""
    classification = classification_factory(
        official_result=OfficialResult(official), category=category
    )
    bundle = build_bundle("M", [(record, classification)], settings)
    report = only(bundle, "DiagnosticReport")
    codings = [c for concept in report["conclusionCode"] for c in concept["coding"]]
    assert {"system": CS, "code": category.value} in codings
    assert any(c["system"] == SNOMED and c["code"] == snomed for c in codings)
    assert not any(c["code"].startswith("HR-") for c in codings)
    summary = summary_of(bundle)
    assert summary["valueCodeableConcept"]["coding"][0] == {
        "system": SNOMED,
        "code": snomed,
        "display": official.capitalize(),
    }
    (category_component,) = components(summary, "her2-category")
    assert category_component["valueCodeableConcept"]["coding"] == [
        {"system": CS, "code": category.value}
    ]
    conclusion = report["conclusion"]
    assert conclusion.startswith(f"HER2 {official}; category {category.value}.")
    assert ("not an official ASCO/CAP result category" in conclusion) is not_official_note
    valid_r4(bundle)


def test_equivocal_conclusion_says_it_is_not_final(
    record: AssayRecord, classification_factory: ClassificationFactory, settings: Settings
) -> None:
    """An equivocal report tells the reader that work-up is still needed."""
    classification = classification_factory(
        official_result=OfficialResult.EQUIVOCAL, category=Category.HER2_EQUIVOCAL
    )
    report = only(build_bundle("M", [(record, classification)], settings), "DiagnosticReport")
    assert "not a final HER2 status" in report["conclusion"]


def test_gastric_negative_conclusion_explains_missing_low_categories(
    record: AssayRecord, classification_factory: ClassificationFactory, settings: Settings
) -> None:
    """Gastroesophageal negatives say HER2-low and friends are breast categories."""
    classification = classification_factory(
        tissue=Tissue.GASTROESOPHAGEAL,
        guideline="CAP/ASCP/ASCO GEA 2016",
        category=Category.HER2_NEGATIVE,
    )
    report = only(build_bundle("M", [(record, classification)], settings), "DiagnosticReport")
    assert "breast cancer categories" in report["conclusion"]
    assert report["conclusion"].endswith("Guidelines applied: CAP/ASCP/ASCO GEA 2016.")


# --------------------------------------------------------------------------------------------
# Hormone receptors: both presence cases
# --------------------------------------------------------------------------------------------


def test_hr_status_reported_when_er_or_pgr_present(
    record_factory: RecordFactory,
    classification_factory: ClassificationFactory,
    settings: Settings,
) -> None:
    """ER/PgR reported: HR status in conclusionCode, components and the conclusion text."""
    record = record_factory(er=ReceptorResult(percent=Interval.point(Decimal("5"))))
    classification = classification_factory(
        er_result=ReceptorCall.LOW_POSITIVE,
        pgr_result=ReceptorCall.NEGATIVE,
        hr_status=HrStatus.LOW_POSITIVE,
    )
    bundle = build_bundle("M", [(record, classification)], settings)
    report = only(bundle, "DiagnosticReport")
    codes = [c["code"] for concept in report["conclusionCode"] for c in concept["coding"]]
    assert "HR-low-positive" in codes
    summary = summary_of(bundle)
    (hr,) = components(summary, "hr-status")
    assert hr["valueCodeableConcept"]["coding"] == [{"system": CS, "code": "HR-low-positive"}]
    (er,) = components(summary, "er-result")
    assert {"system": CS, "code": "low-positive"} in er["valueCodeableConcept"]["coding"]
    assert all(c["system"] != SNOMED for c in er["valueCodeableConcept"]["coding"])
    (pgr,) = components(summary, "pgr-result")
    assert {"system": SNOMED, "code": "260385009", "display": "Negative"} in pgr[
        "valueCodeableConcept"
    ]["coding"]
    assert (
        "Hormone receptor status HR-low-positive (ER low positive, PgR negative)."
        in (report["conclusion"])
    )


def test_no_hr_status_when_neither_receptor_reported(
    record: AssayRecord, classification: Classification, settings: Settings
) -> None:
    """No ER/PgR: no HR coding, no receptor components, no receptor sentence."""
    bundle = build_bundle("M", [(record, classification)], settings)
    report = only(bundle, "DiagnosticReport")
    codes = [c["code"] for concept in report["conclusionCode"] for c in concept["coding"]]
    assert not any(code.startswith("HR-") for code in codes)
    summary = summary_of(bundle)
    for code in ("hr-status", "er-result", "pgr-result"):
        assert components(summary, code) == []
    assert "Hormone receptor" not in report["conclusion"]


def test_receptor_reported_but_undetermined_is_said(
    record_factory: RecordFactory, classification: Classification, settings: Settings
) -> None:
    """ER sent but no HR status could be called: the conclusion says so, no HR coding."""
    record = record_factory(er=ReceptorResult(indeterminate_reason="no tumour cells"))
    report = only(build_bundle("M", [(record, classification)], settings), "DiagnosticReport")
    assert "Hormone receptor status not determined" in report["conclusion"]
    assert len(report["conclusionCode"]) == 2


# --------------------------------------------------------------------------------------------
# Summary Observation
# --------------------------------------------------------------------------------------------


def test_summary_code_value_and_provenance(
    record: AssayRecord, classification: Classification, settings: Settings
) -> None:
    """LOINC 48676-1, official result as SNOMED plus the adapter code, derived from the values."""
    bundle = build_bundle("M", [(record, classification)], settings)
    summary = summary_of(bundle)
    assert summary["status"] == "final"
    assert summary["valueCodeableConcept"]["coding"][1] == {
        "system": CS,
        "code": "negative",
        "display": "HER2 negative",
    }
    reported = [o for o in resources(bundle, "Observation") if o is not summary]
    assert [r["reference"] for r in summary["derivedFrom"]] == [
        f"urn:uuid:{o['id']}" for o in reported
    ]


@pytest.mark.parametrize("group", [None, 1, 5], ids=lambda g: f"group-{g}")
def test_ish_group_component_only_with_a_group(
    record: AssayRecord,
    classification_factory: ClassificationFactory,
    settings: Settings,
    group: int | None,
) -> None:
    """ish-group is a valueInteger present exactly when a group was assigned."""
    classification = classification_factory(ish_group=group)
    summary = summary_of(build_bundle("M", [(record, classification)], settings))
    found = components(summary, "ish-group")
    if group is None:
        assert found == []
    else:
        (component,) = found
        assert component["valueInteger"] == group


@pytest.mark.parametrize("group", [0, 6])
def test_ish_group_outside_1_to_5_is_refused(
    record: AssayRecord,
    classification_factory: ClassificationFactory,
    settings: Settings,
    group: int,
) -> None:
    """A group that does not exist is a bug upstream, never emitted."""
    with pytest.raises(OutputInvalid):
        build_bundle("M", [(record, classification_factory(ish_group=group))], settings)


def test_flags_rules_and_guideline_components(
    record: AssayRecord, classification_factory: ClassificationFactory, settings: Settings
) -> None:
    """One flag component per flag, one rule component per rule, one guideline."""
    classification = classification_factory(
        flags=(
            Flag(code=FlagCode.DISCORDANCE, reason="IHC 0 with ISH group 1"),
            Flag(code=FlagCode.HETEROGENEITY, reason="12% of cells amplified."),
        ),
        rules=(
            FiredRule(rule_id="BR-ISH-G1", citation="ASCO/CAP 2018", reason="ratio 2.3, copies 5"),
            FiredRule(rule_id="BR-DISC-1", citation="ASCO/CAP 2018 §5", reason="IHC 0 vs ISH 1"),
        ),
    )
    bundle = build_bundle("M", [(record, classification)], settings)
    summary = summary_of(bundle)
    assert [
        (c["valueCodeableConcept"]["coding"][0]["code"], c["valueCodeableConcept"]["text"])
        for c in components(summary, "flag")
    ] == [
        ("discordance", "IHC 0 with ISH group 1"),
        ("heterogeneity", "12% of cells amplified."),
    ]
    assert [
        (c["valueCodeableConcept"]["coding"][0]["code"], c["valueCodeableConcept"]["text"])
        for c in components(summary, "rule")
    ] == [
        ("BR-ISH-G1", "ratio 2.3, copies 5 [ASCO/CAP 2018]"),
        ("BR-DISC-1", "IHC 0 vs ISH 1 [ASCO/CAP 2018 §5]"),
    ]
    (guideline,) = components(summary, "guideline")
    assert guideline["valueString"] == "ASCO/CAP HER2 2018 (affirmed 2023)"
    conclusion = only(bundle, "DiagnosticReport")["conclusion"]
    assert (
        "Flags for review: discordance (IHC 0 with ISH group 1); "
        "heterogeneity (12% of cells amplified)." in conclusion
    )


def test_all_component_codes_are_in_the_configured_codesystem(
    record: AssayRecord, classification: Classification, settings: Settings
) -> None:
    """Component codes and adapter values use Settings.codesystem_url."""
    summary = summary_of(build_bundle("M", [(record, classification)], settings))
    for component in summary["component"]:
        assert component["code"]["coding"][0]["system"] == CS


def test_summary_notes_list_unused_results_and_warnings(
    record_factory: RecordFactory, classification: Classification, settings: Settings
) -> None:
    """Record notes, then each unused result with its reason, then each warning's code+message."""
    record = record_factory(
        notes=("Blinded recount of 20 cells performed",),
        unused=(
            UnusedResult(
                provenance=Provenance(
                    locator="OBX[7]", code=Coding(system="http://loinc.org", code="2345-7")
                ),
                reason="serum glucose is not a HER2 result",
            ),
            UnusedResult(provenance=Provenance(locator="OBX[8]"), reason="empty value"),
        ),
        warnings=(
            IngestWarning(code="NM-SCORE", message="score sent in an NM field", locator="OBX[5]"),
        ),
    )
    summary = summary_of(build_bundle("M", [(record, classification)], settings))
    assert [n["text"] for n in summary["note"]] == [
        "Blinded recount of 20 cells performed",
        "OBX[7] (http://loinc.org 2345-7) not used: serum glucose is not a HER2 result",
        "OBX[8] not used: empty value",
        "Warning NM-SCORE: score sent in an NM field",
    ]


# --------------------------------------------------------------------------------------------
# Reported Observations: value shapes
# --------------------------------------------------------------------------------------------


def test_reported_observation_shape(
    record: AssayRecord, classification: Classification, settings: Settings
) -> None:
    """Status, laboratory category, the incoming code kept, interpretation and NTE notes."""
    bundle = build_bundle("M", [(record, classification)], settings)
    ihc = resources(bundle, "Observation")[0]
    assert ihc["status"] == "final"
    assert ihc["category"][0]["coding"][0]["code"] == "laboratory"
    assert ihc["code"]["coding"] == [{"system": LOINC, "code": "85319-2"}]
    assert ihc["interpretation"] == [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                    "code": "NEG",
                }
            ]
        }
    ]
    assert ihc["note"] == [{"text": "Faint incomplete staining in 40% of invasive tumour cells"}]


VALUE_CASES = [
    pytest.param(
        {"number": Interval.point(Decimal("95"), "95"), "unit": "%", "ucum": "%"},
        {
            "valueQuantity": {
                "value": 95,
                "unit": "%",
                "system": "http://unitsofmeasure.org",
                "code": "%",
            }
        },
        id="point-percent-ucum",
    ),
    pytest.param(
        {
            "number": Interval(high=Decimal("1"), high_inclusive=False, text="<1"),
            "unit": "%",
            "ucum": "%",
        },
        {
            "valueQuantity": {
                "value": 1,
                "comparator": "<",
                "unit": "%",
                "system": "http://unitsofmeasure.org",
                "code": "%",
            }
        },
        id="upper-bound-exclusive",
    ),
    pytest.param(
        {"number": Interval(low=Decimal("6"), text=">=6")},
        {"valueQuantity": {"value": 6, "comparator": ">="}},
        id="lower-bound-inclusive",
    ),
    pytest.param(
        {"number": Interval(low=Decimal("6"), low_inclusive=False, text=">6")},
        {"valueQuantity": {"value": 6, "comparator": ">"}},
        id="lower-bound-exclusive",
    ),
    pytest.param(
        {"number": Interval(high=Decimal("10"), text="<=10")},
        {"valueQuantity": {"value": 10, "comparator": "<="}},
        id="upper-bound-inclusive",
    ),
    pytest.param(
        {"number": Interval(low=Decimal("1"), high=Decimal("10"), text="1-10"), "unit": "%"},
        {"valueString": "1-10"},
        id="range-as-text",
    ),
    pytest.param(
        {"number": Interval(low=Decimal("1"), high=Decimal("10"))},
        {"valueString": "1-10"},
        id="range-without-text",
    ),
    pytest.param(
        {
            "number": Interval.point(Decimal("4.2")),
            "unit": "copies/cell",
            "ucum": "{copies}/{cell}",
        },
        {
            "valueQuantity": {
                "value": Decimal("4.2"),
                "unit": "copies/cell",
                "system": "http://unitsofmeasure.org",
                "code": "{copies}/{cell}",
            }
        },
        id="copies-per-cell-ucum",
    ),
    pytest.param(
        {"number": Interval.point(Decimal("4.2")), "unit": "Signale/Zelle"},
        {"valueQuantity": {"value": Decimal("4.2"), "unit": "Signale/Zelle"}},
        id="unknown-unit-kept-as-text",
    ),
    pytest.param(
        {"ratio": (Decimal("2.30"), Decimal("1"))},
        {"valueRatio": {"numerator": {"value": Decimal("2.30")}, "denominator": {"value": 1}}},
        id="ratio",
    ),
    pytest.param(
        {
            "coding": Coding(system="http://loinc.org", code="LA6577-6", display="Negative"),
            "text": "Neg",
        },
        {
            "valueCodeableConcept": {
                "coding": [{"system": LOINC, "code": "LA6577-6", "display": "Negative"}],
                "text": "Neg",
            }
        },
        id="coded-with-text",
    ),
    pytest.param(
        {"coding": Coding(system="http://snomed.info/sct", code="1381317004", display="HER2 low")},
        {
            "valueCodeableConcept": {
                "coding": [{"system": SNOMED, "code": "1381317004", "display": "HER2 low"}],
                "text": "HER2 low",
            }
        },
        id="coded-display-as-text",
    ),
    pytest.param(
        {"text": "Score 2+, weak complete membrane staining"},
        {"valueString": "Score 2+, weak complete membrane staining"},
        id="text",
    ),
    pytest.param(
        {},
        {
            "dataAbsentReason": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                        "code": "unknown",
                    }
                ]
            }
        },
        id="no-value",
    ),
]


@pytest.mark.parametrize(("values", "expected"), VALUE_CASES)
def test_value_shapes(
    record_factory: RecordFactory,
    classification: Classification,
    settings: Settings,
    valid_r4: Validator,
    values: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    """Each reported value form becomes the FHIR value[x] that can hold it exactly."""
    emitted = single_value(
        record_factory, classification, settings, observation("85329-1", **values)
    )
    value_keys = {k for k in emitted if k.startswith("value") or k == "dataAbsentReason"}
    assert {k: emitted[k] for k in value_keys} == expected
    valid_r4(
        build_bundle(
            "M",
            [(record_factory(observations=(observation("1", **values),)), classification)],
            settings,
        )
    )


def test_observation_without_code_is_named_by_its_analyte(
    record_factory: RecordFactory,
    classification: Classification,
    settings: Settings,
    valid_r4: Validator,
) -> None:
    """No incoming code: Observation.code is the analyte as text (never an invented code)."""
    reported = ReportedObservation(
        analyte=Analyte.ER_PERCENT,
        provenance=Provenance(locator="Observation/abc"),
        status=ResultStatus.PRELIMINARY,
        text="90%",
    )
    emitted = single_value(record_factory, classification, settings, reported)
    assert emitted["code"] == {"text": "er-percent"}
    assert emitted["status"] == "preliminary"


# --------------------------------------------------------------------------------------------
# Determinism and serialisation
# --------------------------------------------------------------------------------------------


def test_dumps_is_byte_identical_for_the_same_input(
    record_factory: RecordFactory,
    classification_factory: ClassificationFactory,
    settings: Settings,
) -> None:
    """Equal inputs built separately serialise to the same bytes."""
    first = dumps(build_bundle("M", [(record_factory(), classification_factory())], settings))
    second = dumps(build_bundle("M", [(record_factory(), classification_factory())], settings))
    assert first == second


def test_correction_updates_the_same_resources(
    record_factory: RecordFactory, classification: Classification, settings: Settings
) -> None:
    """A correction message PUTs to exactly the URLs of the original."""
    original = record_factory()
    correction = record_factory(
        origin=replace(original.origin, message_id="MSG-0002"),
        report_status=ReportStatus.CORRECTED,
    )
    urls = [
        e["request"]["url"]
        for e in build_bundle("MSG-0001", [(original, classification)], settings)["entry"]
    ]
    corrected = build_bundle("MSG-0002", [(correction, classification)], settings)
    assert [e["request"]["url"] for e in corrected["entry"]] == urls
    assert only(corrected, "DiagnosticReport")["status"] == "corrected"
    assert summary_of(corrected)["status"] == "corrected"


def test_decimals_are_written_digit_for_digit(
    record_factory: RecordFactory, classification: Classification, settings: Settings
) -> None:
    """2.30 stays 2.30 on the wire (no float round trip, no trailing-zero loss)."""
    reported = observation("49683-6", ratio=(Decimal("2.30"), Decimal("1.0")))
    raw = dumps(
        build_bundle("M", [(record_factory(observations=(reported,)), classification)], settings)
    )
    assert b'"numerator":{"value":2.30}' in raw
    assert b'"denominator":{"value":1.0}' in raw
    assert orjson.loads(raw)["resourceType"] == "Bundle"


def test_non_finite_decimal_is_refused() -> None:
    """NaN cannot be written as a FHIR decimal."""
    with pytest.raises(OutputInvalid):
        dumps({"value": Decimal("NaN")})


def _status_observation(bundle: dict[str, Any], code: str) -> dict[str, Any]:
    (found,) = [
        o for o in resources(bundle, "Observation") if o["code"]["coding"][0]["code"] == code
    ]
    return found


def test_allred_h_score_and_intensity_are_shown_on_the_receptor_status(
    record_factory: RecordFactory,
    classification_factory: ClassificationFactory,
    settings: Settings,
    valid_r4: Validator,
) -> None:
    """Section 6: Allred score, H-score and intensity are kept and shown beside the call, a
    score as a Quantity when it is one number, as written when it is a range."""
    er = ReceptorResult(
        percent=Interval.point(Decimal("95")),
        allred=Interval.point(Decimal("8")),
        h_score=Interval(low=Decimal("150"), high=Decimal("200"), text="150-200"),
        intensity="strong",
    )
    classification = classification_factory(
        er_result=ReceptorCall.POSITIVE, hr_status=HrStatus.POSITIVE
    )
    bundle = build_bundle("M", [(record_factory(er=er), classification)], settings)
    valid_r4(bundle)
    status = _status_observation(bundle, "16112-5")
    shown = {c["code"]["coding"][0]["code"]: c for c in status["component"]}
    assert shown["allred-score"]["valueQuantity"] == {"value": 8}
    assert shown["h-score"]["valueString"] == "150-200"
    assert shown["staining-intensity"]["valueString"] == "strong"
    assert status["valueCodeableConcept"]["coding"][-1]["code"] == "positive"


def test_receptor_status_without_details_has_no_components(
    record_factory: RecordFactory,
    classification_factory: ClassificationFactory,
    settings: Settings,
) -> None:
    """A percentage alone: the status Observation carries the call and nothing else."""
    record = record_factory(pgr=ReceptorResult(percent=Interval.point(Decimal("40"))))
    classification = classification_factory(pgr_result=ReceptorCall.POSITIVE)
    bundle = build_bundle("M", [(record, classification)], settings)
    assert "component" not in _status_observation(bundle, "16113-3")


def test_a_result_read_from_text_carries_its_loinc_code_and_says_so(
    record_factory: RecordFactory, classification: Classification, settings: Settings
) -> None:
    """Report text gives a coded Observation; its text names where it was read from."""
    reported = ReportedObservation(
        analyte=Analyte.HER2_IHC,
        provenance=Provenance(
            locator="OBX[2] line 3",
            code=Coding(
                system=LOINC, code="18474-7", display="HER2 Ag [Presence] in Tissue by Immune stain"
            ),
            from_text=True,
        ),
        status=ResultStatus.FINAL,
        text="HER2 by IHC: Negative (Score 1+)",
    )
    emitted = single_value(record_factory, classification, settings, reported)
    assert emitted["code"] == {
        "coding": [
            {
                "system": LOINC,
                "code": "18474-7",
                "display": "HER2 Ag [Presence] in Tissue by Immune stain",
            }
        ],
        "text": "HER2 Ag [Presence] in Tissue by Immune stain (read from report text)",
    }
