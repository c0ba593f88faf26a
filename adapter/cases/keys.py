"""Which case a record belongs to: the sender, the patient and the specimen (docs/cases.md).

Everything here is a function of one record. Which existing case a record joins also depends on
the cases already known; that choice is made in ``book.py`` from the numbers named here.

Numbers are tagged by who assigned them, so that a filler's number never matches a placer's:
``filler:SP24-1``, ``placer:PLC-7``, ``specimen:SP24-1-A1``. An order's OBR-29 parent numbers
are the parent's own filler / placer numbers, so a reflex or reference-lab order that names its
parent shares the parent's accession.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from adapter.emit.ids import sender_of
from adapter.model import AssayRecord, Origin


@dataclass(frozen=True, slots=True)
class RecordKeys:
    sender: str
    patient: str | None  # None: no identifier, so the record is a case of its own
    specimen: str | None  # "specimen:<id>" from SPM-2 / the FHIR Specimen, when sent
    accessions: frozenset[str]  # the order's own and its parent's filler / placer numbers
    root: str | None  # the accession the case is named after: parent first, filler first

    @property
    def numbers(self) -> frozenset[str]:
        """Every number this record can be found by."""
        return self.accessions | ({self.specimen} if self.specimen else frozenset())


def untagged(number: str) -> str:
    """A number as sent, without its kind (``filler:SP24-1`` -> ``SP24-1``)."""
    return number.partition(":")[2]


def patient_key(record: AssayRecord) -> str | None:
    """The first patient identifier (system and value), else the FHIR reference as sent."""
    patient = record.patient
    if patient.identifiers:
        first = patient.identifiers[0]
        return f"identifier|{first.system or ''}|{first.value}"
    if patient.fhir_reference:
        return f"reference|{patient.fhir_reference}"
    return None


def order_number(origin: Origin) -> str | None:
    """The number the order's resource ids are made from (``emit/ids.order_identity``)."""
    if origin.filler_order:
        return f"filler:{origin.filler_order}"
    if origin.placer_order:
        return f"placer:{origin.placer_order}"
    return None


def record_keys(record: AssayRecord) -> RecordKeys:
    origin = record.origin
    tagged = (
        ("filler", origin.parent_filler),
        ("filler", origin.filler_order),
        ("placer", origin.parent_placer),
        ("placer", origin.placer_order),
    )
    accessions = [f"{kind}:{number}" for kind, number in tagged if number]
    specimen = f"specimen:{record.specimen.id}" if record.specimen.id else None
    return RecordKeys(
        sender=sender_of(origin),
        patient=patient_key(record),
        specimen=specimen,
        accessions=frozenset(accessions),
        root=accessions[0] if accessions else specimen,
    )


Lookup = frozenset[tuple[str, str, str]]
"""(sender, patient, number): what the cases a message may touch are found by.

Only a patient's own cases can take its results; another patient's use of a number matters only
for ids (who owns it), and owners are looked up by (sender, number).
"""


def lookup_of(keys_of: Iterable[RecordKeys]) -> Lookup:
    return frozenset(
        (keys.sender, keys.patient, number)
        for keys in keys_of
        if keys.patient is not None
        for number in keys.numbers
    )
