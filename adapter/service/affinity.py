"""Which CPUs the service process and each worker process run on.

Left to the scheduler, the event loop, the store writer and the workers move between the cores
many times a second, and each move costs the caches they had filled. Measured with 8 MLLP
senders on 2 cores, giving the service one core and the worker the other raised throughput by
about a quarter (docs/performance.md). So when there are CPUs enough for every worker to have
one of its own and at least one left for the service, each gets its own; otherwise nothing is
pinned. Linux only: elsewhere ``os.sched_setaffinity`` does not exist and nothing is pinned.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuPlan:
    service: frozenset[int]  # the event loop, the store writer, and every thread they start
    workers: tuple[frozenset[int], ...]  # one CPU set per worker process


def plan_cpus(available: Collection[int], workers: int) -> CpuPlan | None:
    """The service on the first CPUs, each worker on one of the last; None when they won't fit."""
    cpus = sorted(available)
    if workers < 1 or len(cpus) <= workers:
        return None
    service_count = len(cpus) - workers
    return CpuPlan(
        service=frozenset(cpus[:service_count]),
        workers=tuple(frozenset({cpu}) for cpu in cpus[service_count:]),
    )


def available_cpus() -> frozenset[int]:
    """The CPUs this process may run on (all of them where affinity is not supported)."""
    if hasattr(os, "sched_getaffinity"):
        return frozenset(os.sched_getaffinity(0))
    return frozenset(range(os.cpu_count() or 1))


def pin(pid: int, cpus: frozenset[int]) -> bool:
    """Keep a process (0: the calling thread, and the threads it starts) on ``cpus``.

    Returns False where the platform cannot; a pin is an optimisation, never a requirement.
    """
    if not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError:  # the CPU went offline, or the process is already gone
        return False
    return True
