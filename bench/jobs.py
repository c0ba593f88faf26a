"""`convert --jobs N` against `--jobs 1`: the same file, end to end, the output compared.

The file holds N generated ORU^R01 messages (``throughput.message``, each with numbers of its
own) and, for every fifth case, a follow-up message for the same order (a recount of the ISH,
as a reflex result arrives) 1,000 messages later, so that cases are split across the input.
Each run is the command as a user runs it (start, worker start, output to a file), timed by
wall clock, alternately with each job count. Run:
``.venv/bin/python bench/jobs.py [-n 20000] [--runs 3] [--jobs 2]``. Not a test: figures go to
docs/performance.md.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from throughput import message

_LATER = 1_000


def numbered(number: int) -> bytes:
    """The bench message with a specimen id of its own (the bench's is shared by all)."""
    return message(number).replace(b"^SP-A1&COPATH", f"^SP{number}-A1&COPATH".encode())


def follow_up(number: int) -> bytes:
    """The ISH of case ``number`` counted again, in a message of its own."""
    lines = numbered(number).split(b"\r")
    kept = [
        line.replace(b"|BENCH", b"|BENCHF")
        for line in lines
        if not line.startswith((b"OBX|1|", b"OBX|5|", b"OBX|6|", b"NTE"))
    ]
    return b"\r".join(kept).replace(b"|1.9|", b"|2.0|")


def corpus(count: int) -> bytes:
    parts: list[bytes] = []
    for number in range(count):
        parts.append(numbered(number))
        earlier = number - _LATER
        if earlier >= 0 and earlier % 5 == 0:
            parts.append(follow_up(earlier))
    return b"".join(parts)


def run(command: Path, source: Path, jobs: int, out: Path) -> tuple[float, float]:
    """Wall-clock seconds, and CPU seconds of every process of the run (user and system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with out.open("wb") as sink:
        subprocess.run(
            [str(command), "convert", "--jobs", str(jobs), str(source)], stdout=sink, check=True
        )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    command = Path(sys.executable).parent / "her2-adapter"
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "input.hl7"
        source.write_bytes(corpus(args.count))
        messages = source.read_bytes().count(b"MSH|")
        times: dict[int, list[tuple[float, float]]] = {1: [], args.jobs: []}
        for _ in range(args.runs):
            for jobs in times:
                times[jobs].append(run(command, source, jobs, Path(folder) / f"out-{jobs}"))
        same = filecmp.cmp(Path(folder) / "out-1", Path(folder) / f"out-{args.jobs}", False)
    print(f"messages           {messages} (load {os.getloadavg()[0]:.1f})")
    for jobs, taken in times.items():
        rates = ", ".join(f"{messages / wall:,.0f}" for wall, _ in taken)
        cpu = ", ".join(f"{cpu / messages * 1e6:,.0f}" for _, cpu in taken)
        print(f"--jobs {jobs:<2}          {rates} msgs/s; CPU {cpu} µs/msg (all processes)")
    pairs = [one[0] / many[0] for one, many in zip(times[1], times[args.jobs], strict=True)]
    print(f"speed-up           {', '.join(f'{p:.2f}x' for p in pairs)}")
    print(f"output identical   {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
