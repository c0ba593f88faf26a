"""No lock-out: trickling MLLP peers and slow HTTP uploads cannot keep an engine out.

The audit's attack, scaled to a test: 300 MLLP connections trickling a frame one byte at a time
and 1,100 HTTP uploads trickling their bodies, from several source addresses on loopback, each
reconnecting as soon as it is cut off, against ``her2-adapter serve`` running in its own process
under a descriptor limit of 1,024. Meanwhile a good sender (another address) opens fresh
connections and sends messages one after another.

What is asserted is the property the issue states: every fresh connection of the good sender is
served and every message of it answered AA while the abusers are cut off, and at once: each ACK
comes well before any abuser's deadline (3 s here) could have freed a place for it. Its ACK
latency p99 is measured and printed (``-s``; docs/operations.md gives figures), not asserted
against 100 ms: on a two-core box shared with other work the scheduler alone exceeds that.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest
from lockout_support import ATTACK_SECONDS, HTTP_ABUSERS, MLLP_ABUSERS, descriptors_for_the_test
from mllp_support import LOOPBACK, msa_code, oru
from service.test_server import cli_command, free_port

from adapter.service.mllp_client import MllpClient

pytestmark = pytest.mark.timeout(180)

SERVICE_DESCRIPTORS = 1024
GOOD_SOURCE = "127.0.0.1"


def _limit_service_descriptors() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (SERVICE_DESCRIPTORS, SERVICE_DESCRIPTORS))


@asynccontextmanager
async def limited_service(tmp_path: Path, mllp: int, http: int) -> AsyncIterator[None]:
    environment = {
        **os.environ,
        "HER2_WORKERS": "0",
        "HER2_MLLP_FRAME_TIMEOUT": "3",
        "HER2_HTTP_HEADER_TIMEOUT": "3",
        "HER2_HTTP_BODY_TIMEOUT": "3",
    }
    log = (tmp_path / "serve.log").open("ab")
    process = await asyncio.create_subprocess_exec(
        *cli_command(),
        "serve",
        "--mllp-port",
        str(mllp),
        "--http-port",
        str(http),
        "--store",
        f"sqlite:///{tmp_path / 'store.db'}",
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
        env=environment,
        preexec_fn=_limit_service_descriptors,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.startswith(b"her2-adapter listening"), line
        yield
    finally:
        with suppress(ProcessLookupError):
            process.terminate()
        await asyncio.wait_for(process.wait(), 30)
        log.close()


async def good_sender(port: int, count: int, first: int) -> tuple[list[float], list[str]]:
    """``count`` messages, a fresh connection for every fifth; each ACK's latency and code.

    Each message is the result of another specimen (order ``first``, ``first + 1``...), as an
    engine's traffic is: results for one specimen make one case, which every message of it
    reads again, so a hundred of them would measure the case's growth, not the attack.
    """
    latencies: list[float] = []
    codes: list[str] = []
    client: MllpClient | None = None
    for number in range(count):
        if number % 5 == 0:
            if client is not None:
                await client.close()
            reader, writer = await asyncio.open_connection(
                LOOPBACK, port, local_addr=(GOOD_SOURCE, 0)
            )
            client = MllpClient(reader, writer)
        assert client is not None
        started = time.perf_counter()
        message = oru(f"good-{first + number}", order=str(first + number))
        (ack,) = await client.send(message, timeout=10)
        latencies.append(time.perf_counter() - started)
        codes.append(msa_code(ack))
        await asyncio.sleep(0.05)
    if client is not None:
        await client.close()
    return latencies, codes


async def healthz(port: int) -> bytes:
    reader, writer = await asyncio.open_connection(LOOPBACK, port, local_addr=(GOOD_SOURCE, 0))
    writer.write(b"GET /healthz HTTP/1.1\r\nhost: adapter\r\nconnection: close\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer.split(b"\r\n", 1)[0]


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


@pytest.mark.skipif(sys.platform != "linux", reason="loopback source addresses beyond 127.0.0.1")
def test_abusers_are_cut_off_while_an_engine_is_served(tmp_path: Path) -> None:
    descriptors_for_the_test()
    mllp_port, http_port = free_port(), free_port()

    async def main() -> tuple[list[float], list[float], list[str], bytes, int]:
        async with limited_service(tmp_path, mllp_port, http_port):
            before, _ = await good_sender(mllp_port, 40, 2000)
            abusers = await asyncio.create_subprocess_exec(
                sys.executable,
                str(Path(__file__).parents[1] / "lockout_support.py"),
                str(mllp_port),
                str(http_port),
                str(ATTACK_SECONDS),
                stdout=asyncio.subprocess.PIPE,
            )
            await asyncio.sleep(3.0)  # the abusers hold every place they can get
            during, codes = await good_sender(mllp_port, 100, 3000)
            health = await healthz(http_port)
            output, _ = await asyncio.wait_for(abusers.communicate(), ATTACK_SECONDS + 60)
            return before, during, codes, health, int(output.split()[-1])

    before, during, codes, health, cut = asyncio.run(main())
    print(  # measured, for docs/operations.md
        f"\nACK latency p99 before {p99(before) * 1000:.1f} ms, under attack"
        f" {p99(during) * 1000:.1f} ms (max {max(during) * 1000:.1f} ms);"
        f" abuser connections cut {cut};"
        f" deciles {[round(q * 1000) for q in statistics.quantiles(during, n=10)]} ms"
    )
    assert codes == ["AA"] * 100  # every fresh connection served, every message answered
    assert health == b"HTTP/1.1 200 OK"
    # The abusers were cut off: far more connections than the 1,400 abusers (refused,
    # evicted or past their deadline, then reconnected).
    assert cut > MLLP_ABUSERS + HTTP_ABUSERS
    # Served at once, not once an abuser's deadline (3 s) has freed a place.
    assert max(during) < 2.0
