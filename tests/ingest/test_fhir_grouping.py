"""FHIR input, many resources at once: Bundles, NDJSON, grouping, patient, specimen, sender."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mapping_support import example_mappings

from adapter.config import Settings
from adapter.errors import InvalidJson, NothingToClassify
from adapter.ingest import fhir
from adapter.mapping import Mappings
from adapter.model import (
    AdministrativeGender,
    AssayRecord,
    PersonName,
    Procedure,
    ReportStatus,
    Tissue,
)

LN = "http://loinc.org"
SCT = "http://snomed.info/sct"
IHC, IHC_ANY, RATIO, COPIES = "85319-2", "18474-7", "49683-6", "74860-8"
EXAMPLE_LAB = "https://lis.example-pathology.org/fhir"
LOCAL = "https://lis.example-pathology.org/codes"


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return example_mappings()


def observation(oid: str, code: str, value: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": fields.pop("status", "final"),
        "code": {"coding": [{"system": fields.pop("system", LN), "code": code}]},
        "subject": {"reference": fields.pop("subject", "Patient/p1")},
        "valueString": value,
        **fields,
    }


def bundle(*resources: dict[str, Any], kind: str = "collection", **fields: Any) -> bytes:
    entries = [{"fullUrl": f"urn:uuid:{index}", "resource": r} for index, r in enumerate(resources)]
    return json.dumps({"resourceType": "Bundle", "type": kind, **fields, "entry": entries}).encode()


def records(mappings: Mappings, data: bytes, **options: Any) -> tuple[str, list[AssayRecord]]:
    return fhir.to_records(data, mappings, Settings(), **options)


def locators(record: AssayRecord) -> list[str]:
    return [o.provenance.locator for o in record.observations]


def report(rid: str, *results: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "id": rid,
        "status": fields.pop("status", "final"),
        "code": {"text": "HER2"},
        "subject": {"reference": "Patient/p1"},
        "result": [{"reference": ref} for ref in results],
        **fields,
    }


SPECIMEN_S1 = {"reference": "Specimen/s1"}
SPECIMEN_S2 = {"reference": "Specimen/s2"}

# (resources) -> the Observation locators of each record, in order
GROUPINGS = [
    pytest.param(
        [observation("a", IHC, "2+"), observation("b", RATIO, "2.4")],
        [["Observation/a", "Observation/b"]],
        id="same-patient-no-links-one-record",
    ),
    pytest.param(
        [observation("a", IHC, "2+"), observation("b", IHC, "1+", subject="Patient/p2")],
        [["Observation/a"], ["Observation/b"]],
        id="two-patients-two-records",
    ),
    pytest.param(
        [
            observation("a", IHC, "3+", specimen=SPECIMEN_S1),
            observation("b", IHC, "1+", specimen=SPECIMEN_S2),
        ],
        [["Observation/a"], ["Observation/b"]],
        id="two-specimens-two-records",
    ),
    pytest.param(
        [
            observation("a", IHC, "3+"),
            observation("b", IHC, "1+"),
            report("r1", "Observation/a"),
            report("r2", "Observation/b"),
        ],
        [["Observation/a"], ["Observation/b"]],
        id="one-record-per-report",
    ),
    pytest.param(
        [
            observation("a", IHC, "2+"),
            {**observation("p", "74885-5", ""), "hasMember": [{"reference": "Observation/b"}]},
            observation("b", RATIO, "2.4"),
            observation("c", IHC, "1+", specimen=SPECIMEN_S1),
        ],
        [["Observation/a"], ["Observation/b"], ["Observation/c"]],
        id="panel-report-and-loose-results-apart",
    ),
    pytest.param(
        [
            observation("b", RATIO, "2.4"),
            observation("a", IHC, "2+", derivedFrom=[{"reference": "urn:uuid:0"}]),
        ],
        [["Observation/b", "Observation/a"]],
        id="derived-from-by-full-url",
    ),
]


@pytest.mark.parametrize(("resources", "expected"), GROUPINGS)
def test_grouping(
    mappings: Mappings, resources: list[dict[str, Any]], expected: list[list[str]]
) -> None:
    """Report, panel, specimen and patient decide which Observations form one record."""
    for resource in resources:
        if resource.get("id") == "p":
            resource.pop("valueString")
    _, found = records(mappings, bundle(*resources))
    assert [locators(record) for record in found] == expected
    assert [record.origin.group_index for record in found] == list(range(1, len(expected) + 1))


def test_report_with_contained_results(mappings: Mappings) -> None:
    """A DiagnosticReport's contained Observations are its results, located inside it."""
    contained = [observation("o1", IHC, "3+", subject="Patient/p9")]
    resource = {**report("rep", "#o1"), "contained": contained}
    message_id, found = records(mappings, json.dumps(resource).encode())
    assert message_id == "rep"
    assert locators(found[0]) == ["DiagnosticReport/rep#o1"]


