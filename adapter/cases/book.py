"""The case book: every case known so far, and what one message does to them.

``CaseBook.apply`` is the one place where a message's orders meet earlier results. It is pure
(no clock, no I/O): the service builds a book from the messages its store says made up the cases
concerned, ``convert`` keeps one book for a run, and replay does what either did, in the same
order, so all three give the same cases.

Update semantics (HL7 v2 2.5.1 ch. 7, OBX-11; FHIR R4 Observation.status): a result is named by
its resource id, which is made from the order identity, OBX-3 and OBX-4 (or the incoming FHIR
Observation id), so "the same result" means what it means to a receiver that PUTs it.

- a result with a new id is added; one with a known id replaces it, whatever its status (P, then
  F, then C), in the place the first one had;
- OBX-11 D / W and ``entered-in-error`` withdraw the result they name, and a DiagnosticReport
  ``entered-in-error`` withdraws every result of its order: the case is then as if they had never
  been sent;
- results a message does not repeat are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from adapter.cases.combine import CaseView, combine
from adapter.cases.keys import Lookup, RecordKeys, lookup_of, order_number, record_keys
from adapter.emit.ids import RecordIds, order_identity, record_ids, resource_id, withdrawn_id
from adapter.ingest.assemble import ReadValue
from adapter.ingest.order import Order
from adapter.mapping import MappingSet
from adapter.model import AssayRecord, IngestWarning, Provenance, ReportStatus

Owners = dict[tuple[str, str], str]
"""(sender, number) -> the patient key of the first patient whose results used the number."""

_NO_PATIENT = ""


@dataclass(frozen=True, slots=True)
class Arrival:
    """When a result first came into its case: the case version (its timeline's line) and the
    order then, with that order's issue time. A replacement keeps the first arrival."""

    version: int
    order: tuple[str, ...]
    issued: datetime | None  # OBR-22 / DiagnosticReport.issued of the order as it came


@dataclass(frozen=True, slots=True)
class CaseResult:
    observation_id: str
    value: ReadValue
    order: tuple[str, ...]  # the order identity that sent it
    message_id: str
    arrival: Arrival


@dataclass(slots=True)
class OrderState:
    record: AssayRecord  # the latest record of this order: status, times, notes
    mapping: MappingSet


Changed = tuple[tuple[str, str], ...]
"""(observation id, analyte) pairs: what a message did, for the timeline."""


@dataclass(frozen=True, slots=True)
class Change:
    """What one message did to one case."""

    added: Changed = ()
    replaced: Changed = ()
    removed: Changed = ()


@dataclass(slots=True)
class Case:
    case_id: str
    sender: str
    patient: str | None
    specimen: str | None
    anchor: AssayRecord  # the first record of the case: its order and patient, kept for good
    patient_resource: str
    specimen_resource: str | None = None
    numbers: set[str] = field(default_factory=set)
    results: dict[str, CaseResult] = field(default_factory=dict)
    orders: dict[tuple[str, ...], OrderState] = field(default_factory=dict)
    version: int = 0
    was_final: bool = False
    corrected_after_final: bool = False
    last_view: CaseView | None = None
    warnings: list[IngestWarning] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AppliedOrder:
    """One order of the message, with the ids its resources get and the case it joined."""

    record: AssayRecord
    ids: RecordIds
    case_id: str
    withdrawn: tuple[tuple[str, Provenance], ...]  # (observation id, what named it)


@dataclass(frozen=True, slots=True)
class Application:
    """What one message did: its orders, and each case it touched as it now stands."""

    message_id: str
    orders: tuple[AppliedOrder, ...]
    cases: tuple[CaseView, ...]  # in order of first touch
    lookup: Lookup = frozenset()  # (sender, number) of every order
    claims: tuple[tuple[tuple[str, str], str], ...] = ()  # numbers this message used first
    owner_keys: frozenset[tuple[str, str]] = frozenset()  # numbers whose owner made its ids


class CaseBook:
    """Cases by id, found by (sender, number); ``owners`` may be seeded from a store."""

    def __init__(self, owners: Mapping[tuple[str, str], str] | None = None) -> None:
        self.cases: dict[str, Case] = {}
        self._prior_owners: Mapping[tuple[str, str], str] = {} if owners is None else owners
        self.claims: Owners = {}  # numbers this book saw first: new owners, for the caller to keep
        # (sender, patient, number) -> ids of that patient's cases holding it
        self._by_number: dict[tuple[str, str | None, str], list[str]] = {}
        self._consulted: set[tuple[str, str]] = set()

    def apply(
        self,
        message_id: str,
        orders: Sequence[Order],
        keys_of: Sequence[RecordKeys] | None = None,
        lookup: Lookup | None = None,
    ) -> Application:
        """``keys_of``, ``lookup``: each order's ``record_keys`` and their ``lookup_of``, when
        the caller has them already."""
        touched: dict[str, Change] = {}
        applied: list[AppliedOrder] = []
        claimed_before = set(self.claims)
        self._consulted = set()
        occurrences: dict[tuple[str, ...], int] = {}
        all_keys = keys_of if keys_of is not None else [record_keys(o.record) for o in orders]
        for order, keys in zip(orders, all_keys, strict=True):
            record = order.record
            plain = order_identity(record.origin)
            occurrences[plain] = occurrences.get(plain, 0) + 1
            qualifier = self._qualifier(keys, order_number(record.origin))
            specimen_qualifier = self._qualifier(keys, keys.specimen)
            ids = record_ids(
                record,
                occurrences[plain],
                patient=qualifier,
                specimen_patient=specimen_qualifier,
            )
            identity = order_identity(record.origin, occurrences[plain], qualifier)
            case = self._resolve(keys, record, ids.patient)
            specimen = record.specimen
            if case.specimen_resource is None and (
                specimen.id or specimen.type or specimen.body_sites
            ):
                case.specimen_resource = ids.specimen  # as emit writes it (never an empty one)
            change = touched.get(case.case_id, Change())
            withdrawn = tuple((withdrawn_id(p, identity), p) for p in order.retracted)
            change = _merge(change, self._update(case, order, ids, identity, message_id, withdrawn))
            touched[case.case_id] = change
            self._index(case, keys)
            applied.append(AppliedOrder(record, ids, case.case_id, withdrawn))
        views = tuple(self._settle(self.cases[cid], message_id, ch) for cid, ch in touched.items())
        claims = tuple((k, p) for k, p in self.claims.items() if k not in claimed_before)
        return Application(
            message_id,
            tuple(applied),
            views,
            lookup_of(all_keys) if lookup is None else lookup,
            claims,
            frozenset(self._consulted),
        )

    # -- ids: whose number is it -------------------------------------------------------------

    def _qualifier(self, keys: RecordKeys, number: str | None) -> str | None:
        """None (plain ids) for the number's first patient; the patient key for any other."""
        if number is None:
            return None
        patient = keys.patient if keys.patient is not None else _NO_PATIENT
        key = (keys.sender, number)
        self._consulted.add(key)
        owner = self._prior_owners.get(key)
        if owner is None:
            owner = self.claims.get(key)
        if owner is None:
            owner = self.claims[key] = patient
        return None if owner == patient else patient

    # -- which case ----------------------------------------------------------------------------

    def _resolve(self, keys: RecordKeys, record: AssayRecord, patient_resource: str) -> Case:
        def create(creation: tuple[str, ...], specimen: str | None) -> Case:
            case_id = _case_id(keys, creation)
            case = self.cases.get(case_id)
            if case is None:
                case = Case(case_id, keys.sender, keys.patient, specimen, record, patient_resource)
                self.cases[case_id] = case
            return case

        if keys.patient is None or keys.root is None:
            # Nothing tells this patient (or this specimen) apart from another: a case of its own.
            origin = record.origin
            return create(("message", origin.message_id, str(origin.group_index)), None)
        candidates = self._cases_by(keys)
        if keys.specimen is not None:
            same = [case for case in candidates if case.specimen == keys.specimen]
            if same:
                return same[0]
            open_cases = [
                case
                for case in candidates
                if case.specimen is None and case.numbers & keys.accessions
            ]
            if len(open_cases) == 1:
                case = open_cases[0]
                case.specimen = keys.specimen  # the accession's case learns its specimen
                return case
            return create(("specimen", keys.specimen), keys.specimen)
        by_accession = [case for case in candidates if case.numbers & keys.accessions]
        if len(by_accession) == 1:
            return by_accession[0]
        if not by_accession:
            return create(("accession", keys.root), None)
        # Several specimens under this accession, and the message names none: never guess.
        unassigned = ("accession", keys.root, "specimen-not-named")
        wanted = _case_id(keys, unassigned)
        for case in by_accession:
            if case.case_id == wanted:
                return case
        case = create(unassigned, None)
        case.warnings.append(
            IngestWarning(
                code="CASE-SPECIMEN-NOT-NAMED",
                message="the accession holds several specimens and the order names none: "
                "its results form a case of their own",
            )
        )
        return case

    def _cases_by(self, keys: RecordKeys) -> list[Case]:
        """This patient's cases holding any of the record's numbers, oldest first."""
        found: dict[str, Case] = {}
        for number in sorted(keys.numbers):
            for case_id in self._by_number.get((keys.sender, keys.patient, number), ()):
                found.setdefault(case_id, self.cases[case_id])
        return list(found.values())

    def _index(self, case: Case, keys: RecordKeys) -> None:
        for number in sorted(keys.numbers - case.numbers):
            key = (keys.sender, keys.patient, number)
            self._by_number.setdefault(key, []).append(case.case_id)
        case.numbers |= keys.numbers

    # -- results ---------------------------------------------------------------------------------

    def _update(
        self,
        case: Case,
        order: Order,
        ids: RecordIds,
        identity: tuple[str, ...],
        message_id: str,
        withdrawn: tuple[tuple[str, Provenance], ...],
    ) -> Change:
        added: list[tuple[str, str]] = []
        replaced: list[tuple[str, str]] = []
        removed: list[tuple[str, str]] = []
        if order.whole_order_retracted:
            for oid in [oid for oid, r in case.results.items() if r.order == identity]:
                removed.append((oid, case.results.pop(oid).value.analyte.value))
            case.orders.pop(identity, None)
            return Change((), (), tuple(removed))
        # This message makes the case's next version (``_settle``).
        arrival = Arrival(case.version + 1, identity, order.record.issued)
        for value, oid in zip(order.values, ids.observations, strict=True):
            earlier = case.results.get(oid)
            if earlier is not None and not _same_result(earlier.value, value):
                replaced.append((oid, value.analyte.value))
            elif earlier is None:
                added.append((oid, value.analyte.value))
            first = arrival if earlier is None else earlier.arrival
            case.results[oid] = CaseResult(oid, value, identity, message_id, first)
        for oid, _ in withdrawn:
            gone = case.results.pop(oid, None)
            if gone is not None:
                removed.append((oid, gone.value.analyte.value))
        case.orders[identity] = OrderState(order.record, order.mapping)
        return Change(tuple(added), tuple(replaced), tuple(removed))

    def _settle(self, case: Case, message_id: str, change: Change) -> CaseView:
        case.version += 1
        if case.was_final and (change.replaced or change.removed):
            case.corrected_after_final = True
        view = combine(case, message_id, change)
        if view.record.report_status in _FINAL_LIKE:
            case.was_final = True
        case.last_view = view
        return view


_FINAL_LIKE = frozenset({ReportStatus.FINAL, ReportStatus.CORRECTED, ReportStatus.AMENDED})


def _case_id(keys: RecordKeys, creation: tuple[str, ...]) -> str:
    return resource_id("Case", keys.sender, keys.patient, *creation)


def _same_result(earlier: ReadValue, later: ReadValue) -> bool:
    """The same value and status, wherever in its message it was sent (a repeat, not a change)."""
    a, b = earlier.observation, later.observation
    return (a.status, a.number, a.ratio, a.text, a.coding, a.unit, a.notes) == (
        b.status,
        b.number,
        b.ratio,
        b.text,
        b.coding,
        b.unit,
        b.notes,
    )


def _merge(first: Change, second: Change) -> Change:
    """Two orders of one message touching one case: one change."""
    return Change(
        first.added + second.added,
        first.replaced + second.replaced,
        first.removed + second.removed,
    )
