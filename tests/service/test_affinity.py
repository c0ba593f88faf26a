"""CPU pinning: the service and each worker get CPUs of their own when there are enough."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from adapter.config import Settings
from adapter.pipeline import Context
from adapter.service.affinity import CpuPlan, available_cpus, pin, plan_cpus
from adapter.service.workers import WorkerPool

linux_only = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity"), reason="CPU affinity is a Linux interface"
)


@pytest.mark.parametrize(
    ("cpus", "workers", "expected"),
    [
        pytest.param(
            {0, 1}, 1, CpuPlan(frozenset({0}), (frozenset({1}),)), id="two-cpus-one-worker"
        ),
        pytest.param(
            {0, 1, 2, 3},
            3,
            CpuPlan(frozenset({0}), (frozenset({1}), frozenset({2}), frozenset({3}))),
            id="four-cpus-three-workers",
        ),
        pytest.param(
            {4, 5, 6, 7, 8, 9},
            2,
            CpuPlan(frozenset({4, 5, 6, 7}), (frozenset({8}), frozenset({9}))),
            id="the-service-keeps-what-workers-leave",
        ),
        pytest.param({0, 1}, 2, None, id="no-cpu-left-for-the-service"),
        pytest.param({0}, 1, None, id="one-cpu"),
        pytest.param({0, 1, 2}, 0, None, id="no-workers"),
    ],
)
def test_plan(cpus: set[int], workers: int, expected: CpuPlan | None) -> None:
    """Each worker a CPU of its own and the rest for the service, or no plan when short."""
    assert plan_cpus(cpus, workers) == expected


@linux_only
def test_pinned_workers_run_on_their_own_cpu() -> None:
    """A pool given a CPU set per worker starts each worker pinned to it."""
    cpu = min(available_cpus())

    async def main() -> list[set[int]]:
        pool = WorkerPool(Context.from_settings(Settings()), 1, cpus=[frozenset({cpu})])
        await pool.start()
        try:
            return [os.sched_getaffinity(pid) for pid in pool.pids]
        finally:
            await pool.close()

    assert asyncio.run(main()) == [{cpu}]


@linux_only
def test_a_replacement_worker_takes_the_cpu_of_the_one_that_died() -> None:
    """A worker that dies is replaced by one pinned where it was."""
    cpu = max(available_cpus())

    async def main() -> tuple[int, list[int], list[set[int]]]:
        pool = WorkerPool(Context.from_settings(Settings()), 1, cpus=[frozenset({cpu})])
        await pool.start()
        try:
            (victim,) = pool.pids
            os.kill(victim, signal.SIGKILL)
            for _ in range(1000):
                if pool.pids and pool.pids != [victim]:
                    break
                await asyncio.sleep(0.01)
            return victim, pool.pids, [os.sched_getaffinity(pid) for pid in pool.pids]
        finally:
            await pool.close()

    victim, pids, affinities = asyncio.run(main())
    assert len(pids) == 1
    assert pids != [victim]
    assert affinities == [{cpu}]


@linux_only
def test_pin_refuses_quietly_what_it_cannot_do() -> None:
    """Pinning a process that is gone is not an error: it is only an optimisation."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert pin(gone.pid, frozenset({min(available_cpus())})) is False


SERVICE_AFFINITY = """
import os, signal, sys
from adapter.service.server import run
from adapter.config import Settings

def ready(listening):
    print(sorted(os.sched_getaffinity(0)), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

settings = Settings(
    mllp_port=0, http_port=0, store=sys.argv[1], workers=1, pin_cpus=sys.argv[2] == "on"
)
run(settings, on_ready=ready)
"""


@linux_only
@pytest.mark.parametrize("pinning", ["on", "off"])
def test_serve_pins_itself_when_there_are_cpus_enough(tmp_path: Path, pinning: str) -> None:
    """`serve` with one worker: the service keeps the CPUs the worker leaves, unless told not to."""
    finished = subprocess.run(
        [sys.executable, "-c", SERVICE_AFFINITY, f"sqlite:///{tmp_path / 'store.db'}", pinning],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    plan = plan_cpus(available_cpus(), 1)
    expected = plan.service if plan is not None and pinning == "on" else available_cpus()
    assert finished.stdout.strip() == str(sorted(expected))


def test_a_pool_needs_a_cpu_set_per_worker() -> None:
    """CPU sets given for a pool must match its workers one for one."""
    with pytest.raises(ValueError, match="1 CPU sets for 2 workers"):
        WorkerPool(Context.from_settings(Settings()), 2, cpus=[frozenset({0})])
