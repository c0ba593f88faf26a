"""Output: the FHIR transaction Bundle for a message and the HL7 v2 ACK that answers it.

``build_bundle`` and ``dumps`` are the hot path (plain dicts, orjson); ``validate_bundle`` checks a
Bundle with fhir.resources and is imported lazily because that library is slow to load.
"""

from __future__ import annotations

from adapter.emit.ack import (
    AckHeader,
    AckPlan,
    build_ack,
    fallback_ack_header,
    plan,
)
from adapter.emit.bundle import dumps
from adapter.emit.case_report import build_bundle
from adapter.emit.ids import resource_id
from adapter.emit.validate import validate_bundle

__all__ = [
    "AckHeader",
    "AckPlan",
    "build_ack",
    "build_bundle",
    "dumps",
    "fallback_ack_header",
    "plan",
    "resource_id",
    "validate_bundle",
]
