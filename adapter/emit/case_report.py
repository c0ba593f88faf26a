"""The Bundle of one message when its results belong to cases (``adapter.cases``).

Entries: each Patient and Specimen, the new message's Observations, a withdrawn result as its
Observation marked ``entered-in-error``, then per case touched the case's HER2 summary Observation
and its DiagnosticReport. Those two have one id per case and list every current result of the
case, so a receiver that PUTs every Bundle in turn ends with one report of record that knows
everything received so far: no later message can replace it with one that knows less.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from adapter.config import Settings
from adapter.emit import datatypes as dt
from adapter.emit.bundle import LAB_OBSERVATION_CATEGORY, JsonDict, _Assembly
from adapter.emit.codes import DATA_ABSENT_REASON, MESSAGE_ID_SYSTEM, V2_0203
from adapter.emit.ids import RecordIds, resource_id
from adapter.emit.wording import withdrawn_note
from adapter.model import Provenance, ResultStatus

if TYPE_CHECKING:
    from adapter.cases.book import Application
    from adapter.cases.combine import CaseView


def build_bundle(
    message_id: str,
    application: Application,
    settings: Settings,
    mappings_version: str | None = None,
) -> dict[str, Any]:
    """The transaction Bundle for one message: its results, and each case it changed.

    ``mappings_version`` (``Mappings.version``) is tagged on each case's DiagnosticReport.
    """
    assembly = _Assembly(settings.codesystem_url, settings.patient_details, mappings_version)
    for order in application.orders:
        assembly.add_order(order.record, order.ids)
        assembly.record_resources.extend(
            _withdrawn(oid, provenance, order.ids.patient) for oid, provenance in order.withdrawn
        )
    reports = [
        resource for view in application.cases for resource in _case_resources(view, assembly)
    ]
    assembly.record_resources.extend(reports)
    _point_outside(assembly, reports)
    # An HL7 v2 control id of separators alone (MSH-10 "~") reads as empty.
    where = "MSH-10: Bundle.identifier" if assembly.hl7 else "Bundle.identifier"
    bundle: JsonDict = {
        "resourceType": "Bundle",
        "id": resource_id("Bundle", message_id),
        "identifier": {
            "system": MESSAGE_ID_SYSTEM,
            "value": dt.identifier_value(message_id, where),
        },
        "type": "transaction",
    }
    entries = assembly.entries()
    if entries:
        bundle["entry"] = entries
    return bundle


_SENT_IN_ERROR: Final = {"coding": [{"system": DATA_ABSENT_REASON, "code": "error"}]}
"""Why a withdrawn result (or a case with none left) has no value."""


def _point_outside(assembly: _Assembly, reports: list[JsonDict]) -> None:
    """References to what an earlier message brought: ``Type/id``, not a ``urn:uuid`` that
    must resolve inside this Bundle (FHIR transactions); the receiver holds them already.

    Only a case's resources (``reports``) can name one: a message's own Observations reference
    its own Patient and Specimen alone."""
    here = {resource["id"] for resource in assembly.record_resources}
    here.update(assembly.specimens)
    for resource in reports:
        for key in ("result", "derivedFrom", "specimen", "hasMember"):
            found = resource.get(key)
            for reference in found if isinstance(found, list) else [found] if found else []:
                target = reference["reference"].removeprefix("urn:uuid:")
                if target not in here:
                    kind = "Specimen" if key == "specimen" else "Observation"
                    reference["reference"] = f"{kind}/{target}"


def _withdrawn(observation_id: str, provenance: Provenance, patient_id: str) -> JsonDict:
    """The result as withdrawn: same id, status entered-in-error (FHIR's way to retract)."""
    return {
        "resourceType": "Observation",
        "id": observation_id,
        "status": ResultStatus.ENTERED_IN_ERROR.value,
        "category": [LAB_OBSERVATION_CATEGORY],
        "code": dt.codeable(provenance.code, f"{provenance.locator}: Observation.code")
        or {"text": provenance.locator},
        "subject": dt.reference(patient_id),
        "dataAbsentReason": _SENT_IN_ERROR,
    }


def _case_resources(view: CaseView, assembly: _Assembly) -> list[JsonDict]:
    record = view.record
    ids = RecordIds(
        patient=view.patient_resource,
        specimen=view.specimen_resource or "",
        report=view.report_id,
        summary=view.summary_id,
        observations=view.result_ids,
    )
    resources = assembly.report_resources(record, view.classification, ids, view.specimen_resource)
    summary, statuses, report = resources[0], resources[1:-1], resources[-1]
    numbers = _order_numbers(view)
    if numbers:
        report["identifier"] = numbers
    else:
        report.pop("identifier", None)
    if view.empty:
        # Every result withdrawn: the case is as if nothing had been sent, and its summary
        # carries no classification of nothing.
        summary = {
            key: summary[key]
            for key in ("resourceType", "id", "category", "code", "subject")
            if key in summary
        }
        summary["status"] = report["status"] = ResultStatus.ENTERED_IN_ERROR.value
        summary["dataAbsentReason"] = _SENT_IN_ERROR
        report["result"] = [dt.reference(view.summary_id)]
        report["conclusion"] = withdrawn_note()
        report.pop("conclusionCode", None)
        return [summary, report]
    sentence = case_sentence(view)
    if sentence:
        report["conclusion"] = f"{report['conclusion']} {sentence}"
    return [summary, *statuses, report]


def _order_numbers(view: CaseView) -> list[JsonDict]:
    """Every order's placer and filler numbers, so a receiver finds the case by any of them."""
    seen: list[tuple[str, str]] = []
    for origin in view.origins:
        for kind, number in (("PLAC", origin.placer_order), ("FILL", origin.filler_order)):
            if number and (kind, number) not in seen:
                seen.append((kind, number))
    return [
        {
            "type": {"coding": [{"system": V2_0203, "code": kind}]},
            # Checked as every identifier copied from input is (ORC/OBR-2 and -3).
            "value": dt.identifier_value(number, "DiagnosticReport.identifier"),
        }
        for kind, number in seen
    ]


def case_sentence(view: CaseView) -> str:
    """What the case combined and what changed, when more than one order or message took part."""
    sentences: list[str] = []
    orders = len(view.origins)
    if orders > 1 or view.messages > 1:
        sentences.append(
            f"This report combines {len(view.result_ids)} results of {orders} "
            f"order{'s' if orders > 1 else ''} received in {view.messages} "
            f"message{'s' if view.messages > 1 else ''} for one specimen (case version "
            f"{view.version})."
        )
    if view.removed:
        several = len(view.removed) > 1
        sentences.append(
            f"{len(view.removed)} result{'s were' if several else ' was'} withdrawn by message "
            f"{view.message_id} and no longer count{'' if several else 's'}."
        )
    if view.corrected_after_final and (view.replaced or view.removed):
        before = view.previous_category
        now = view.classification.category
        if before is not None and before is not now:
            sentences.append(
                f"Corrected after the final report by message {view.message_id}: the category "
                f"changed from {before.value} to {now.value}."
            )
        else:
            sentences.append(
                f"Corrected after the final report by message {view.message_id}; the category "
                "is unchanged."
            )
    return " ".join(sentences)
