"""What cases cost `convert`: a follow-up message against a first one, and the case-only share.

A run of N bench messages (``jobs.numbered``: numbers of their own) with, 100 messages after
each, a follow-up for the same order (``jobs.follow_up``: the ISH counted again), through
``pipeline.process`` with one ``CaseLog``, as `convert` runs them. Prints the CPU time per first
message and per follow-up (which reads its case's earlier message again), and, timed by
wrappers around them, the functions only cases need (keys, the prior, the case book outside
the classifier and the ids every order's resources need, the case report's numbers): their
share of the run, the first messages and the follow-ups together. Run:
``.venv/bin/python bench/cases.py [-n 2000]``. Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable
from typing import Any

from jobs import follow_up, numbered

import adapter.cases.book as book
import adapter.cases.combine as combine
import adapter.cases.log as log
import adapter.emit.case_report as case_report
import adapter.pipeline as pipeline
from adapter.cases import PriorMessage
from adapter.config import Settings
from adapter.model import SourceFormat
from adapter.pipeline import Context, RawMessage, process

_LATER = 100

OUTSIDE_THE_BOOK: list[tuple[Any, str]] = [
    (pipeline, "record_keys"),
    (pipeline, "lookup_of"),
    (log.CaseLog, "prior"),
    (log.CaseLog, "add"),
    (case_report, "_order_numbers"),
    (case_report, "case_sentence"),
]
"""Functions only combining needs, outside the case book."""

IN_THE_BOOK: list[tuple[Any, str]] = [
    (book.CaseBook, "apply"),
    (combine, "classify"),  # runs once per case as it ran once per order: not a case cost
    (book, "record_ids"),  # the ids every order's resources get: not a case cost
]


def timed(owner: Any, name: str, spent: dict[str, float]) -> None:
    function: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

    setattr(owner, name, wrapper)


def run(context: Context, count: int, later_at: int = _LATER) -> tuple[float, float]:
    """CPU seconds per first message and per follow-up (none when ``later_at`` >= count)."""
    cases = log.CaseLog()
    first = later = 0.0
    for number in range(count):
        for raw, is_follow_up in ((numbered(number), False), (follow_up(number - later_at), True)):
            if is_follow_up and number < later_at:
                continue
            start = time.process_time()
            outcome = process(RawMessage(raw, SourceFormat.HL7V2), context, cases.prior)
            taken = time.process_time() - start
            assert outcome.application is not None
            cases.add(PriorMessage(raw, SourceFormat.HL7V2), outcome.application)
            if is_follow_up:
                later += taken
            else:
                first += taken
    return first / count, later / max(1, count - later_at)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=2_000)
    parser.add_argument(
        "--alone", action="store_true", help="the share without follow-ups (bench/throughput.py)"
    )
    args = parser.parse_args()
    context = Context.from_settings(Settings())
    for number in range(10**6, 10**6 + 200):  # warm caches (mapping look-ups, imports)
        process(RawMessage(numbered(number), SourceFormat.HL7V2), context)
    gc.freeze()  # as `convert` does once the pipeline is loaded
    first, later = run(context, args.count)
    print(f"first message      {first * 1e6:,.0f} µs CPU")
    print(f"follow-up          {later * 1e6:,.0f} µs CPU ({later / first:.2f}x)")
    spent: dict[str, float] = {}
    for owner, name in (*OUTSIDE_THE_BOOK, *IN_THE_BOOK):
        timed(owner, name, spent)
    start = time.perf_counter()
    run(context, args.count, args.count if args.alone else _LATER)
    total = time.perf_counter() - start
    in_book = spent.pop("apply") - spent.pop("classify") - spent.pop("record_ids")
    spent["case book (apply, less classify and ids)"] = in_book
    print(f"case-only work     {sum(spent.values()) / total:.1%} of the run (wrappers included)")
    for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"  {name:<41}{seconds / total:.1%}")
    print(f"load               {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