def test_ndjson_two_patients(mappings: Mappings) -> None:
    """NDJSON: one resource per line; each patient is a record; the id is a content digest."""
    lines = [
        {"resourceType": "Patient", "id": "pa", "identifier": [{"value": "A"}]},
        observation("a", IHC, "3+", subject="Patient/pa"),
        {"resourceType": "Patient", "id": "pb", "identifier": [{"value": "B"}]},
        observation("b", IHC, "1+", subject="Patient/pb"),
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    message_id, found = records(mappings, data)
    assert message_id.startswith("sha256-")
    assert [[i.value for i in r.patient.identifiers] for r in found] == [["A"], ["B"]]
    assert records(mappings, data)[0] == message_id


def test_ndjson_broken_line_is_reported_and_the_rest_read(mappings: Mappings) -> None:
    """One broken NDJSON line does not lose the others; all lines broken is InvalidJson."""
    good = json.dumps(observation("a", IHC, "3+"))
    _, found = records(mappings, f'{good}\n{{"resourceType": }}\n'.encode())
    assert "RESOURCE-REJECTED" in {w.code for w in found[0].warnings}
    with pytest.raises(InvalidJson, match="line 1, column 7"):
        records(mappings, b'{"a": }\n{"b": }\n')


def test_invalid_entry_is_reported_and_the_rest_classified(mappings: Mappings) -> None:
    """An invalid Observation in a Bundle becomes a warning naming it; the others still count."""
    bad = observation("bad", IHC, "3+", effectiveDateTime="not a date")
    _, found = records(mappings, bundle(bad, observation("good", IHC, "1+")))
    assert locators(found[0]) == ["Observation/good"]
    rejected = [w for w in found[0].warnings if w.code == "RESOURCE-REJECTED"]
    assert rejected
    assert "Observation/bad: effectiveDateTime" in rejected[0].message


def test_only_invalid_entries_is_nothing_to_classify(mappings: Mappings) -> None:
    """When every Observation was rejected, the error carries the reasons."""
    bad = observation("bad", IHC, "3+", status="done")
    with pytest.raises(NothingToClassify, match="Observation/bad: status"):
        records(mappings, bundle(bad))


def test_unread_resource_types_are_skipped_with_a_warning(mappings: Mappings) -> None:
    """Organizations and the like in a Bundle are skipped, not errors."""
    organization = {"resourceType": "Organization", "id": "org", "name": "Lab"}
    _, found = records(mappings, bundle(organization, observation("a", IHC, "3+")))
    assert "RESOURCE-IGNORED" in {w.code for w in found[0].warnings}


# --------------------------------------------------------------------------------------------
# Message identity and order numbers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"id": "b1", "identifier": {"value": "MSG-1"}}, "MSG-1", id="bundle-identifier"
        ),
        pytest.param({"id": "b1"}, "b1", id="bundle-id"),
    ],
)
def test_message_id(mappings: Mappings, fields: dict[str, Any], expected: str) -> None:
    """Bundle.identifier.value, else the Bundle id, names the message."""
    message_id, found = records(mappings, bundle(observation("a", IHC, "3+"), **fields))
    assert message_id == expected
    assert found[0].origin.message_id == expected


