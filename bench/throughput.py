"""End-to-end throughput of `convert`: N generated ORU^R01 messages, one core, one run.

Prints messages/s, µs/message (wall and CPU), the same input's plain ``str.split`` tokenize
floor, and the ratio between them; with ``--rss`` also the resident memory every 10 % of the run
(it must stay flat). Run: ``.venv/bin/python bench/throughput.py [-n 20000] [--rss]``. Not a
test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
from collections.abc import Iterator

from adapter.cases import PriorMessage
from adapter.cases.log import CaseLog
from adapter.config import Settings
from adapter.model import SourceFormat
from adapter.pipeline import Context, RawMessage, process

IHC = ["0^Negative (0)^L", "1+^Negative (1+)^L", "2+^Equivocal (2+)^L", "3+^Positive (3+)^L"]


def message(number: int) -> bytes:
    """A realistic breast prognostic ORU^R01: IHC, dual-probe ISH, ER and PgR, NTE, SPM."""
    ihc = IHC[number % 4]
    ratio = f"{1.5 + (number % 10) / 10:.2f}"
    copies = f"{3.0 + (number % 7) / 2:.1f}"
    segments = [
        f"MSH|^~\\&|COPATH|GOODHEALTH PATHOLOGY|HER2-ADAPTER|ONCOLOGY|20240325162021-0500||"
        f"ORU^R01^ORU_R01|BENCH{number:08d}|P|2.5.1|||AL|NE",
        f"PID|1||TST{number:06d}^^^GOODHEALTH^MR||TEST^PATIENT||19700921|F",
        "PV1|1|O",
        f"ORC|RE|PLC{number}^EHR|SP{number}^COPATH||CM",
        f"OBR|1|PLC{number}^EHR|SP{number}^COPATH|BRPROG^Breast prognostic markers^L|||"
        "20240322093021-0500|||||||||1234567893^TESTDOC^ORDERING||||||20240325161521-0500||SP|F",
        f"OBX|1|CWE|85319-2^HER2 IHC^LN|1|{ihc}||||||F|||20240322093021-0500",
        f"OBX|2|NM|49683-6^HER2/CEP17 ratio^LN|1|{ratio}|{{ratio}}|||||F",
        f"OBX|3|NM|74860-8^HER2 copies per cell^LN|1|{copies}|{{copies}}/{{cell}}|||||F",
        "OBX|4|NM|74861-6^CEP17 copies per cell^LN|1|1.9|{copies}/{cell}|||||F",
        "NTE|1|L|Blinded recount by additional observer.",
        f"OBX|5|NM|85329-1^ER %^LN|1|{number % 100}|%|||||F",
        f"OBX|6|ST|85325-9^PgR %^LN|1|{'<1' if number % 3 else '40'}|%|||||F",
        "SPM|1|^SP-A1&COPATH||TISS^Tissue^HL70487|||CNB^Core needle biopsy^L|"
        "80248007^Left breast structure^SCT",
    ]
    return ("\r".join(segments) + "\r").encode("ascii")


def corpus(count: int) -> Iterator[bytes]:
    return (message(i) for i in range(count))


def split_floor(messages: list[bytes]) -> float:
    """Seconds to decode and split every message on its separators: the tokenize floor."""
    start = time.perf_counter()
    for raw in messages:
        for segment in raw.decode("ascii").split("\r"):
            segment.split("|")
    return time.perf_counter() - start


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=20_000)
    parser.add_argument("--rss", action="store_true", help="report peak RSS as the run goes")
    args = parser.parse_args()
    context = Context.from_settings(Settings())
    sample = [message(i) for i in range(min(args.count, 2_000))]
    for raw in sample[:200]:  # warm caches (mapping look-ups, imports)
        process(RawMessage(raw, SourceFormat.HL7V2), context)
    gc.freeze()  # as `convert` does once the pipeline is loaded (adapter/cli.py)
    floor = split_floor(sample) / len(sample)
    checkpoints = {args.count * step // 10 for step in range(1, 11)}
    failures = 0
    cases = CaseLog()  # one for the run, as `convert` keeps: every message joins or opens a case
    start, cpu_start = time.perf_counter(), time.process_time()
    for number, raw in enumerate(corpus(args.count), start=1):
        outcome = process(RawMessage(raw, SourceFormat.HL7V2), context, cases.prior)
        if outcome.application is not None:
            cases.add(PriorMessage(raw, SourceFormat.HL7V2), outcome.application)
        failures += outcome.error is not None
        if args.rss and number in checkpoints:
            print(f"  after {number:>8} messages: peak RSS {rss_mib():.1f} MiB", file=sys.stderr)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    per_message = elapsed / args.count
    print(f"messages           {args.count}")
    print(f"failures           {failures}")
    print(f"throughput         {args.count / elapsed:,.0f} msgs/s (one core)")
    print(f"per message        {per_message * 1e6:,.1f} µs")
    # CPU time: on a shared machine the wall time also counts the waits for a core
    print(f"CPU per message    {cpu / args.count * 1e6:,.1f} µs")
    print(f"split floor        {floor * 1e6:,.1f} µs/msg")
    print(f"ratio to floor     {per_message / floor:,.1f}x")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
