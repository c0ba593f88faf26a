"""Where `convert`'s time per message goes: the pipeline's stages timed one after another.

Runs the messages of ``bench/throughput.py`` through the same calls ``pipeline.process`` makes,
timing each stage of each message in turn, and prints µs per message for each: tokenize (ER7
split, decode, MSH), records (ingest to ``AssayRecord``s), cases (keys, the case book, combining;
without classify), classify (the case records classified once more, alone, and taken off cases),
Bundle and JSON. Best of ``--repeat`` passes per stage; the machine is shared, so run it more
than once. Run: ``.venv/bin/python bench/stages.py [-n 3000]``. Not a test: figures go to
docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from throughput import message  # the bench's own messages

from adapter.cases.book import CaseBook
from adapter.cases.keys import lookup_of, record_keys
from adapter.classify import classify
from adapter.config import Settings
from adapter.emit.bundle import dumps
from adapter.emit.case_report import build_bundle
from adapter.ingest import hl7v2
from adapter.model import SourceFormat
from adapter.pipeline import Context, RawMessage, process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=3_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    context = Context.from_settings(settings)
    mappings = context.mappings
    for number in range(200):  # warm caches (mapping look-ups, imports), as throughput.py does
        process(RawMessage(message(number), SourceFormat.HL7V2), context)
    gc.freeze()
    raws = [message(number) for number in range(args.count)]

    names = ("tokenize", "records", "cases, without classify", "classify", "Bundle", "JSON")
    best = dict.fromkeys(names, float("inf"))
    total_start = time.perf_counter()
    for _ in range(args.repeat):
        spent = dict.fromkeys(names, 0.0)
        for raw in raws:
            t0 = time.perf_counter()
            read = hl7v2.read_message(raw, settings)
            t1 = time.perf_counter()
            orders = hl7v2.to_orders(read, mappings, settings)
            t2 = time.perf_counter()
            keys_of = [record_keys(order.record) for order in orders]
            book = CaseBook({})  # each bench message opens a case of its own: nothing earlier
            application = book.apply(read.control_id, orders, keys_of, lookup_of(keys_of))
            t3 = time.perf_counter()
            for view in application.cases:  # classify once more, alone, to split it out
                classify(view.record)
            t4 = time.perf_counter()
            bundle = build_bundle(read.control_id, application, settings, mappings.version)
            t5 = time.perf_counter()
            dumps(bundle)
            t6 = time.perf_counter()
            spent["tokenize"] += t1 - t0
            spent["records"] += t2 - t1
            spent["cases, without classify"] += (t3 - t2) - (t4 - t3)
            spent["classify"] += t4 - t3
            spent["Bundle"] += t5 - t4
            spent["JSON"] += t6 - t5
        for name in names:
            best[name] = min(best[name], spent[name] / len(raws) * 1e6)
    stages = [(name, best[name]) for name in names]
    elapsed = time.perf_counter() - total_start
    total = sum(us for _, us in stages)
    print(f"messages {args.count}, best of {args.repeat} ({elapsed:.1f} s in all)")
    for name, us in stages:
        print(f"  {name:<24} {us:8.1f} µs/msg  {us / total:6.1%}")
    print(f"  {'sum':<24} {total:8.1f} µs/msg  = {1e6 / total:,.0f} msgs/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
