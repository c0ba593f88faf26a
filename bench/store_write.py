"""The store writer alone: CPU and disk per message, as the service writes over MLLP.

    .venv/bin/python bench/store_write.py                  # 4,000 messages, batches of 8
    .venv/bin/python bench/store_write.py -n 8000 --batch 8 --store postgresql://...

Messages are those of ``bench/mllp_load.py`` (each its own patient and case), processed first
(not timed). Then the writer's pattern under 8 senders is replayed on a fresh durable SQLite
store (WAL, synchronous=FULL): each transaction holds the outcomes of the previous batch (cases,
outcome, report and resource index: the writes deferred after the ACK) and the raw messages of
the next. Timed: the CPU of this thread in ``Store.write_batch`` (what the service's writer
thread spends), the wall time, and the store's size on disk per message.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mllp_load import message

from adapter.config import Settings
from adapter.model import SourceFormat
from adapter.pipeline import Context, RawMessage, identify, process
from adapter.service.workers import processed
from adapter.store import (
    CaseWriteRequest,
    IndexReportsRequest,
    MessageStatus,
    OutcomeRequest,
    Receipt,
    ReceiveRequest,
    Store,
    Transport,
    WriteRequest,
    open_store,
)
from adapter.store.records import MessageFormat

ACK = (
    b"MSH|^~\\&|HER2-ADAPTER|ONCOLOGY|BENCH|LAB|20240308162016-0500||ACK^R01^ACK|X|P|2.5.1\r"
    b"MSA|AA|X\r"
)


def outcome_writes(row_id: int, done: object) -> list[WriteRequest]:
    """What ``Service._answer`` writes for a message processed alone."""
    from adapter.service.workers import Processed

    assert isinstance(done, Processed)
    assert done.cases is not None
    now = datetime.now(UTC)
    changes = done.cases
    return [
        CaseWriteRequest(
            row_id, changes.lookup, changes.owner_keys, (), (), changes.claims, changes.events
        ),
        OutcomeRequest(row_id, MessageStatus.PROCESSED, now, done.bundle_json, None, None, ACK),
        IndexReportsRequest(row_id, done.reports, done.resources),
    ]


def written() -> int:
    """Bytes this process has written so far (WAL frames and checkpoints, for SQLite)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def run(store: Store, count: int, batch: int) -> tuple[float, float, int]:
    context = Context.from_settings(Settings())
    prepared = []
    for number in range(count):
        data = message(f"store-{number}")
        identity = identify(data, SourceFormat.HL7V2)
        done = processed(process(RawMessage(data, SourceFormat.HL7V2), context))
        prepared.append((data, identity, done))
    cpu = wall = 0.0
    wrote = -written()
    previous: list[tuple[int, object]] = []
    for start in range(0, count + batch, batch):
        chunk = prepared[start : start + batch]
        groups: list[list[WriteRequest]] = [outcome_writes(row, done) for row, done in previous]
        groups += [
            [
                ReceiveRequest(
                    Transport.MLLP,
                    MessageFormat.HL7V2,
                    identity.sender,
                    identity.message_id,
                    data,
                    datetime.now(UTC),
                )
            ]
            for data, identity, _ in chunk
        ]
        if not groups:
            break
        started_cpu, started_wall = time.thread_time(), time.perf_counter()
        outcomes = store.write_batch(groups)
        cpu += time.thread_time() - started_cpu
        wall += time.perf_counter() - started_wall
        receipts = outcomes[len(previous) :]
        previous = []
        for outcome, (_, _, done) in zip(receipts, chunk, strict=True):
            assert not isinstance(outcome, LookupError)
            receipt = outcome[0]
            assert isinstance(receipt, Receipt)
            previous.append((receipt.row_id, done))
    return cpu, wall, wrote + written()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=4000, help="messages")
    parser.add_argument("--batch", type=int, default=8, help="messages per transaction")
    parser.add_argument("--store", help="a store URL (default: a fresh SQLite file)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="her2-store-bench-") as directory:
        path = Path(directory) / "bench.db"
        url = arguments.store or f"sqlite:///{path}"
        with open_store(url) as store:
            cpu, wall, wrote = run(store, arguments.n, arguments.batch)
        size = (
            sum(p.stat().st_size for p in Path(directory).iterdir()) if not arguments.store else 0
        )
    per = 1e6 / arguments.n
    print(
        f"writer: {arguments.n} messages in batches of {arguments.batch}:"
        f" {cpu * per:.0f} µs CPU and {wall * per:.0f} µs wall per message,"
        f" {wrote / arguments.n / 1024:.0f} KiB written per message"
        + (f", {size / arguments.n / 1024:.1f} KiB on disk per message" if size else "")
    )


if __name__ == "__main__":
    main()
