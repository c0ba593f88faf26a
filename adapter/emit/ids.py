"""Deterministic FHIR resource ids, so that a replay or a correction updates instead of duplicating.

Every id is a UUID version 5 over :data:`ID_NAMESPACE` and the JSON array of its parts. Nothing is
random and nothing depends on the clock.

Identity of an order (the base of every id of one record): the sender (MSH-4 sending facility,
else MSH-3 sending application), the filler order number, else the placer order number, else the
message id, and the OBR set id (else the group's position in the message). A correction message
has a new MSH-10 but the same order numbers, so it produces the same ids.

- Observation: the order + OBX-3 (coding system and code, as sent) + OBX-4 sub-id. Two
  observations of one record that still collide (same code, no sub-id) are told apart by their
  order of appearance: the second gets ``#2``, the third ``#3``; the first keeps the plain id so
  that adding a later duplicate never moves an existing id.
- Summary Observation and DiagnosticReport: one per case, not per order (``cases/combine.py``):
  ``DiagnosticReport`` + ``case`` + the case id, and the same + ``her2-summary``.
- Patient: the sender + the first patient identifier (system and value); else the sender + the
  FHIR reference as sent; else the order (a patient known only through this order).
- Specimen: the sender + the specimen id; else the order.

Identity includes the patient. The first patient whose results use an order number (or a
specimen id) of a sender keeps the ids above, so every id already stored by a receiver stays
what it was; a later message of *another* patient that reuses the number gets ids qualified by
its patient (``patient=`` below). Who came first is case state (``adapter.cases``): the
service's store remembers it, ``convert`` within one run, and a replay in the order received
assigns it the same way.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Final

import orjson

from adapter.model import AssayRecord, Origin, Provenance, ReportedObservation

ID_NAMESPACE: Final = uuid.UUID("5b159f2c-fbae-51e6-8b23-a36ab277713d")
"""Namespace of every id the adapter emits.

Made once as ``uuid5(NAMESPACE_URL, "urn:her2-adapter:resource-ids")``; fixed forever, since
changing it changes every id receivers already store.
"""


_NAMESPACE_BYTES: Final = ID_NAMESPACE.bytes


def resource_id(*parts: str | None) -> str:
    """A UUID v5 over the parts; ``None`` and ``""`` differ, and no join can be ambiguous."""
    # uuid.uuid5 spelled out (SHA-1 of namespace + name, version and variant bits set): the
    # same bytes at a fraction of the cost, since every Bundle needs a dozen ids.
    # The version (5) and variant (10xx) bits are set on the hex digits themselves.
    text = hashlib.sha1(_NAMESPACE_BYTES + orjson.dumps(parts)).hexdigest()
    return f"{text[:8]}-{text[8:12]}-5{text[13:16]}-{_VARIANT[text[16]]}{text[17:20]}-{text[20:32]}"


_VARIANT: Final = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}
"""The RFC 4122 variant in the first hex digit of the fourth group: its top bits set to 10."""


def sender_of(origin: Origin) -> str:
    return origin.sending_facility or origin.sending_application or ""


def order_identity(
    origin: Origin, occurrence: int = 1, patient: str | None = None
) -> tuple[str, ...]:
    """The parts that name one order; ``occurrence`` > 1 separates repeated groups in a message.

    ``patient`` qualifies the order of a patient who is not the first to use its number.
    """
    if origin.filler_order:
        number = ("filler", origin.filler_order)
    elif origin.placer_order:
        number = ("placer", origin.placer_order)
    else:
        number = ("message", origin.message_id)
    group = origin.set_id or str(origin.group_index)
    repeat = (f"#{occurrence}",) if occurrence > 1 else ()
    qualifier = ("patient", patient) if patient is not None else ()
    return (sender_of(origin), *number, group, *repeat, *qualifier)


_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
"""FHIR R4 id syntax; anything else (a component locator) is not an id to keep."""


@dataclass(frozen=True, slots=True)
class RecordIds:
    """Every id one record's resources get (a case's report and summary: only a case's)."""

    patient: str
    specimen: str
    observations: tuple[str, ...]  # one per ``record.observations`` item, same order
    report: str = ""
    summary: str = ""


