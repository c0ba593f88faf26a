"""Deterministic resource ids: replays and corrections update, distinct things never collide."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import orjson
import pytest

from adapter.emit.ids import ID_NAMESPACE, record_ids, resource_id
from adapter.model import (
    Analyte,
    AssayRecord,
    Coding,
    Identifier,
    Interval,
    PatientRef,
    Provenance,
    ReportedObservation,
    ReportStatus,
    ResultStatus,
    Specimen,
)

RecordFactory = Callable[..., AssayRecord]


def _value(
    code: str, sub_id: str | None, value: str, system: str | None = "http://loinc.org"
) -> ReportedObservation:
    return ReportedObservation(
        analyte=Analyte.HER2_COPIES,
        provenance=Provenance(
            locator="OBX[4]", code=Coding(system=system, code=code), sub_id=sub_id
        ),
        status=ResultStatus.FINAL,
        number=Interval.point(Decimal(value)),
    )


def test_namespace_is_the_documented_constant() -> None:
    """The id namespace is uuid5(URL, "urn:her2-adapter:resource-ids"), fixed forever."""
    assert uuid.uuid5(uuid.NAMESPACE_URL, "urn:her2-adapter:resource-ids") == ID_NAMESPACE


def test_resource_id_is_a_stable_uuid5() -> None:
    """The same parts give the same version-5 UUID on every call."""
    first = resource_id("Observation", "LAB", "123")
    assert first == resource_id("Observation", "LAB", "123")
    assert uuid.UUID(first).version == 5


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param(("a|b", "c"), ("a", "b|c"), id="no-ambiguous-join"),
        pytest.param(("a", None), ("a", ""), id="none-differs-from-empty"),
        pytest.param(("a",), ("a", None), id="arity-matters"),
        pytest.param(("Patient", "x"), ("Specimen", "x"), id="type-matters"),
    ],
)
def test_resource_id_separates_distinct_parts(
    left: tuple[str | None, ...], right: tuple[str | None, ...]
) -> None:
    """Different part lists never share an id."""
    assert resource_id(*left) != resource_id(*right)


def test_correction_message_gives_the_same_ids(record_factory: RecordFactory) -> None:
    """A correction (new MSH-10, status corrected, same order numbers) keeps every id."""
    original = record_factory()
    correction = record_factory(
        origin=replace(original.origin, message_id="MSG-0002"),
        report_status=ReportStatus.CORRECTED,
    )
    assert record_ids(correction) == record_ids(original)


def test_replay_gives_the_same_ids(record_factory: RecordFactory) -> None:
    """Two equal records built separately get equal ids."""
    assert record_ids(record_factory()) == record_ids(record_factory())


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"filler_order": "FL-999"}, id="filler-order"),
        pytest.param({"set_id": "2"}, id="obr-set-id"),
        pytest.param({"sending_facility": "OTHERLAB"}, id="sending-facility"),
    ],
)
def test_a_different_order_gets_different_ids(
    record_factory: RecordFactory, change: dict[str, str]
) -> None:
    """Filler order, OBR set id and sender are all part of the order's identity."""
    base = record_factory()
    other = record_factory(origin=replace(base.origin, **change))
    assert record_ids(other).observations != record_ids(base).observations
    assert set(record_ids(other).observations).isdisjoint(record_ids(base).observations)


def test_placer_order_identifies_when_no_filler_order(record_factory: RecordFactory) -> None:
    """Without a filler order number, the placer order number keeps ids stable across messages."""
    first = record_factory(origin=replace(record_factory().origin, filler_order=None))
    second = replace(first, origin=replace(first.origin, message_id="MSG-0002"))
    other_placer = replace(first, origin=replace(first.origin, placer_order="PL-999"))
    assert record_ids(second).observations == record_ids(first).observations
    assert record_ids(other_placer).observations != record_ids(first).observations


def test_message_id_identifies_when_no_order_numbers(record_factory: RecordFactory) -> None:
    """With no order numbers at all, each message is its own order."""
    bare = replace(record_factory().origin, filler_order=None, placer_order=None)
    first = record_factory(origin=bare)
    second = record_factory(origin=replace(bare, message_id="MSG-0002"))
    assert record_ids(second).observations != record_ids(first).observations


def test_sending_application_stands_in_for_a_missing_facility(
    record_factory: RecordFactory,
) -> None:
    """MSH-3 is the sender when MSH-4 is empty, so two applications do not share ids."""
    base = replace(record_factory().origin, sending_facility=None)
    lis = record_factory(origin=base)
    other = record_factory(origin=replace(base, sending_application="OTHER"))
    assert record_ids(lis).observations != record_ids(other).observations


def test_group_index_stands_in_for_a_missing_set_id(record_factory: RecordFactory) -> None:
    """Without OBR-1, the group's position separates two groups of one order."""
    base = replace(record_factory().origin, set_id=None)
    first = record_factory(origin=base)
    second = record_factory(origin=replace(base, group_index=2))
    assert record_ids(first).observations != record_ids(second).observations


def test_sub_id_separates_observations_with_one_code(record_factory: RecordFactory) -> None:
    """OBX-4 is part of the id: two counts of one code with sub-ids 1 and 2 differ."""
    record = record_factory(
        observations=(_value("74860-8", "1", "3.1"), _value("74860-8", "2", "4.2"))
    )
    first, second = record_ids(record).observations
    assert first != second