def test_order_numbers_from_the_report(mappings: Mappings) -> None:
    """PLAC/FILL identifiers of the report give the order numbers; basedOn gives the placer."""
    typed = "http://terminology.hl7.org/CodeSystem/v2-0203"
    with_types = report(
        "r",
        "Observation/a",
        identifier=[
            {"type": {"coding": [{"system": typed, "code": "FILL"}]}, "value": "F-1"},
            {"type": {"coding": [{"system": typed, "code": "PLAC"}]}, "value": "P-1"},
        ],
    )
    _, found = records(mappings, bundle(observation("a", IHC, "3+"), with_types))
    assert (found[0].origin.placer_order, found[0].origin.filler_order) == ("P-1", "F-1")
    plain = report(
        "r",
        "Observation/a",
        identifier=[{"value": "R-9"}],
        basedOn=[{"identifier": {"value": "O-9"}}],
    )
    _, found = records(mappings, bundle(observation("a", IHC, "3+"), plain))
    assert (found[0].origin.placer_order, found[0].origin.filler_order) == ("O-9", "R-9")


# --------------------------------------------------------------------------------------------
# Report status
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("report_status", "result_statuses", "expected"),
    [
        pytest.param("preliminary", ["final"], ReportStatus.PRELIMINARY, id="report-status-wins"),
        pytest.param(
            "final",
            ["corrected", "final"],
            ReportStatus.CORRECTED,
            id="corrected-result-corrects-final-report",
        ),
        pytest.param(None, ["final", "final"], ReportStatus.FINAL, id="all-final"),
        pytest.param(None, ["final", "amended"], ReportStatus.AMENDED, id="any-amended"),
        pytest.param(
            None, ["final", "preliminary"], ReportStatus.PRELIMINARY, id="any-preliminary"
        ),
    ],
)
def test_report_status(
    mappings: Mappings,
    report_status: str | None,
    result_statuses: list[str],
    expected: ReportStatus,
) -> None:
    """DiagnosticReport.status when sent, else derived from the results' statuses."""
    results = [
        observation(f"o{i}", code, "2.4" if code == RATIO else "2+", status=status)
        for i, (code, status) in enumerate(zip((IHC, RATIO), result_statuses, strict=False))
    ]
    extra = [report("r", *(f"Observation/{r['id']}" for r in results), status=report_status)]
    _, found = records(mappings, bundle(*results, *(extra if report_status else [])))
    assert found[0].report_status is expected


def test_entered_in_error_report_is_not_classified(mappings: Mappings) -> None:
    """Results of a report entered in error are not used: the order withdraws them all."""
    data = bundle(
        observation("a", IHC, "3+"), report("r", "Observation/a", status="entered-in-error")
    )
    _, orders = fhir.to_orders(data, mappings, Settings())
    (order,) = orders
    assert order.whole_order_retracted
    assert order.values == ()
    assert [p.locator for p in order.retracted] == ["Observation/a"]
    assert "entered-in-error" in order.record.unused[0].reason


# --------------------------------------------------------------------------------------------
# Patient and specimen
# --------------------------------------------------------------------------------------------


def test_patient_identifiers_and_demographics(mappings: Mappings) -> None:
    """Identifiers, the reference as sent, the official name, gender and birth date; nothing else
    (whether the demographics leave the adapter is Settings.patient_details, in emit)."""
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [
            {
                "type": {"coding": [{"code": "MR"}]},
                "system": "urn:oid:1.2.3",
                "value": "MRN-7",
            }
        ],
        "name": [
            {"use": "nickname", "given": ["Nick"]},
            {"use": "official", "family": "Nameless-Testperson", "given": ["Ann"]},
        ],
        "gender": "female",
        "birthDate": "1960-01-02",
        "address": [{"city": "Nowhere-Testcity"}],
        "telecom": [{"system": "phone", "value": "555-0100"}],
    }
    _, found = records(mappings, bundle(patient, observation("a", IHC, "3+")))
    ref = found[0].patient
    assert ref.fhir_reference == "Patient/p1"
    assert [(i.system, i.value, i.type_code) for i in ref.identifiers] == [
        ("urn:oid:1.2.3", "MRN-7", "MR")
    ]
    assert ref.name == PersonName(family="Nameless-Testperson", given=("Ann",))
    assert (ref.gender, ref.birth_date) == (AdministrativeGender.FEMALE, "1960-01-02")
    dumped = repr(found[0])  # every field, nested records included
    assert "Nowhere-Testcity" not in dumped
    assert "555-0100" not in dumped