def record_ids(
    record: AssayRecord,
    occurrence: int = 1,
    *,
    patient: str | None = None,
    specimen_patient: str | None = None,
) -> RecordIds:
    """``patient`` / ``specimen_patient``: the qualifier when another patient owns the number."""
    order = order_identity(record.origin, occurrence, patient)
    return RecordIds(
        patient=_patient_id(record),
        specimen=_specimen_id(record, order, specimen_patient),
        observations=_observation_ids(record.observations, order),
    )


def _observation_ids(
    observations: tuple[ReportedObservation, ...], order: tuple[str, ...]
) -> tuple[str, ...]:
    seen: Counter[tuple[str | None, ...]] = Counter()
    ids: list[str] = []
    kept = {incoming_id(o) for o in observations} - {None}
    for observation in observations:
        incoming = incoming_id(observation)
        if incoming is not None:
            ids.append(incoming)  # FHIR input keeps its Observation ids
            continue
        key = _observation_key(observation)
        seen[key] += 1
        repeat = (f"#{seen[key]}",) if seen[key] > 1 else ()
        derived = resource_id("Observation", *order, *key, *repeat)
        ids.append(derived if derived not in kept else resource_id(derived, "derived"))
    return tuple(ids)


def incoming_id(observation: ReportedObservation) -> str | None:
    """The id of an incoming FHIR Observation that became exactly one reported value.

    ``Observation/abc`` keeps ``abc``; a component (``Observation/abc.component[1]``) or a
    contained resource is one value of several and gets a derived id instead.
    """
    locator = observation.provenance.locator
    if not locator.startswith("Observation/"):
        return None
    candidate = locator.removeprefix("Observation/")
    return candidate if _FHIR_ID.fullmatch(candidate) else None


def _observation_key(observation: ReportedObservation) -> tuple[str | None, ...]:
    code = observation.provenance.code
    sub_id = observation.provenance.sub_id
    if code is not None and code.code:
        return ("code", code.system, code.code, sub_id)
    # no code sent (rare FHIR input): the analyte is the only stable name of the value
    return ("analyte", observation.analyte.value, sub_id)


def _patient_id(record: AssayRecord) -> str:
    sender = sender_of(record.origin)
    patient = record.patient
    if patient.identifiers:
        first = patient.identifiers[0]
        return resource_id("Patient", sender, "identifier", first.system, first.value)
    if patient.fhir_reference:
        return resource_id("Patient", sender, "reference", patient.fhir_reference)
    return resource_id("Patient", "order", *order_identity(record.origin))


def _specimen_id(record: AssayRecord, order: tuple[str, ...], patient: str | None) -> str:
    if record.specimen.id:
        qualifier = ("patient", patient) if patient is not None else ()
        return resource_id(
            "Specimen", sender_of(record.origin), "specimen", record.specimen.id, *qualifier
        )
    return resource_id("Specimen", "order", *order)


def withdrawn_id(provenance: Provenance, order: tuple[str, ...]) -> str:
    """The id a result withdrawn by ``provenance`` had when it was sent (same rules as above).

    A withdrawn duplicate (same code and sub-id twice in one order) cannot be told apart: the
    first one's id is named.
    """
    locator = provenance.locator
    if locator.startswith("Observation/"):
        candidate = locator.removeprefix("Observation/")
        if _FHIR_ID.fullmatch(candidate):
            return candidate
    code = provenance.code
    if code is not None and code.code:
        key: tuple[str | None, ...] = ("code", code.system, code.code, provenance.sub_id)
    else:
        key = ("locator", locator)
    return resource_id("Observation", *order, *key)
