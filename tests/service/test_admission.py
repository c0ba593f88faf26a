"""Admission control: caps with fair shares, and deadlines that trickled bytes do not extend."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapter.service.admission import ConnectionTable, Limits, ReadDeadline, peer_address
from adapter.service.mllp import frame
from tests.mllp_support import Running, msa_code, oru, run_mllp

LIMITS = Limits(max_connections=4, max_per_source=3, frame_timeout=2.0, idle_timeout=10.0)


@dataclass(eq=False)
class FakeConnection:
    busy: bool = False
    evicted: bool = False

    def evict(self) -> None:
        self.evicted = True


def test_a_source_is_held_to_its_share() -> None:
    table: ConnectionTable[FakeConnection] = ConnectionTable(LIMITS, name="test")
    admitted = [table.admit("10.0.0.1", FakeConnection()) for _ in range(4)]
    assert admitted == [True, True, True, False]
    assert table.count("10.0.0.1") == 3


def test_a_newcomer_takes_the_oldest_idle_place_of_the_busiest_source() -> None:
    table: ConnectionTable[FakeConnection] = ConnectionTable(LIMITS, name="test")
    oldest, middle, newest = FakeConnection(busy=True), FakeConnection(), FakeConnection()
    for connection in (oldest, middle, newest):
        assert table.admit("10.0.0.1", connection)
    assert table.admit("10.0.0.2", FakeConnection())
    assert table.total == 4  # full
    engine = FakeConnection()
    assert table.admit("10.0.0.3", engine)
    assert (oldest.evicted, middle.evicted, newest.evicted) == (False, True, False)
    assert table.count("10.0.0.1") == 2
    table.release("10.0.0.1", middle)  # its own cleanup runs later: harmless
    assert table.total == 4


def test_no_eviction_that_would_only_move_the_unfairness() -> None:
    limits = Limits(max_connections=4, max_per_source=2, frame_timeout=1.0, idle_timeout=1.0)
    table: ConnectionTable[FakeConnection] = ConnectionTable(limits, name="test")
    held = [FakeConnection() for _ in range(4)]
    for index, connection in enumerate(held):
        assert table.admit(f"10.0.0.{index // 2}", connection)
    # Each source holds 2; a newcomer's source holding 1 would hold 2 after an eviction.
    assert table.admit("10.0.0.9", FakeConnection())  # holds 0: 2 > 0 + 1, so one goes
    assert sum(each.evicted for each in held) == 1
    assert not table.admit("10.0.0.9", FakeConnection())  # holds 1 now: refused
    assert sum(each.evicted for each in held) == 1


def test_only_busy_connections_left_means_refusal() -> None:
    table: ConnectionTable[FakeConnection] = ConnectionTable(LIMITS, name="test")
    for _ in range(3):
        assert table.admit("10.0.0.1", FakeConnection(busy=True))
    assert table.admit("10.0.0.2", FakeConnection(busy=True))
    assert not table.admit("10.0.0.3", FakeConnection())


def test_limits_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="max_per_source"):
        Limits(max_connections=2, max_per_source=3, frame_timeout=1.0, idle_timeout=1.0)
    with pytest.raises(ValueError, match="positive"):
        Limits(max_connections=2, max_per_source=1, frame_timeout=0.0, idle_timeout=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_trickle_does_not_move_the_frame_deadline() -> None:
    clock = Clock()
    deadline = ReadDeadline(LIMITS, clock)
    assert deadline.when == 110.0  # idle since connect
    clock.now = 101.0
    deadline.observe(in_frame=True, completed=0)  # the start block arrived
    assert (deadline.when, deadline.reason) == (103.0, "inside a frame")
    for _ in range(5):  # one byte a second, still inside the frame
        clock.now += 1.0
        deadline.observe(in_frame=True, completed=0)
    assert deadline.when == 103.0
    deadline.observe(in_frame=False, completed=1)
    assert (deadline.when, deadline.reason) == (clock.now + 10.0, "idle")


def test_bytes_outside_a_frame_are_not_activity() -> None:
    clock = Clock()
    deadline = ReadDeadline(LIMITS, clock)
    clock.now = 105.0
    deadline.observe(in_frame=False, completed=0)  # garbage, or a bare CR
    assert deadline.when == 110.0


def test_a_frame_begun_with_the_end_of_another_gets_its_own_deadline() -> None:
    clock = Clock()
    deadline = ReadDeadline(LIMITS, clock)
    deadline.observe(in_frame=True, completed=0)
    clock.now = 101.5
    deadline.observe(in_frame=True, completed=1)
    assert deadline.when == 103.5


def test_peer_address_is_the_host_alone() -> None:
    assert peer_address(("127.0.0.5", 51234)) == "127.0.0.5"
    assert peer_address(("::1", 2575, 0, 0)) == "::1"
    assert peer_address(None) == "unknown"


async def _connect_from(
    source: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


def test_a_trickling_sender_is_cut_at_its_frame_deadline(tmp_path: Path) -> None:
    """One byte every 0.1 s keeps a silence timeout waiting for ever; the deadline does not."""

    async def scenario(running: Running) -> float:
        reader, writer = await _connect_from("127.0.0.2", running.server.port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        data = frame(oru("trickle-1"))
        for byte in data[:-2]:
            writer.write(bytes([byte]))
            try:
                await writer.drain()
            except ConnectionError:
                break
            if reader.at_eof():
                break
            await asyncio.sleep(0.1)
            if await _closed(reader):
                break
        took = loop.time() - started
        writer.close()
        return took

    took = run_mllp(tmp_path, scenario, mllp_frame_timeout=1.0)
    # The frame would take ~50 s at this pace: it is cut at its 1 s deadline.
    assert 0.9 <= took < 5.0


async def _closed(reader: asyncio.StreamReader, *, wait: float = 0.001) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), wait) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def test_a_fresh_engine_is_served_while_one_source_holds_the_cap(tmp_path: Path) -> None:
    """Idle connections of a flooding source give way to a new source; the engine gets AA."""

    async def scenario(running: Running) -> tuple[str, int]:
        port = running.server.port
        flood = [await _connect_from("127.0.0.2", port) for _ in range(4)]
        await asyncio.sleep(0.1)  # all four admitted (the cap is 4, the source's share too)
        reader, writer = await _connect_from("127.0.0.3", port)
        writer.write(frame(oru("fair-1")))
        await writer.drain()
        ack = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 5)
        cut = 0
        for flood_reader, flood_writer in flood:
            cut += await _closed(flood_reader, wait=0.5)
            flood_writer.close()
        writer.close()
        return msa_code(ack.strip(b"\x0b\x1c\r")), cut

    code, cut = run_mllp(tmp_path, scenario, mllp_max_connections=4, mllp_max_per_source=4)
    assert code == "AA"
    assert cut == 1
