"""Shared by the emitter tests: a Bundle for records that are each a case of their own."""

from __future__ import annotations

from typing import Any

from adapter.cases.book import Application, AppliedOrder, Arrival
from adapter.cases.combine import CaseView
from adapter.config import Settings
from adapter.emit import case_report
from adapter.emit.ids import order_identity, record_ids, resource_id
from adapter.model import AssayRecord, Classification


def build_bundle(
    message_id: str, results: list[tuple[AssayRecord, Classification]], settings: Settings
) -> dict[str, Any]:
    """The emitter's Bundle for records that are each a case of their own, classified as given.

    Case assembly is tested in tests/cases/; here the emitter meets exactly the record and the
    classification a test made.
    """
    orders: list[AppliedOrder] = []
    views: list[CaseView] = []
    for occurrence, (record, classification) in enumerate(results, start=1):
        ids = record_ids(record, 2 if (record, classification) in results[: occurrence - 1] else 1)
        case_id = resource_id("Case", *order_identity(record.origin), str(len(orders)))
        orders.append(AppliedOrder(record, ids, case_id, ()))
        specimen = record.specimen
        views.append(
            CaseView(
                case_id=case_id,
                sender="",
                patient=None,
                numbers=frozenset(),
                version=1,
                message_id=message_id,
                record=record,
                classification=classification,
                result_ids=ids.observations,
                arrivals=(Arrival(1, order_identity(record.origin), record.issued),)
                * len(ids.observations),
                origins=(record.origin,),
                patient_resource=ids.patient,
                specimen_resource=ids.specimen
                if specimen.id or specimen.type or specimen.body_sites
                else None,
                messages=1,
                added=tuple(
                    (oid, o.analyte.value)
                    for oid, o in zip(ids.observations, record.observations, strict=True)
                ),
                replaced=(),
                removed=(),
                corrected_after_final=False,
                previous_category=None,
            )
        )
    return case_report.build_bundle(
        message_id, Application(message_id, tuple(orders), tuple(views)), settings
    )
