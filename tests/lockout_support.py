"""The abusers of tests/service/test_lockout.py, run as a process of their own.

``python tests/lockout_support.py MLLP_PORT HTTP_PORT SECONDS`` attacks for that long and prints
how many of its connections the service cut off (refused, evicted, or closed at a deadline).
"""

from __future__ import annotations

import asyncio
import resource
import sys

import pytest
from mllp_support import LOOPBACK, oru

from adapter.service.mllp import frame

MLLP_ABUSERS = 300
HTTP_ABUSERS = 1100
ABUSER_SOURCES = 10  # 127.0.1.x: each source's share is capped, the sum is over the global cap
ATTACK_SECONDS = 12.0
PACE = 1.0  # seconds between two bytes, and before a reconnection (the audit's pace)


def descriptors_for_the_test() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = MLLP_ABUSERS + HTTP_ABUSERS + 500
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"the test process needs {needed} descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class Tally:
    def __init__(self) -> None:
        self.cut = 0  # connections the service closed or refused
        self.stop = False


async def trickle_mllp(port: int, source: str, tally: Tally) -> None:
    """Connect, trickle a frame one byte a second; reconnect when cut."""
    data = frame(oru("abuse"))
    while not tally.stop:
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, port, local_addr=(source, 0))
        except OSError:
            tally.cut += 1
            await asyncio.sleep(PACE)
            continue
        try:
            for byte in data[:-2]:
                if tally.stop or reader.at_eof():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(PACE)
        except (ConnectionError, OSError):
            pass
        tally.cut += not tally.stop
        writer.close()
        await asyncio.sleep(PACE)


async def slow_upload(port: int, source: str, tally: Tally) -> None:
    """Headers at once, then a 100 kB body one byte a second; reconnect when cut."""
    head = (
        b"POST /hl7v2 HTTP/1.1\r\nhost: adapter\r\ncontent-type: text/plain\r\n"
        b"content-length: 100000\r\n\r\n"
    )
    while not tally.stop:
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, port, local_addr=(source, 0))
        except OSError:
            tally.cut += 1
            await asyncio.sleep(PACE)
            continue
        try:
            writer.write(head)
            while not tally.stop and not reader.at_eof():
                await writer.drain()
                writer.write(b"M")
                await asyncio.sleep(PACE)
        except (ConnectionError, OSError):
            pass
        tally.cut += not tally.stop
        writer.close()
        await asyncio.sleep(PACE)


async def _attack(mllp_port: int, http_port: int, seconds: float) -> int:
    tally = Tally()
    sources = [f"127.0.1.{n + 1}" for n in range(ABUSER_SOURCES)]
    attackers = [
        asyncio.create_task(trickle_mllp(mllp_port, sources[n % len(sources)], tally))
        for n in range(MLLP_ABUSERS)
    ] + [
        asyncio.create_task(slow_upload(http_port, sources[n % len(sources)], tally))
        for n in range(HTTP_ABUSERS)
    ]
    await asyncio.sleep(seconds)
    tally.stop = True
    await asyncio.wait_for(asyncio.gather(*attackers), 30)
    return tally.cut


def attack(mllp_port: int, http_port: int, seconds: float) -> None:
    """The abusers, in a process of their own: their load is not the good sender's."""
    descriptors_for_the_test()
    print(asyncio.run(_attack(mllp_port, http_port, seconds)), flush=True)


if __name__ == "__main__":
    attack(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
