"""A SQLite store that stops taking writes under load, and takes them again, with no restart.

The PostgreSQL case (a privilege revoked) is ``test_store_recovery.py``; these are the faults a
file store meets, made real rather than simulated:

* **read-only**: the database and its write-ahead log made immutable (``chattr +i``, which
  binds root too). The open connection's next write fails (I/O error); the store reopens it,
  and the file opens read-only: every write after is refused as read-only, until the flag goes.
* **disk full**: the store on a small tmpfs of its own, filled by another file; freed by
  deleting it.

Both need root (CAP_LINUX_IMMUTABLE, CAP_SYS_ADMIN for the mount), as CI has; elsewhere they
skip and say why. Throughout, an engine sends one message after another and resends what gets
no answer. What is asserted: no ACK while the store fails (the engine resends), the service
keeps running, /healthz answers 503 naming the cause and 200 again after, the log names the
cause and no patient data, and every ACKed message is processed within seconds of the store's
return.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import httpx
import pytest
from store.test_store_recovery import LOOPBACK, Engine, _all_processed, free_port, health_until

from adapter.config import Settings
from adapter.service.server import RECOVERY_AGE, Listening, serve
from adapter.store.sqlite import MIN_FREE_BYTES

pytestmark = pytest.mark.timeout(120)

PATIENT_DATA = ("TST000178", "SP24-01078", "PLC1078")
"""What the engine's messages carry that is the patient's: never in a log line."""


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _immutable(paths: list[Path], on: bool) -> None:
    for path in paths:
        done = _run(["chattr", "+i" if on else "-i", str(path)])
        assert done.returncode == 0, done.stderr


def _needs_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root (CI runs as root)")


def _store_fails_and_returns(
    store_dir: Path,
    fail: Callable[[], None],
    mend: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
) -> tuple[str, int, float, list[str]]:
    """Run the service on a store in ``store_dir`` under load; ``fail`` it, then ``mend`` it.

    Returns /healthz's diagnostics while failing, the engine's unanswered sends during the
    fault, seconds from the mend until every ACKed message was processed, and the ACKed ids.
    """
    url = f"sqlite:///{store_dir / 'store.db'}"
    settings = Settings.load(mllp_port=free_port(), http_port=free_port(), workers=0, store=url)
    caplog.set_level(logging.INFO, logger="her2_adapter")

    async def main() -> tuple[str, int, float, list[str]]:
        stop = asyncio.Event()
        ready: asyncio.Future[Listening] = asyncio.get_running_loop().create_future()
        service = asyncio.create_task(
            serve(settings, stop=stop, handle_signals=False, on_ready=ready.set_result)
        )
        engine = Engine(settings.mllp_port)
        sending = asyncio.create_task(engine.run())
        try:
            await asyncio.wait_for(ready, 30)
            async with httpx.AsyncClient(
                base_url=f"http://{LOOPBACK}:{settings.http_port}"
            ) as http:
                await health_until(http, 200, 10)
                await engine.until_acked(20, 30)
                fail()
                refused = await health_until(http, 503, 10)
                unanswered, acked = engine.unanswered, len(engine.acked)
                # The engine keeps sending and resending; /healthz must not waver meanwhile
                # (a probe that needs no new space would pass between failed messages).
                answers: list[int] = []
                for _ in range(20):
                    answers.append((await http.get("/healthz")).status_code)
                    await asyncio.sleep(0.1)
                assert set(answers) == {503}, answers
                unanswered = engine.unanswered - unanswered
                acked_while_failing = len(engine.acked) - acked
                assert not service.done()  # the service keeps running
                mend()
                back = time.monotonic()
                await health_until(http, 200, 10)
                await engine.until_acked(len(engine.acked) + 20, 30)
                engine.stop = True
                await sending
                completed = await _all_processed(url, engine.acked, back, within=15)
            assert acked_while_failing <= 1, acked_while_failing  # one may have been in flight
            return refused.json()["issue"][0]["diagnostics"], unanswered, completed, engine.acked
        finally:
            engine.stop = True
            with suppress(Exception):
                await sending
            stop.set()
            await asyncio.wait_for(service, 30)

    return asyncio.run(main())


def _assert_logged_without_patient_data(caplog: pytest.LogCaptureFixture, cause: str) -> None:
    assert f"store unavailable: {cause}" in caplog.text
    assert "store available again" in caplog.text
    for value in PATIENT_DATA:
        assert value not in caplog.text


def test_a_store_made_read_only_then_writable_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _needs_root("chattr +i")
    scratch = tmp_path / "probe"
    scratch.touch()
    if _run(["chattr", "+i", str(scratch)]).returncode != 0:
        pytest.skip("the file system of tmp_path takes no immutable flag")
    _immutable([scratch], on=False)
    # Not the -shm file: it is mapped into memory, and a write to an immutable mapping is a
    # SIGBUS, not an error. A file system remounted read-only fails its writes as these do.
    files = [tmp_path / "store.db", tmp_path / "store.db-wal"]
    try:
        diagnostics, unanswered, completed, acked = _store_fails_and_returns(
            tmp_path,
            lambda: _immutable(files, on=True),
            lambda: _immutable(files, on=False),
            caplog,
        )
    finally:
        for path in files:
            _run(["chattr", "-i", str(path)])
    print(f"\nread-only: all ACKed messages processed {completed:.2f} s after the store came back")
    assert diagnostics == "the store does not take writes: read-only"
    assert unanswered >= 1  # sent while read-only: no ACK, and the engine sent it again
    # The first write on the open connection fails as an I/O error; reopened, read-only.
    _assert_logged_without_patient_data(caplog, "I/O error")
    assert completed < RECOVERY_AGE.total_seconds() / 4, completed
    assert len(acked) >= 40


def test_a_full_disk_then_freed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _needs_root("mounting a tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = _run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(disk)])
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    filler = disk / "filler"

    def fill() -> None:
        # Until the file system says no: what is left is less than a page.
        with filler.open("wb", buffering=0) as out, suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
        assert os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize < MIN_FREE_BYTES

    try:
        diagnostics, unanswered, completed, acked = _store_fails_and_returns(
            disk, fill, filler.unlink, caplog
        )
    finally:
        if _run(["umount", str(disk)]).returncode != 0:
            _run(["umount", "-l", str(disk)])
    print(f"\ndisk full: all ACKed messages processed {completed:.2f} s after space was freed")
    assert diagnostics == "the store does not take writes: disk full"
    assert unanswered >= 1
    _assert_logged_without_patient_data(caplog, "disk full")
    assert completed < RECOVERY_AGE.total_seconds() / 4, completed
    assert len(acked) >= 40
