"""MLLP load: N concurrent senders x M messages, then one sender's ACK latency.

    .venv/bin/python bench/mllp_load.py                     # starts `her2-adapter serve` itself
    .venv/bin/python bench/mllp_load.py --senders 8 --messages 500 --latency-messages 1000
    .venv/bin/python bench/mllp_load.py --target 127.0.0.1:2575   # an already running service
    .venv/bin/python bench/mllp_load.py --tls               # MLLP over TLS (a throwaway cert)

Each sender waits for the ACK of one message before sending the next, as interface engines do.
Without --target the service runs as a subprocess on a fresh SQLite store (WAL, synchronous=FULL)
in a temporary directory, so the numbers include durable group commits. Targets from the issue:
>= 2,000 ACKed msgs/s with 8 senders, single-connection ACK latency p99 <= 10 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from adapter.ingest.mllp import TRAILER, frame

SEGMENTS = (
    "PID|1||{case}^^^GOODHEALTH^MR||TEST^PATIENT||19870622|F",
    "ORC|RE|PLC{case}^EHR|SP{case}^COPATH||CM",
    "OBR|1|PLC{case}^EHR|SP{case}^COPATH|HER2IHC^HER2 immunohistochemistry^L|||"
    "20240305093016-0500||||||||||||||20240308161516-0500||SP|F",
    "OBX|1|CWE|85319-2^HER2 [Presence] in Breast cancer specimen by Immune stain^LN|1|"
    "2+^Equivocal (2+)^L||||||F|||20240305093016-0500",
    "SPM|1|^SP{case}-A1&COPATH||TISS^Tissue^HL70487|||CNB^Core needle biopsy^L|"
    "80248007^Left breast structure^SCT||||||||||20240305093016-0500",
)


def message(control_id: str) -> bytes:
    """An IHC result; each message is its own patient and specimen (a case of its own)."""
    msh = (
        "MSH|^~\\&|BENCH|LAB|HER2-ADAPTER|ONCOLOGY|20240308162016-0500||ORU^R01^ORU_R01|"
        f"{control_id}|P|2.5.1"
    )
    body = "\r".join(SEGMENTS).replace("{case}", control_id)
    return ("\r".join((msh, body)) + "\r").encode()


TLS: ssl.SSLContext | None = None
"""The client context when the service listens over TLS (``--tls``)."""


def sender(host: str, port: int, prefix: str, count: int) -> list[float]:
    """Send ``count`` messages on one connection; the ACK latency of each, in seconds.

    A blocking socket per sender, in its own thread: the load generator shares the machine's
    cores with the service, and this costs about half the CPU per message of an asyncio client,
    so more of the machine measures the service. The service does not see the difference.
    """
    latencies = []
    trailer = TRAILER
    with contextlib.ExitStack() as stack:
        connection = stack.enter_context(socket.create_connection((host, port)))
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if TLS is not None:
            connection = stack.enter_context(TLS.wrap_socket(connection, server_hostname=host))
        pending = b""
        for number in range(count):
            started = time.perf_counter()
            connection.sendall(frame(message(f"{prefix}-{number}")))
            while (end := pending.find(trailer)) == -1:
                chunk = connection.recv(65536)
                if not chunk:
                    raise ConnectionResetError("the service closed the connection")
                pending += chunk
            ack, pending = pending[1:end], pending[end + len(trailer) :]
            latencies.append(time.perf_counter() - started)
            if b"MSA|AA|" not in ack:
                raise RuntimeError(f"unexpected ACK: {ack[:200]!r}")
    return latencies


def throughput(host: str, port: int, senders: int, messages: int) -> tuple[int, float]:
    run = uuid.uuid4().hex[:8]
    with ThreadPoolExecutor(max_workers=senders) as pool:
        started = time.perf_counter()
        results = list(
            pool.map(lambda n: sender(host, port, f"{run}-s{n}", messages), range(senders))
        )
        elapsed = time.perf_counter() - started
    return sum(len(latencies) for latencies in results), elapsed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def self_signed(directory: Path, host: str) -> tuple[Path, Path]:
    """A throwaway certificate and key for ``host`` (openssl), for the TLS run."""
    cert, key = directory / "bench.pem", directory / "bench.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-days", "1", "-subj", f"/CN={host}"),
            *("-addext", f"subjectAltName=IP:{host}", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def cpu_seconds(pid: int, *, system: bool = False) -> dict[str, float]:
    """CPU time (user + system, or the system time alone) so far of the service's threads and
    of its worker processes.

    ``main`` is the event loop's thread; each other thread by its id (the store writer is the
    busy one); ``workers`` the worker processes together.
    """

    def used(stat: Path) -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[12]) + (0 if system else int(fields[11]))) / TICKS

    tasks = list(Path(f"/proc/{pid}/task").iterdir())
    found = {"main" if task.name == str(pid) else task.name: used(task / "stat") for task in tasks}
    children = [int(child) for task in tasks for child in (task / "children").read_text().split()]
    found["workers"] = sum(used(Path(f"/proc/{child}/stat")) for child in children)
    return found


TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def service(host: str, *, tls: bool = False) -> Iterator[tuple[int, int]]:
    """`her2-adapter serve` on a free port and a fresh SQLite store; yields its port and pid."""
    global TLS
    port = free_port(host)
    with tempfile.TemporaryDirectory(prefix="her2-bench-") as directory:
        command = [
            sys.executable,
            "-c",
            "from adapter.cli import app; app()",
            "serve",
            "--host",
            host,
            "--mllp-port",
            str(port),
            "--http-port",
            "0",
            "--store",
            f"sqlite:///{Path(directory) / 'bench.db'}",
        ]
        if tls:
            cert, key = self_signed(Path(directory), host)
            command += ["--mllp-tls-cert", str(cert), "--mllp-tls-key", str(key)]
            TLS = ssl.create_default_context(cafile=cert)
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline().decode()
            if "listening" not in line:
                raise RuntimeError(f"the service did not start: {line!r}")
            yield port, process.pid
        finally:
            process.terminate()
            process.wait(timeout=30)


def measure(host: str, port: int, arguments: argparse.Namespace, pid: int | None = None) -> None:
    sender(host, port, f"warmup-{uuid.uuid4().hex[:8]}", 200)
    before = cpu_seconds(pid) if pid is not None else {}
    before_system = cpu_seconds(pid, system=True) if pid is not None else {}
    count, elapsed = throughput(host, port, arguments.senders, arguments.messages)
    print(
        f"throughput: {arguments.senders} senders x {arguments.messages} messages ="
        f" {count} ACKed in {elapsed:.2f} s -> {count / elapsed:,.0f} msgs/s"
    )
    if pid is not None:
        # CPU per message is what the shared machine's load changes least: the wall time
        # above includes every other process the two cores ran meanwhile.
        after, after_system = cpu_seconds(pid), cpu_seconds(pid, system=True)
        spent = {name: (used - before.get(name, 0.0)) * 1e6 / count for name, used in after.items()}
        kernel = {
            name: (used - before_system.get(name, 0.0)) * 1e6 / count
            for name, used in after_system.items()
        }
        loop, workers = spent.pop("main"), spent.pop("workers")
        writer_thread = max(spent, key=spent.__getitem__, default="")
        writer = spent.get(writer_thread, 0.0)
        others = sum(spent.values()) - writer
        print(
            f"service CPU per message: {loop + writer + others + workers:.0f} µs: event loop"
            f" {loop:.0f}, busiest other thread (the store writer) {writer:.0f}, other threads"
            f" {others:.0f}, workers {workers:.0f}"
        )
        # The kernel's share: the writer's is its log writes, fsyncs and GIL hand-offs.
        print(
            f"  of which system time: event loop {kernel['main']:.0f}, store writer"
            f" {kernel.get(writer_thread, 0.0):.0f}, workers {kernel['workers']:.0f}"
        )
    latencies = sender(host, port, f"lat-{uuid.uuid4().hex[:8]}", arguments.latency_messages)
    millis = [value * 1000 for value in latencies]
    print(
        f"single connection: {len(millis)} messages, ACK latency"
        f" p50 {percentile(millis, 0.50):.2f} ms, p99 {percentile(millis, 0.99):.2f} ms,"
        f" max {max(millis):.2f} ms, mean {statistics.fmean(millis):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--messages", type=int, default=500, help="per sender")
    parser.add_argument("--latency-messages", type=int, default=1000)
    parser.add_argument("--target", help="host:port of a running service (default: start one)")
    parser.add_argument("--tls", action="store_true", help="MLLP over TLS (started service only)")
    arguments = parser.parse_args()
    if arguments.target:
        host, _, port = arguments.target.rpartition(":")
        measure(host, int(port), arguments)
        return
    with service("127.0.0.1", tls=arguments.tls) as (port, pid):
        measure("127.0.0.1", port, arguments, pid)


if __name__ == "__main__":
    main()
