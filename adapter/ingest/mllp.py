"""MLLP framing, the one definition: ``0x0B <message> 0x1C 0x0D``.

Used to cut MLLP dumps into messages (``er7.split_messages``), by the listener
(``adapter/service/mllp.py``) and by the client (``adapter/service/mllp_client.py``).
"""

from __future__ import annotations

from typing import Final

START_BLOCK: Final = b"\x0b"
END_BLOCK: Final = b"\x1c"
CARRIAGE_RETURN: Final = b"\r"
TRAILER: Final = END_BLOCK + CARRIAGE_RETURN
"""What ends a frame: the end block and a carriage return, as a pair."""


def frame(message: bytes) -> bytes:
    """The message with MLLP framing."""
    return START_BLOCK + message + TRAILER
