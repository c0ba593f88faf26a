"""`her2-adapter audit` over a SQLite store of N reports (default 100,000): wall time of the
command, and where it goes (store read, figures, HTML).

The store is filled the way the service fills it: 600 generated ORU^R01 messages (the messages
of bench/throughput.py, issued across twelve months) run through ``pipeline.process`` once, and
their stored shape (raw message, Bundle, report index row with its audit facts) repeated under
ten senders until N reports are stored. Run: ``.venv/bin/python bench/audit.py [-n 100000]``;
``--bundles`` times the audit over N reports' Bundles in one NDJSON file instead.
Not a test: figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from throughput import message

from adapter.audit.figures import AuditOptions, build_audit
from adapter.audit.render_html import render_html
from adapter.audit.sources import from_store
from adapter.config import Settings
from adapter.model import SourceFormat
from adapter.pipeline import Context, RawMessage, process
from adapter.service.workers import processed
from adapter.store import (
    IndexReportsRequest,
    MessageFormat,
    MessageStatus,
    OutcomeRequest,
    Receipt,
    ReceiveRequest,
    ReportIndexRow,
    Transport,
    open_store,
)

POOL = 600
SENDERS = 10
BATCH = 2000
START = datetime(2024, 1, 1, tzinfo=UTC)


def pool() -> list[tuple[bytes, bytes, list[ReportIndexRow]]]:
    """(raw, bundle, index rows) of POOL processed messages issued over twelve months."""
    context = Context.from_settings(Settings())
    items = []
    for number in range(POOL):
        month = number % 12 + 1
        raw = message(number).replace(b"20240325161521-0500", f"2024{month:02d}15120000".encode())
        outcome = processed(process(RawMessage(raw, SourceFormat.HL7V2), context))
        assert outcome.bundle_json is not None, outcome.error
        items.append((raw, outcome.bundle_json, list(outcome.reports)))
    return items


def fill(url: str, reports: int) -> None:
    items = pool()
    with open_store(url) as store:
        for start in range(0, reports, BATCH):
            numbers = range(start, min(start + BATCH, reports))
            receipts = store.write(
                [
                    ReceiveRequest(
                        Transport.MLLP,
                        MessageFormat.HL7V2,
                        f"LAB{n % SENDERS}^LAB {n % SENDERS} PATHOLOGY",
                        f"B{n:08d}",
                        items[n % POOL][0],
                        START + timedelta(minutes=n),
                    )
                    for n in numbers
                ]
            )
            writes = []
            for n, receipt in zip(numbers, receipts, strict=True):
                _, bundle, rows = items[n % POOL]
                assert isinstance(receipt, Receipt)
                row_id = receipt.row_id
                outcome = OutcomeRequest(row_id, MessageStatus.PROCESSED, START, bundle)
                writes.append(outcome)
                writes.append(
                    IndexReportsRequest(row_id, [replace(r, report_id=f"R{n:08d}") for r in rows])
                )
            store.write(writes)


def bundles(reports: int, runs: int) -> None:
    """The audit over the Bundles of N reports (the pool's, each case report under an id of its
    own), as a receiver's copy of our output: ``her2-adapter audit FILE``."""
    items = pool()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bundles.ndjson"
        with path.open("wb") as out:
            for n in range(reports):
                _, bundle, rows = items[n % POOL]
                for row in rows:
                    bundle = bundle.replace(row.report_id.encode(), f"R{n:08d}".encode())
                out.write(bundle + b"\n")
        print(f"wrote {reports} reports' Bundles ({path.stat().st_size >> 20} MiB)")
        command = [str(Path(sys.executable).with_name("her2-adapter")), "audit", str(path)]
        for run in range(1, runs + 1):
            began, cpu = time.perf_counter(), _children_cpu()
            subprocess.run(
                [*command, "--json", str(Path(directory) / "a.json")],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            took, used = time.perf_counter() - began, _children_cpu() - cpu
            print(
                f"run {run}: her2-adapter audit FILE --json FILE: {took:.2f} s wall,"
                f" {used:.2f} s CPU"
            )


def _children_cpu() -> float:
    """CPU seconds of finished child processes: steadier than wall time on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=100_000, help="reports in the store")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--bundles",
        action="store_true",
        help="time the audit over N reports' Bundles in one NDJSON file instead of a store",
    )
    args = parser.parse_args()
    if args.bundles:
        bundles(args.n, args.runs)
        return
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'bench.db'}"
        began = time.perf_counter()
        fill(url, args.n)
        size = (Path(directory) / "bench.db").stat().st_size
        print(f"filled {args.n} reports in {time.perf_counter() - began:.1f} s ({size >> 20} MiB)")
        command = [str(Path(sys.executable).with_name("her2-adapter")), "audit", "--from-store"]
        for run in range(1, args.runs + 1):
            began, cpu = time.perf_counter(), _children_cpu()
            subprocess.run(
                [*command, url, "--json", str(Path(directory) / "a.json")],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            took, used = time.perf_counter() - began, _children_cpu() - cpu
            print(
                f"run {run}: her2-adapter audit --from-store ... --json FILE: {took:.2f} s wall,"
                f" {used:.2f} s CPU"
            )
        with open_store(url) as store:
            began = time.perf_counter()
            data = from_store(store)
            read = time.perf_counter() - began
        began = time.perf_counter()
        audit = build_audit(data.reports, data.unprocessed, AuditOptions())
        figures = time.perf_counter() - began
        began = time.perf_counter()
        page = render_html(audit)
        html = time.perf_counter() - began
        print(
            f"in process: store read {read:.2f} s, figures {figures:.2f} s, "
            f"HTML {html:.2f} s ({len(page) >> 10} KiB)"
        )


if __name__ == "__main__":
    main()
