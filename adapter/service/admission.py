"""Admission control for the listeners: who gets a connection, and how long it may take.

Two rules keep a few misbehaving peers from locking the engines out:

* **Caps with fair shares.** A listener holds at most ``max_connections``, and one source
  address at most ``max_per_source`` of them (set below the global cap). When the global cap is
  reached, a newcomer from a source holding fewer connections than the busiest source takes the
  place of that source's oldest connection that is not handling a message: so a fresh engine
  connection is always served while one address (or a few) floods the port.
* **Deadlines that bytes do not extend.** A frame (MLLP) or a request's headers and body (HTTP)
  must be complete within a fixed time of their first byte, and a connection may stay between
  messages only so long after its last complete one. A peer trickling one byte a second gains
  nothing from it: the deadline is an instant, not a silence.

The MLLP listener (``mllp.py``) and the HTTP protocol (``http_limits.py``) both use the
:class:`ConnectionTable` and :class:`ReadDeadline` here; the limits come
from ``adapter.config.Settings``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

log = logging.getLogger("her2_adapter.admission")


@dataclass(frozen=True, slots=True)
class Limits:
    """One listener's caps and deadlines (seconds)."""

    max_connections: int
    max_per_source: int
    frame_timeout: float
    """A frame (or request) must be complete this long after its first byte."""
    idle_timeout: float
    """A connection may wait this long after its last complete message for the next one."""

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.max_per_source < 1:
            raise ValueError("connection caps must be positive")
        if self.max_per_source > self.max_connections:
            raise ValueError("max_per_source must not exceed max_connections")
        if self.frame_timeout <= 0 or self.idle_timeout <= 0:
            raise ValueError("timeouts must be positive")


class Evictable(Protocol):
    """A connection the table may close to make room for a newcomer."""

    @property
    def busy(self) -> bool:
        """True while it handles a message: such a connection is never evicted."""
        ...

    def evict(self) -> None:
        """Close the connection now (its own cleanup releases it from the table)."""
        ...


C = TypeVar("C", bound=Evictable)


class ConnectionTable(Generic[C]):
    """The connections of one listener by source address, oldest first within each source."""

    def __init__(self, limits: Limits, *, name: str) -> None:
        self._limits = limits
        self._name = name
        self._by_source: dict[str, OrderedDict[int, C]] = {}
        self._total = 0
        # Refusals, evictions and deadlines are logged as counts at most once a second: a flood
        # of connections must not become a flood of log lines, whose formatting and writes
        # would hold the event loop from the senders it serves.
        self._unlogged: Counter[str] = Counter()
        self._logged_at = 0.0

    @property
    def total(self) -> int:
        return self._total

    def count(self, source: str) -> int:
        return len(self._by_source.get(source, ()))

    def admit(self, source: str, connection: C) -> bool:
        """Take ``connection`` from ``source`` in, evicting another if fairness asks; or refuse."""
        held = self.count(source)
        if held >= self._limits.max_per_source:
            self.note("refused over max_per_source")
            return False
        if self._total >= self._limits.max_connections and not self._evict_for(held):
            self.note("refused over max_connections")
            return False
        self._by_source.setdefault(source, OrderedDict())[id(connection)] = connection
        self._total += 1
        return True

    def release(self, source: str, connection: C) -> None:
        """Forget a closed connection (again is harmless: eviction releases it first)."""
        held = self._by_source.get(source)
        if held is None or held.pop(id(connection), None) is None:
            return
        self._total -= 1
        if not held:
            del self._by_source[source]

    def _evict_for(self, newcomer_holds: int) -> bool:
        """Close the oldest idle connection of the busiest source, if it holds more than one
        more than the newcomer's source (so that evicting never just moves the unfairness)."""
        busiest = max(self._by_source, key=lambda source: len(self._by_source[source]))
        connections = self._by_source[busiest]
        if len(connections) <= newcomer_holds + 1:
            return False
        victim = next((each for each in connections.values() if not each.busy), None)
        if victim is None:
            return False
        self.release(busiest, victim)
        victim.evict()
        self.note("evicted for a newcomer")
        return True

    def note(self, what: str) -> None:
        """Count a connection refused or closed for ``what``; log the counts now and then."""
        self._unlogged[what] += 1
        now = time.monotonic()
        if now - self._logged_at < 1.0:
            return
        self._logged_at = now
        counts = ", ".join(f"{count} {what}" for what, count in sorted(self._unlogged.items()))
        self._unlogged.clear()
        log.warning("%s connections: %s; %d open", self._name, counts, self._total)


class ReadDeadline:
    """When a connection's next read must have brought its frame (or its next frame) complete.

    ``now`` is the event loop's clock. The deadline moves only when a frame starts (to
    ``frame_timeout`` after it) or completes (to ``idle_timeout`` after it), never because a
    byte arrived: bytes outside a frame do not count as activity either.
    """

    def __init__(self, limits: Limits, now: Callable[[], float]) -> None:
        self._limits = limits
        self._now = now
        self._in_frame = False
        self.when = now() + limits.idle_timeout

    @property
    def reason(self) -> str:
        return "inside a frame" if self._in_frame else "idle"

    def observe(self, *, in_frame: bool, completed: int) -> None:
        """After bytes were read: whether a frame is open now, and how many were completed."""
        now = self._now()
        if completed:
            self.when = now + (
                self._limits.frame_timeout if in_frame else self._limits.idle_timeout
            )
        elif in_frame and not self._in_frame:
            self.when = now + self._limits.frame_timeout
        self._in_frame = in_frame


def peer_address(peer: object) -> str:
    """The source address from a transport's ``peername`` (host only; the port varies)."""
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown"
