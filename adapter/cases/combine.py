"""A case's current results as one record, classified as a whole (spec section 9).

The results of every order of the case are assembled again together (``ingest.assemble``, the
same code one order goes through), so an IHC 2+ from one message and the ISH count of another
meet the guideline's rules for groups 2-5 exactly as if one order had carried both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from adapter.classify import classify
from adapter.emit.ids import resource_id
from adapter.ingest.assemble import assemble
from adapter.model import (
    AssayRecord,
    Category,
    Classification,
    Coding,
    IngestWarning,
    Origin,
    Procedure,
    ReportStatus,
    Specimen,
    Tissue,
)

if TYPE_CHECKING:
    from adapter.cases.book import Arrival, Case, Change

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class CaseView:
    """One case as it stands after a message: what the case report is built from."""

    case_id: str
    sender: str
    patient: str | None  # the patient key (cases/keys.py), None for a case of one order
    numbers: frozenset[str]  # every number the case is found by
    version: int
    message_id: str  # the message that brought this version
    record: AssayRecord  # every current result of the case, as one record
    classification: Classification
    result_ids: tuple[str, ...]  # observation ids, one per ``record.observations`` item
    arrivals: tuple[Arrival, ...]  # when each came into the case, one per ``result_ids`` item
    origins: tuple[Origin, ...]  # every current order, in the order first received
    patient_resource: str
    specimen_resource: str | None
    messages: int  # how many messages brought the current results
    added: tuple[tuple[str, str], ...]  # (observation id, analyte)
    replaced: tuple[tuple[str, str], ...]
    removed: tuple[tuple[str, str], ...]
    corrected_after_final: bool
    previous_category: Category | None  # before this message, if the case existed

    @property
    def empty(self) -> bool:
        """Every result was withdrawn: the case is as if nothing had been sent."""
        return not self.result_ids

    @property
    def report_id(self) -> str:
        return case_report_id(self.case_id)

    @property
    def summary_id(self) -> str:
        return case_summary_id(self.case_id)


def case_report_id(case_id: str) -> str:
    return resource_id("DiagnosticReport", "case", case_id)


def case_summary_id(case_id: str) -> str:
    return resource_id("Observation", "case", case_id, "her2-summary")


def combine(case: Case, message_id: str, change: Change) -> CaseView:
    results = list(case.results.values())
    # An order all of whose results were withdrawn is no longer part of the case.
    current = {result.order for result in results}
    records = [state.record for identity, state in case.orders.items() if identity in current]
    # A case of one order, all of it current, is that order's record (ingest assembled it).
    record = records[0] if _whole_order(case, records) else _combined(case, records, message_id)
    previous = case.last_view.classification.category if case.last_view is not None else None
    return CaseView(
        case_id=case.case_id,
        sender=case.sender,
        patient=case.patient,
        numbers=frozenset(case.numbers),
        version=case.version,
        message_id=message_id,
        record=record,
        classification=classify(record),
        result_ids=tuple(result.observation_id for result in results),
        arrivals=tuple(result.arrival for result in results),
        origins=tuple(r.origin for r in records),
        patient_resource=case.patient_resource,
        specimen_resource=case.specimen_resource,
        messages=len({result.message_id for result in results}),
        added=change.added,
        replaced=change.replaced,
        removed=change.removed,
        corrected_after_final=case.corrected_after_final,
        previous_category=previous,
    )


def _whole_order(case: Case, records: list[AssayRecord]) -> bool:
    if len(records) != 1 or case.warnings or case.corrected_after_final:
        return False
    observations = records[0].observations
    current = [result.value.observation for result in case.results.values()]
    return len(current) == len(observations) and all(
        mine is theirs for mine, theirs in zip(current, observations, strict=True)
    )


def _combined(case: Case, records: list[AssayRecord], message_id: str) -> AssayRecord:
    """Every current result of the case assembled together, as one order would have been."""
    current = {result.order for result in case.results.values()}
    states = [state for identity, state in case.orders.items() if identity in current]
    values = [result.value for result in case.results.values()]
    notes = _unique(note for record in records for note in record.notes)
    warnings: list[IngestWarning] = list(case.warnings)
    assembled = assemble(values, states[-1].mapping, notes) if states else None
    if assembled is not None:
        warnings.extend(assembled.warnings)
    tissue, tissue_warnings = _tissue(records)
    warnings.extend(tissue_warnings)
    # With every order withdrawn, the first record still names the case's order and patient.
    first = records[0] if records else case.anchor
    return AssayRecord(
        origin=replace(first.origin, message_id=message_id),
        patient=records[-1].patient if records else first.patient,
        specimen=_specimen(records, tissue),
        report_status=_status(records, corrected=case.corrected_after_final),
        effective=min((r.effective for r in records if r.effective), default=None),
        issued=max((r.issued for r in records if r.issued), default=None),
        her2_ihc=assembled.her2_ihc if assembled else None,
        her2_ish=assembled.her2_ish if assembled else None,
        er=assembled.er if assembled else None,
        pgr=assembled.pgr if assembled else None,
        lab_interpretation=assembled.lab_interpretation if assembled else None,
        observations=tuple(value.observation for value in values),
        unused=_unique(u for r in records for u in r.unused),
        notes=notes,
        warnings=_unique(w for w in (*(w for r in records for w in r.warnings), *warnings)),
    )


def _unique(items: Iterable[_T]) -> tuple[_T, ...]:
    return tuple(dict.fromkeys(items))


def _tissue(records: list[AssayRecord]) -> tuple[Tissue, list[IngestWarning]]:
    """One tissue named by the orders; several give ``unknown`` (never picked between)."""
    named = {r.specimen.tissue for r in records} - {Tissue.UNKNOWN}
    if len(named) > 1:
        shown = ", ".join(sorted(t.value for t in named))
        return Tissue.UNKNOWN, [
            IngestWarning(
                code="CONFLICTING-TISSUE", message=f"the orders of this case name {shown} tissue"
            )
        ]
    return (named.pop() if named else Tissue.UNKNOWN), []


def _specimen(records: list[AssayRecord], tissue: Tissue) -> Specimen:
    specimens = [r.specimen for r in records]
    sites: list[Coding] = []
    for specimen in specimens:
        sites.extend(site for site in specimen.body_sites if site not in sites)
    procedures = {s.procedure for s in specimens} - {Procedure.UNKNOWN}
    return Specimen(
        id=next((s.id for s in specimens if s.id), None),
        type=next((s.type for s in specimens if s.type), None),
        body_sites=tuple(sites),
        tissue=tissue,
        procedure=procedures.pop() if len(procedures) == 1 else Procedure.UNKNOWN,
    )


_CORRECTING = frozenset({ReportStatus.CORRECTED, ReportStatus.AMENDED})


def _status(records: list[AssayRecord], *, corrected: bool) -> ReportStatus:
    """Final when every order is; corrected once a final case changed; else preliminary."""
    if not records:
        return ReportStatus.ENTERED_IN_ERROR
    if len(records) == 1 and not corrected:
        return records[0].report_status
    statuses = {r.report_status for r in records}
    if corrected or ReportStatus.CORRECTED in statuses:
        return ReportStatus.CORRECTED
    if ReportStatus.AMENDED in statuses and statuses <= _CORRECTING | {ReportStatus.FINAL}:
        return ReportStatus.AMENDED
    if statuses <= _CORRECTING | {ReportStatus.FINAL}:
        return ReportStatus.FINAL
    if statuses == {ReportStatus.UNKNOWN}:
        return ReportStatus.UNKNOWN
    return ReportStatus.PRELIMINARY