def specimen(site: str, *, method: str | None = None, **fields: Any) -> dict[str, Any]:
    collection: dict[str, Any] = {"bodySite": {"coding": [{"system": SCT, "code": site}]}}
    if method:
        collection["method"] = {"text": method}
    return {"resourceType": "Specimen", "id": "s1", "collection": collection, **fields}


@pytest.mark.parametrize(
    ("resources", "tissue", "warning"),
    [
        pytest.param(
            [specimen("69695003")], Tissue.GASTROESOPHAGEAL, None, id="specimen-site-stomach"
        ),
        pytest.param([specimen("76752008")], Tissue.BREAST, None, id="specimen-site-breast"),
        pytest.param(
            [
                {
                    **specimen("76752008"),
                    "collection": {
                        "bodySite": {"concept": {"coding": [{"system": SCT, "code": "69695003"}]}}
                    },
                }
            ],
            Tissue.GASTROESOPHAGEAL,
            None,
            id="r5-codeable-reference-site",
        ),
        pytest.param(
            [{"resourceType": "Specimen", "id": "s1", "type": {"text": "Gastric biopsy"}}],
            Tissue.GASTROESOPHAGEAL,
            None,
            id="specimen-type-text",
        ),
        pytest.param([], Tissue.UNKNOWN, "TISSUE-UNKNOWN", id="no-specimen"),
    ],
)
def test_tissue(
    mappings: Mappings, resources: list[dict[str, Any]], tissue: Tissue, warning: str | None
) -> None:
    """The tissue comes from the specimen's site codes, then texts, then the code's scope."""
    result = observation("a", IHC_ANY, "2+", specimen=SPECIMEN_S1)
    _, found = records(mappings, bundle(*resources, result))
    assert found[0].specimen.tissue is tissue
    if warning:
        assert warning in {w.code for w in found[0].warnings}


def test_conflicting_tissue_is_unknown(mappings: Mappings) -> None:
    """A stomach specimen under a breast-only result code is unknown tissue, with a warning."""
    _, found = records(
        mappings, bundle(specimen("69695003"), observation("a", IHC, "2+", specimen=SPECIMEN_S1))
    )
    assert found[0].specimen.tissue is Tissue.UNKNOWN
    assert "CONFLICTING-TISSUE" in {w.code for w in found[0].warnings}


def test_observation_body_site(mappings: Mappings) -> None:
    """Observation.bodySite counts as a site when there is no Specimen."""
    result = observation(
        "a", IHC_ANY, "2+", bodySite={"coding": [{"system": SCT, "code": "69695003"}]}
    )
    _, found = records(mappings, bundle(result))
    assert found[0].specimen.tissue is Tissue.GASTROESOPHAGEAL
    assert [s.code for s in found[0].specimen.body_sites] == ["69695003"]


@pytest.mark.parametrize(
    ("method", "procedure"),
    [
        ("Endoscopic biopsy", Procedure.BIOPSY),
        ("Gastrectomy", Procedure.SURGICAL),
        (None, Procedure.UNKNOWN),
    ],
)
def test_procedure_from_collection_method(
    mappings: Mappings, method: str | None, procedure: Procedure
) -> None:
    """Specimen.collection.method words say biopsy or surgical."""
    data = bundle(
        specimen("69695003", method=method), observation("a", IHC_ANY, "2+", specimen=SPECIMEN_S1)
    )
    _, found = records(mappings, data)
    assert found[0].specimen.procedure is procedure