def test_sub_id_change_changes_the_id(record_factory: RecordFactory) -> None:
    """The same value under another sub-id is another observation."""
    one = record_factory(observations=(_value("74860-8", "1", "3.1"),))
    two = record_factory(observations=(_value("74860-8", "2", "3.1"),))
    assert record_ids(one).observations != record_ids(two).observations


def test_code_system_is_part_of_the_observation_id(record_factory: RecordFactory) -> None:
    """The same code string in another coding system is another observation."""
    loinc = record_factory(observations=(_value("123", None, "1", system="http://loinc.org"),))
    local = record_factory(observations=(_value("123", None, "1", system="99LAB"),))
    assert record_ids(loinc).observations != record_ids(local).observations


def test_colliding_observations_get_distinct_ids_by_order(record_factory: RecordFactory) -> None:
    """Same code and no sub-id: ids still differ, and the first keeps the id it has alone."""
    alone = record_factory(observations=(_value("74860-8", None, "3.1"),))
    twice = record_factory(
        observations=(_value("74860-8", None, "3.1"), _value("74860-8", None, "3.9"))
    )
    first, second = record_ids(twice).observations
    assert first != second
    assert first == record_ids(alone).observations[0]
    assert (
        record_ids(twice).observations
        == record_ids(record_factory(observations=twice.observations)).observations
    )


def test_observation_ids_follow_record_order(record_factory: RecordFactory) -> None:
    """One id per reported observation, in the record's order."""
    record = record_factory()
    ids = record_ids(record).observations
    assert len(ids) == len(record.observations)
    assert len(set(ids)) == len(ids)


def test_repeated_order_in_one_message_is_told_apart(record_factory: RecordFactory) -> None:
    """A second group with the same order identity gets its own ids."""
    record = record_factory()
    assert record_ids(record, 2).observations != record_ids(record, 1).observations
    assert record_ids(record, 2).patient == record_ids(record, 1).patient


def test_patient_id_follows_sender_and_first_identifier(record_factory: RecordFactory) -> None:
    """One patient across orders; the same MRN from another sender is another patient."""
    base = record_factory()
    other_order = record_factory(origin=replace(base.origin, filler_order="FL-9"))
    other_sender = record_factory(origin=replace(base.origin, sending_facility="OTHERLAB"))
    other_mrn = record_factory(patient=PatientRef(identifiers=(Identifier(value="MRN-43"),)))
    assert record_ids(other_order).patient == record_ids(base).patient
    assert record_ids(other_sender).patient != record_ids(base).patient
    assert record_ids(other_mrn).patient != record_ids(base).patient


def test_patient_without_identifiers_uses_reference_then_order(
    record_factory: RecordFactory,
) -> None:
    """No identifier: the FHIR reference names the patient; with nothing, the order does."""
    by_reference = record_factory(patient=PatientRef(fhir_reference="Patient/123"))
    same_reference = record_factory(
        patient=PatientRef(fhir_reference="Patient/123"),
        origin=replace(by_reference.origin, filler_order="FL-9"),
    )
    anonymous = record_factory(patient=PatientRef())
    anonymous_other_order = record_factory(
        patient=PatientRef(), origin=replace(anonymous.origin, filler_order="FL-9")
    )
    assert record_ids(by_reference).patient == record_ids(same_reference).patient
    assert record_ids(anonymous).patient != record_ids(anonymous_other_order).patient


def test_specimen_id_follows_specimen_identifier(record_factory: RecordFactory) -> None:
    """The same specimen in two orders is one Specimen; without an id, each order has its own."""
    base = record_factory()
    other_order = record_factory(origin=replace(base.origin, filler_order="FL-9"))
    assert record_ids(other_order).specimen == record_ids(base).specimen
    no_id = record_factory(specimen=Specimen())
    no_id_other_order = record_factory(
        specimen=Specimen(), origin=replace(base.origin, filler_order="FL-9")
    )
    assert record_ids(no_id).specimen != record_ids(no_id_other_order).specimen


def test_all_ids_of_a_record_are_distinct(record_factory: RecordFactory) -> None:
    """Patient, Specimen and observations never share an id (reports are per case)."""
    ids = record_ids(record_factory())
    every = [ids.patient, ids.specimen, *ids.observations]
    assert len(set(every)) == len(every)


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param(("Observation", "LAB", "filler", "SP1", "1"), id="plain"),
        pytest.param(("Patient", None, "identifier", None, "123"), id="none-parts"),
        pytest.param((), id="no-parts"),
        pytest.param(("é", "中文", "😀", '"quoted"', "back\\slash", "\x00"), id="non-ascii"),
    ],
)
def test_resource_id_is_uuid5_of_the_json_parts(parts: tuple[str | None, ...]) -> None:
    """The hand-made UUID v5 is byte for byte uuid.uuid5 over the JSON array of the parts."""
    expected = uuid.uuid5(ID_NAMESPACE, orjson.dumps(parts).decode())
    assert resource_id(*parts) == str(expected)


def test_another_patient_on_the_same_order_gets_its_own_ids(
    record_factory: RecordFactory,
) -> None:
    """A patient qualifier (issue 16) changes every order-derived id; none means the plain id."""
    record = record_factory(specimen=Specimen(id="S1"))
    plain = record_ids(record)
    other = record_ids(record, patient="identifier|x|2", specimen_patient="identifier|x|2")
    assert plain == record_ids(record, patient=None)
    assert set(other.observations).isdisjoint(plain.observations)
    assert other.specimen != plain.specimen
