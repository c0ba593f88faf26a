"""hl7apy as a strict ACK parser, for the tests that check what the adapter answers."""

from __future__ import annotations

from typing import Any

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.parser import get_message_info, parse_segments
from hl7apy.validation import Validator

HL7APY_VERSIONS = {"2.7.1": "2.7"}
"""Versions hl7apy does not know, checked against the nearest it does (the same ACK)."""


def strict_ack(ack: str | bytes) -> Any:
    """The ACK parsed as an ``ACK`` structure under strict validation; raises if it is invalid.

    The structure is named rather than read from MSH-9: before v2.3.1 MSH-9 has no third
    component, and hl7apy would look for an ``ACK_R01`` structure that no version defines.
    """
    text = ack.decode("utf-8") if isinstance(ack, bytes) else ack
    encoding, _, version = get_message_info(text)
    assert version is not None, "no MSH-12"
    version = HL7APY_VERSIONS.get(version, version)
    message = Message("ACK", version=version, validation_level=VALIDATION_LEVEL.STRICT)
    message.children = parse_segments(
        text, version, encoding, VALIDATION_LEVEL.STRICT, message.reference, True
    )
    Validator.validate(message)
    return message
