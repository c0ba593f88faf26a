"""FHIR input, one Observation at a time: value[x] forms, components, statuses, notes, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapter.config import Settings
from adapter.errors import (
    AdapterError,
    EncodingError,
    InvalidJson,
    InvalidResource,
    NotFhir,
    NothingToClassify,
    UnsupportedResource,
)
from adapter.ingest import fhir
from adapter.mapping import Mappings, load_mappings
from adapter.model import (
    AssayRecord,
    Ihc0Subtype,
    IhcScore,
    Interpretation,
    Interval,
    ReportStatus,
    ResultStatus,
)

D = Decimal
LN = "http://loinc.org"
IHC, ISH, RATIO, COPIES, CEP17 = "85319-2", "85318-4", "49683-6", "74860-8", "74861-6"
ER, ER_PCT, PGR_PCT, SERUM = "85337-4", "85329-1", "85325-9", "42914-2"


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return load_mappings(Settings().mappings_dir)


def observation(code: str, value: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": fields.pop("id", "obs-1"),
        "status": fields.pop("status", "final"),
        "code": {"coding": [{"system": fields.pop("system", LN), "code": code}]},
        "subject": {"reference": "Patient/p1"},
    }
    resource.update(value or {})
    resource.update(fields)
    return resource


def read(
    mappings: Mappings, resource: dict[str, Any], settings: Settings | None = None
) -> AssayRecord:
    _, records = fhir.to_records(json.dumps(resource).encode(), mappings, settings or Settings())
    assert len(records) == 1
    return records[0]


def warning_codes(record: AssayRecord) -> set[str]:
    return {warning.code for warning in record.warnings}


# --------------------------------------------------------------------------------------------
# value[x]
# --------------------------------------------------------------------------------------------

# (code, value element) -> the Interval read, the ratio terms kept
NUMBERS = [
    pytest.param(
        RATIO,
        {"valueQuantity": {"value": 2.3}},
        Interval.point(D("2.3")),
        None,
        id="quantity-ratio-2.3",
    ),
    pytest.param(
        RATIO,
        {"valueQuantity": {"value": 2.30}},
        Interval.point(D("2.30")),
        None,
        id="quantity-keeps-decimal",
    ),
    pytest.param(
        ER_PCT,
        {"valueQuantity": {"comparator": "<", "value": 1, "unit": "%"}},
        Interval(high=D(1), high_inclusive=False),
        None,
        id="quantity-comparator-lt",
    ),
    pytest.param(
        COPIES,
        {"valueQuantity": {"comparator": ">=", "value": 6}},
        Interval(low=D(6)),
        None,
        id="quantity-comparator-ge",
    ),
    pytest.param(
        COPIES,
        {"valueQuantity": {"comparator": ">", "value": 6}},
        Interval(low=D(6), low_inclusive=False),
        None,
        id="quantity-comparator-gt",
    ),
    pytest.param(
        RATIO,
        {"valueRatio": {"numerator": {"value": 2.3}, "denominator": {"value": 1}}},
        Interval.point(D("2.3")),
        (D("2.3"), D(1)),
        id="ratio-2.3-to-1",
    ),
    pytest.param(
        RATIO,
        {"valueRatio": {"numerator": {"value": 9}, "denominator": {"value": 4}}},
        Interval.point(D("2.25")),
        (D(9), D(4)),
        id="ratio-quotient-exact",
    ),
    pytest.param(
        ER_PCT, {"valueString": "1-10%"}, Interval(low=D(1), high=D(10)), None, id="string-range"
    ),
    pytest.param(
        ER_PCT,
        {"valueString": "<1"},
        Interval(high=D(1), high_inclusive=False),
        None,
        id="string-bound",
    ),
    pytest.param(
        ER, {"valueString": "95%"}, Interval.point(D(95)), None, id="string-percent-on-result-code"
    ),
    pytest.param(COPIES, {"valueInteger": 7}, Interval.point(D(7)), None, id="integer"),
]


@pytest.mark.parametrize(("code", "value", "interval", "ratio"), NUMBERS)
def test_numbers_are_read_exactly(
    mappings: Mappings,
    code: str,
    value: dict[str, Any],
    interval: Interval,
    ratio: tuple[Decimal, Decimal] | None,
) -> None:
    """Quantities, ratios, integers and numeric strings keep their exact value and bounds."""
    observed = read(mappings, observation(code, value)).observations[0]
    number = observed.number
    assert number is not None
    assert (number.low, number.low_inclusive, number.high, number.high_inclusive) == (
        interval.low,
        interval.low_inclusive,
        interval.high,
        interval.high_inclusive,
    )
    assert observed.ratio == ratio


def test_ratio_zero_denominator_is_not_a_number(mappings: Mappings) -> None:
    """A ratio over zero is not understood: the result is reported as not used."""
    resource = observation(
        RATIO, {"valueRatio": {"numerator": {"value": 2}, "denominator": {"value": 0}}}
    )
    with pytest.raises(NothingToClassify, match="not understood"):
        read(mappings, resource)


# (value element) -> IHC score, sub-type, stated word, warning
SCORES = [
    pytest.param(
        {"valueCodeableConcept": {"coding": [{"system": LN, "code": "LA11842-4"}]}},
        IhcScore.TWO,
        None,
        None,
        None,
        id="loinc-answer-2plus",
    ),
    pytest.param(
        {"valueCodeableConcept": {"text": "Negative (1+)"}},
        IhcScore.ONE,
        None,
        Interpretation.NEGATIVE,
        None,
        id="concept-text-only",
    ),
    pytest.param(
        {
            "valueCodeableConcept": {
                "coding": [{"system": "urn:lab", "code": "X3", "display": "3+"}]
            }
        },
        IhcScore.THREE,
        None,
        None,
        "ANSWER-CODE-UNKNOWN",
        id="unknown-answer-code-uses-display",
    ),
    pytest.param(
        {
            "valueCodeableConcept": {
                "coding": [{"system": "https://cap.org/eCC", "code": "40505.100004300"}]
            }
        },
        IhcScore.ZERO,
        None,
        Interpretation.NEGATIVE,
        None,
        id="cap-ecc-answer",
    ),
    pytest.param(
        {"valueString": "Positive (3+)"},
        IhcScore.THREE,
        None,
        Interpretation.POSITIVE,
        None,
        id="string-word-and-score",
    ),
    pytest.param(
        {"valueString": "ultralow"},
        IhcScore.ZERO,
        Ihc0Subtype.ULTRALOW,
        None,
        None,
        id="string-subtype",
    ),
    pytest.param({"valueInteger": 3}, IhcScore.THREE, None, None, None, id="integer-as-score"),
    pytest.param(
        {"valueQuantity": {"value": 2}},
        IhcScore.TWO,
        None,
        None,
        "QUANTITY-AS-WORDING",
        id="quantity-as-score-warns",
    ),
]


@pytest.mark.parametrize(("value", "score", "subtype", "stated", "warning"), SCORES)
def test_ihc_answers(
    mappings: Mappings,
    value: dict[str, Any],
    score: IhcScore,
    subtype: Ihc0Subtype | None,
    stated: Interpretation | None,
    warning: str | None,
) -> None:
    """Coded, worded and numeric IHC values mean what the mapping tables say."""
    record = read(mappings, observation(IHC, value))
    assert record.her2_ihc is not None
    assert (record.her2_ihc.score, record.her2_ihc.ihc0_subtype, record.her2_ihc.stated) == (
        score,
        subtype,
        stated,
    )
    if warning:
        assert warning in warning_codes(record)


def test_coded_value_keeps_the_matched_coding(mappings: Mappings) -> None:
    """Of several answer codings, the one the mappings know is kept, with the concept text."""
    value = {
        "valueCodeableConcept": {
            "coding": [
                {"system": "urn:lab", "code": "P"},
                {"system": LN, "code": "LA6576-8", "display": "Positive"},
            ],
            "text": "ER positive",
        }
    }
    observed = read(mappings, observation(ER, value)).observations[0]
    assert observed.coding is not None
    assert (observed.coding.system, observed.coding.code) == (LN, "LA6576-8")
    assert observed.text == "ER positive"
    assert observed.provenance.value_type == "valueCodeableConcept"


@pytest.mark.parametrize(
    ("note", "subtype"),
    [
        pytest.param("0 with faint membrane staining", Ihc0Subtype.ULTRALOW, id="note-ultralow"),
        pytest.param("no staining", Ihc0Subtype.NULL, id="note-null"),
        pytest.param("Slides reviewed twice.", None, id="note-without-subtype"),
    ],
)
def test_ihc0_subtype_from_note(mappings: Mappings, note: str, subtype: Ihc0Subtype | None) -> None:
    """An IHC 0 whose note is a sub-type wording takes the sub-type; the note is kept."""
    resource = observation(IHC, {"valueString": "0"}, note=[{"text": note}])
    record = read(mappings, resource)
    assert record.her2_ihc is not None
    assert record.her2_ihc.score is IhcScore.ZERO
    assert record.her2_ihc.ihc0_subtype is subtype
    assert record.observations[0].notes == (note,)


def test_subtype_note_contradicting_the_score_is_not_used(mappings: Mappings) -> None:
    """An 'ultralow' note on a 2+ score changes nothing and warns."""
    record = read(mappings, observation(IHC, {"valueString": "2+"}, note=[{"text": "ultralow"}]))
    assert record.her2_ihc is not None
    assert (record.her2_ihc.score, record.her2_ihc.ihc0_subtype) == (IhcScore.TWO, None)


def test_recount_note_marks_the_ish_recounted(mappings: Mappings) -> None:
    """A note saying a recount was done reaches the ISH result through the mapping."""
    resource = observation(
        COPIES, {"valueQuantity": {"value": 4.8}}, note=[{"text": "Recount by second observer"}]
    )
    record = read(mappings, resource)
    assert record.her2_ish is not None
    assert record.her2_ish.recount_done


def test_interpretation_codes_are_kept(mappings: Mappings) -> None:
    """v3-ObservationInterpretation codes are kept; unknown ones warn."""
    system = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
    resource = observation(
        IHC,
        {"valueString": "3+"},
        interpretation=[
            {"coding": [{"system": system, "code": "POS"}, {"system": "urn:x", "code": "??"}]}
        ],
    )
    record = read(mappings, resource)
    assert record.observations[0].interpretation == ("POS",)
    assert "FLAG-UNKNOWN" in warning_codes(record)


# --------------------------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------------------------


def component(code: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"code": {"coding": [{"system": LN, "code": code}]}, **value}


def test_ish_panel_components_become_values(mappings: Mappings) -> None:
    """Each component of a panel is its own value, located as Observation/<id>.component[i]."""
    resource = observation(
        "74885-5",
        id="panel",
        component=[
            component(RATIO, {"valueQuantity": {"value": 2.6}}),
            component(COPIES, {"valueQuantity": {"value": 6.2}}),
            component(CEP17, {"valueQuantity": {"value": 2.4}}),
        ],
    )
    record = read(mappings, resource)
    assert [o.provenance.locator for o in record.observations] == [
        "Observation/panel.component[0]",
        "Observation/panel.component[1]",
        "Observation/panel.component[2]",
    ]
    assert record.her2_ish is not None
    assert (record.her2_ish.ratio, record.her2_ish.her2_copies, record.her2_ish.cep17_copies) == (
        Interval.point(D("2.6")),
        Interval.point(D("6.2")),
        Interval.point(D("2.4")),
    )
    assert record.unused == ()  # the panel itself is a container, not an unknown result
    assert record.origin.order_code is not None
    assert record.origin.order_code.code == "74885-5"


def test_er_with_percent_component(mappings: Mappings) -> None:
    """An ER Observation with a % component gives both the stated result and the percentage."""
    resource = observation(
        ER,
        {"valueCodeableConcept": {"coding": [{"system": LN, "code": "LA6576-8"}]}},
        component=[component(ER_PCT, {"valueQuantity": {"value": 95, "unit": "%"}})],
    )
    record = read(mappings, resource)
    assert record.er is not None
    assert record.er.stated is Interpretation.POSITIVE
    assert record.er.percent == Interval.point(D(95))
    assert [o.provenance.locator for o in record.observations] == [
        "Observation/obs-1",
        "Observation/obs-1.component[0]",
    ]


def test_unknown_component_is_reported_unused(mappings: Mappings) -> None:
    """A component with a code not in the mappings is read but not used."""
    resource = observation(
        "74885-5",
        component=[
            component(RATIO, {"valueQuantity": {"value": 2.6}}),
            component("9999-9", {"valueString": "x"}),
        ],
    )
    record = read(mappings, resource)
    assert [(u.provenance.locator, u.reason) for u in record.unused] == [
        ("Observation/obs-1.component[1]", "result code not in the mappings")
    ]


# --------------------------------------------------------------------------------------------
# Status, absent data
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "report_status"),
    [
        ("final", ReportStatus.FINAL),
        ("preliminary", ReportStatus.PRELIMINARY),
        ("amended", ReportStatus.AMENDED),
        ("corrected", ReportStatus.CORRECTED),
    ],
)
def test_kept_statuses(mappings: Mappings, status: str, report_status: ReportStatus) -> None:
    """Preliminary, final, amended and corrected results are classified; the report follows."""
    record = read(mappings, observation(IHC, {"valueString": "3+"}, status=status))
    assert record.observations[0].status is ResultStatus(status)
    assert record.report_status is report_status


def test_entered_in_error_is_not_classified_but_withdraws(mappings: Mappings) -> None:
    """An entered-in-error result never votes; it is an order withdrawing that result."""
    resource = observation(IHC, {"valueString": "3+"}, status="entered-in-error")
    _, orders = fhir.to_orders(json.dumps(resource).encode(), mappings, Settings())
    (order,) = orders
    assert order.values == ()
    assert order.record.observations == ()
    assert [p.locator for p in order.retracted] == [order.record.unused[0].provenance.locator]
    assert "entered in error" in order.record.unused[0].reason


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        pytest.param(
            {"dataAbsentReason": {"coding": [{"code": "error"}]}},
            "dataAbsentReason error",
            id="data-absent-reason",
        ),
        pytest.param(
            {"status": "cancelled"}, "Observation.status cancelled", id="cancelled-like-obx11-x"
        ),
    ],
)
def test_result_that_could_not_be_obtained_is_indeterminate(
    mappings: Mappings, fields: dict[str, Any], reason: str
) -> None:
    """dataAbsentReason or a cancelled result is an indeterminate test, not silence."""
    record = read(mappings, observation(IHC, **fields))
    assert record.her2_ihc is not None
    assert record.her2_ihc.indeterminate_reason is not None
    assert reason in record.her2_ihc.indeterminate_reason


@pytest.mark.parametrize(
    ("resource", "reason"),
    [
        pytest.param(
            observation(SERUM, {"valueQuantity": {"value": 12}}),
            "serum HER2",
            id="serum-her2-excluded",
        ),
        pytest.param(
            observation("2345-7", {"valueQuantity": {"value": 5}}),
            "result code not in the mappings",
            id="unknown-code",
        ),
        pytest.param(observation(IHC), "no value", id="no-value"),
        pytest.param(
            observation(IHC, {"valueString": "see report"}),
            "not understood",
            id="value-not-understood",
        ),
        pytest.param(
            observation(IHC, {"valueBoolean": True}), "not understood", id="unsupported-value-type"
        ),
    ],
)
def test_unusable_results_give_nothing_to_classify(
    mappings: Mappings, resource: dict[str, Any], reason: str
) -> None:
    """A lone result that cannot be used is rejected with the reason."""
    with pytest.raises(NothingToClassify, match=reason):
        read(mappings, resource)


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------

BERLIN = Settings(site_timezone="Europe/Berlin")


@pytest.mark.parametrize(
    ("sent", "expected", "warning"),
    [
        pytest.param(
            "2024-03-05T10:15:00+01:00",
            datetime(2024, 3, 5, 10, 15, tzinfo=timezone(timedelta(hours=1))),
            None,
            id="with-offset",
        ),
        pytest.param(
            "2024-03-05T10:15:00Z",
            datetime(2024, 3, 5, 10, 15, tzinfo=UTC),
            None,
            id="utc",
        ),
        pytest.param(
            "2024-03-05T10:15:00",
            datetime(2024, 3, 5, 10, 15, tzinfo=ZoneInfo("Europe/Berlin")),
            "DATETIME-NO-OFFSET",
            id="no-offset-site-zone",
        ),
        pytest.param(
            "2024-03-05",
            datetime(2024, 3, 5, tzinfo=ZoneInfo("Europe/Berlin")),
            "DATETIME-COARSE",
            id="date-only-midnight",
        ),
    ],
)
def test_effective_date_time(
    mappings: Mappings, sent: str, expected: datetime, warning: str | None
) -> None:
    """A dateTime keeps its offset; a missing offset or time takes the site zone and warns."""
    record = read(mappings, observation(IHC, {"valueString": "3+"}, effectiveDateTime=sent), BERLIN)
    assert record.effective == expected
    assert record.effective is not None
    assert record.effective.utcoffset() == expected.utcoffset()
    if warning:
        assert warning in warning_codes(record)
    else:
        assert not {"DATETIME-NO-OFFSET", "DATETIME-COARSE"} & warning_codes(record)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def dumps(resource: Any) -> bytes:
    return json.dumps(resource).encode()


def without_id(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key != "id"}


BAD = [
    pytest.param(
        b'{"resourceType": "Observation",\n "status": }',
        InvalidJson,
        "line 2, column 12",
        id="broken-json-position",
    ),
    pytest.param(b'{"resourceType": NaN}', InvalidJson, "NaN", id="nan-is-not-json"),
    pytest.param(b"\xff\xfe{}", EncodingError, "UTF-8", id="not-utf8"),
    pytest.param(b"[1, 2]", NotFhir, "list", id="json-array"),
    pytest.param(b'{"code": "85319-2"}', NotFhir, "resourceType", id="no-resource-type"),
    pytest.param(
        dumps({"resourceType": "Obsrvation"}),
        UnsupportedResource,
        "'Obsrvation'",
        id="unknown-type",
    ),
    pytest.param(
        dumps({"resourceType": "Patient", "id": "p"}),
        UnsupportedResource,
        "Patient alone",
        id="patient-alone",
    ),
    pytest.param(
        dumps({"resourceType": "Bundle", "type": "transaction-response"}),
        UnsupportedResource,
        "transaction-response",
        id="bundle-type",
    ),
    pytest.param(
        dumps(
            observation(
                IHC,
                {"valueQuantity": {"value": 3}, "valueCodeableConcept": {"text": "3+"}},
                id="abc",
            )
        ),
        InvalidResource,
        "Observation/abc: value[x]: more than one value (valueQuantity, valueCodeableConcept)",
        id="two-values",
    ),
    pytest.param(
        dumps(observation(IHC, {"valueString": "3+"}, id="abc", dataAbsentReason={"text": "x"})),
        InvalidResource,
        "obs-6",
        id="value-and-data-absent-reason",
    ),
    pytest.param(
        dumps(observation(IHC, {"valueString": "3+"}, id="abc", effectiveDateTime="2024-13-45")),
        InvalidResource,
        "Observation/abc: effectiveDateTime:",
        id="malformed-datetime",
    ),
    pytest.param(
        dumps(observation(IHC, {"valueQuantity": {"value": "three"}}, id="abc")),
        InvalidResource,
        "Observation/abc: valueQuantity.value:",
        id="wrong-type",
    ),
    pytest.param(
        dumps(observation(IHC, {"valueString": "3+"}, id="abc", status="done")),
        InvalidResource,
        "'done' is not an R4 ObservationStatus",
        id="bad-status",
    ),
    pytest.param(
        dumps({**observation(IHC, {"valueString": "3+"}, id="abc"), "code": "85319-2"}),
        InvalidResource,
        "Observation/abc: code:",
        id="code-not-a-concept",
    ),
    pytest.param(
        dumps(without_id(observation(IHC, status="done"))),
        InvalidResource,
        "Observation[1]: status",
        id="no-id-locator",
    ),
]


@pytest.mark.parametrize(("data", "error", "message"), BAD)
def test_bad_input(
    mappings: Mappings, data: bytes, error: type[AdapterError], message: str
) -> None:
    """Bad input raises the error with the stable code and names the element."""
    with pytest.raises(error) as raised:
        fhir.to_records(data, mappings, Settings())
    assert message in str(raised.value)


def test_invalid_resource_error_names_the_element(mappings: Mappings) -> None:
    """The error's location is the FHIR element path, for OperationOutcome.issue.expression."""
    resource = observation(IHC, {"valueString": "3+"}, effectiveDateTime="yesterday")
    with pytest.raises(InvalidResource) as raised:
        fhir.to_records(dumps(resource), mappings, Settings())
    assert raised.value.location == "Observation.effectiveDateTime"
    assert raised.value.code == "FHIR-INVALID"


def test_r5_only_element_is_dropped_with_a_warning(mappings: Mappings) -> None:
    """An R5-only element does not make an Observation invalid; it is ignored and said so."""
    resource = observation(IHC, {"valueString": "3+"}, triggeredBy=[{"type": "reflex"}])
    record = read(mappings, resource)
    assert "R5-ELEMENT-IGNORED" in warning_codes(record)
    assert record.her2_ihc is not None
    assert record.her2_ihc.score is IhcScore.THREE
