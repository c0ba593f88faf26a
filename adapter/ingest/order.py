"""What case assembly needs of one order beyond its ``AssayRecord``.

A case combines the results of several orders and messages (``adapter.cases``), so it assembles
again from the read values themselves, not from each order's assembled results; and it must know
which earlier results an order withdraws (HL7 v2 OBX-11 D/W, FHIR ``entered-in-error``).
"""

from __future__ import annotations

from dataclasses import dataclass

from adapter.ingest.assemble import ReadValue
from adapter.mapping import MappingSet
from adapter.model import AssayRecord, Provenance


@dataclass(frozen=True)
class Order:
    record: AssayRecord
    values: tuple[ReadValue, ...]  # in message order, one per ``record.observations`` item
    retracted: tuple[Provenance, ...]  # results this order withdraws (deleted, entered in error)
    mapping: MappingSet  # the sender's tables, to assemble the case with
    whole_order_retracted: bool = False  # the order's report itself is entered-in-error
