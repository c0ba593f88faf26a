"""The numbers a message may be combined by, read before it is processed (``--jobs N``).

A message meets earlier results only through a number: its cases are found by (sender,
patient, number) and the owner of its ids by (sender, number) (``keys.py``). So two messages
that share no number never affect each other, and routing every message that shares a number
with another to the same worker process keeps each case, and each number's first user, in one
process, in input order.

The numbers are read cheaply here: HL7 v2 is tokenized and the fields the order and specimen
numbers come from are taken with the reader's own accessors, every one of them, in any segment
(a superset of what ``record_keys`` names, as sent, without kind or sender: routing by more
than needed only groups more). FHIR documents are read whole, by the same reader the pipeline
uses, since their numbers sit in several resources.
"""

from __future__ import annotations

from adapter.cases.keys import record_keys, untagged
from adapter.ingest import hl7v2
from adapter.model import SourceFormat
from adapter.pipeline import Context

_HL7_NUMBERS = {
    # segment: (field, component) pairs the ingest reads numbers from (hl7v2._record, _specimen)
    "ORC": ((2, 1), (3, 1)),
    "OBR": ((2, 1), (3, 1), (29, 1), (29, 2)),
    "SPM": ((2, 1), (2, 2)),
}


def route_numbers(data: bytes, message_format: SourceFormat, context: Context) -> frozenset[str]:
    """Every number the message's records may be found by; empty when it does not read (the
    pipeline then rejects it, and it meets no case)."""
    if len(data) > context.settings.max_message_bytes:
        return frozenset()  # refused by the pipeline before it is read
    try:
        if message_format is SourceFormat.HL7V2:
            return _hl7_numbers(data, context)
        return _fhir_numbers(data, context)
    except Exception:  # noqa: BLE001 - the pipeline answers it INTERNAL, one line, not a crash
        return frozenset()


def _hl7_numbers(data: bytes, context: Context) -> frozenset[str]:
    message = hl7v2.read_message(data, context.settings).message
    numbers: set[str] = set()
    for segment in message.segments:
        places = _HL7_NUMBERS.get(segment.name)
        if places is not None:
            numbers.update(segment.component(field, component) for field, component in places)
    numbers.discard("")
    return frozenset(numbers)


def _fhir_numbers(data: bytes, context: Context) -> frozenset[str]:
    from adapter.ingest import fhir

    _, orders = fhir.to_orders(data, context.mappings, context.settings, source=context.fhir_source)
    return frozenset(
        untagged(number) for order in orders for number in record_keys(order.record).numbers
    )