def test_specimen_id_prefers_the_accession(mappings: Mappings) -> None:
    """The lab's accession number identifies the specimen, else its identifier, else its id."""
    with_accession = {**specimen("76752008"), "accessionIdentifier": {"value": "S24-1"}}
    _, found = records(
        mappings, bundle(with_accession, observation("a", IHC, "3+", specimen=SPECIMEN_S1))
    )
    assert found[0].specimen.id == "S24-1"
    _, found = records(
        mappings, bundle(specimen("76752008"), observation("a", IHC, "3+", specimen=SPECIMEN_S1))
    )
    assert found[0].specimen.id == "s1"


# --------------------------------------------------------------------------------------------
# Sender
# --------------------------------------------------------------------------------------------

LOCAL_IHC = observation("a", "HER2IHC", "3+", system=LOCAL)


@pytest.mark.parametrize(
    ("data", "source"),
    [
        pytest.param(
            bundle(LOCAL_IHC, meta={"source": EXAMPLE_LAB}), None, id="bundle-meta-source"
        ),
        pytest.param(
            bundle(LOCAL_IHC, meta={"source": EXAMPLE_LAB + "#run-7"}),
            None,
            id="meta-source-fragment",
        ),
        pytest.param(
            bundle({**LOCAL_IHC, "meta": {"source": EXAMPLE_LAB}}),
            None,
            id="observation-meta-source-ndjson-like",
        ),
        pytest.param(
            bundle(
                {
                    "resourceType": "MessageHeader",
                    "id": "mh",
                    "eventCoding": {"code": "x"},
                    "source": {"endpoint": EXAMPLE_LAB},
                },
                LOCAL_IHC,
                kind="message",
            ),
            None,
            id="message-header-endpoint",
        ),
        pytest.param(
            bundle(
                {
                    "resourceType": "MessageHeader",
                    "id": "mh",
                    "eventCoding": {"code": "x"},
                    "source": {"endpointUrl": EXAMPLE_LAB},
                },
                LOCAL_IHC,
                kind="message",
            ),
            None,
            id="r5-message-header-endpoint-url",
        ),
        pytest.param(bundle(LOCAL_IHC), EXAMPLE_LAB, id="caller-given-source"),
    ],
)
def test_sender_mapping(mappings: Mappings, data: bytes, source: str | None) -> None:
    """The sender's local codes apply when the source names it."""
    _, found = records(mappings, data, source=source)
    assert found[0].her2_ihc is not None
    assert found[0].specimen.tissue is Tissue.BREAST  # example-lab's default tissue


def test_local_code_unknown_without_the_sender(mappings: Mappings) -> None:
    """Without a matching source, a lab's local code is not in the mappings."""
    with pytest.raises(NothingToClassify, match="not in the mappings"):
        records(mappings, bundle(LOCAL_IHC, meta={"source": "https://other.example.org"}))


def test_same_input_same_records(mappings: Mappings) -> None:
    """Reading is deterministic."""
    data = bundle(observation("a", IHC, "2+"), observation("b", RATIO, "2.4"), specimen("76752008"))
    assert records(mappings, data) == records(mappings, data)


def test_resources_without_id_are_located_by_position(mappings: Mappings) -> None:
    """Without an id, a result is located as Observation[n], n its 1-based place in the input."""
    first = {k: v for k, v in observation("x", IHC, "3+").items() if k != "id"}
    second = {k: v for k, v in observation("x", RATIO, "2.4").items() if k != "id"}
    _, found = records(mappings, bundle(first, second))
    assert locators(found[0]) == ["Observation[1]", "Observation[2]"]


def test_adapter_output_read_back_keeps_results_not_the_summary(mappings: Mappings) -> None:
    """The adapter's own Bundle fed back: its results are read, its summary does not vote."""
    from adapter.model import SourceFormat
    from adapter.pipeline import Context, RawMessage, process

    context = Context(settings=Settings(), mappings=mappings)
    data = bundle(observation("a", IHC, "2+"), observation("b", RATIO, "2.4"), specimen("76752008"))
    first = process(RawMessage(data, SourceFormat.FHIR), context)
    assert first.bundle_json is not None
    again = process(RawMessage(first.bundle_json, SourceFormat.FHIR), context)
    assert again.ok
    assert [o.analyte for o in again.records[0].observations] == [
        o.analyte for o in first.records[0].observations
    ]
    assert again.classifications == first.classifications
