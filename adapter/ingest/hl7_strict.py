"""``--strict``: hold a message to its declared version's structure, using hl7apy.

Off the hot path on purpose (hl7apy's parse costs milliseconds): the fast tokenizer reads every
message; this check only runs when asked for. hl7apy is imported here and nowhere else in
``adapter/``, so its untyped API and its exceptions stay behind this one function.
"""

from __future__ import annotations

from adapter.errors import MalformedMessage


def check_structure(text: str) -> None:
    """Raise MalformedMessage naming what hl7apy found wrong with the message structure."""
    from hl7apy import exceptions
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    try:
        message = parse_message(
            text.replace("\n", "\r"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True
        )
        message.validate()
    except exceptions.HL7apyException as error:
        raise MalformedMessage(
            f"structure check failed: {type(error).__name__}: {error}", location="message"
        ) from error
    except (ValueError, KeyError, IndexError, AttributeError) as error:
        # hl7apy raises plain exceptions on some truncated or oddly separated input.
        raise MalformedMessage(
            f"structure check failed: {type(error).__name__}", location="message"
        ) from error
