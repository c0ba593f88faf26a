"""Cases: every HER2 / ER / PgR result of one specimen of one patient of one sender.

Results arrive over several orders and messages (an IHC now, the reflex ISH days later, from a
reference lab); the guideline's rules apply to the whole case each time (spec section 9). How a
record finds its case is in ``keys.py`` and ``book.py``, how a case becomes one record in
``combine.py``; docs/cases.md says it for users.

The state a message is combined with is ``Prior``: the earlier messages of the cases it may
touch, in the order they were applied, and who first used each number. ``pipeline.process``
reads them again (pure, deterministic), so the service's store, ``convert``'s run (``log.py``)
and replay all hand over the same thing: messages, never half-digested state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from adapter.model import SourceFormat


@dataclass(frozen=True, slots=True)
class PriorMessage:
    """An earlier message of a case, as received."""

    data: bytes
    format: SourceFormat
    fhir_source: str | None = None  # the sender of FHIR input, when the caller named it


@dataclass(frozen=True, slots=True)
class Prior:
    """What a message is combined with: its cases' earlier messages, and the numbers' owners."""

    messages: tuple[PriorMessage, ...] = ()
    owners: Mapping[tuple[str, str], str] = field(default_factory=dict)


NO_PRIOR = Prior()
"""Nothing earlier: the message alone."""
