"""deploy/her2-adapter.service: its ExecStart line serves with a config file and workers."""

from __future__ import annotations

import asyncio
import configparser
import os
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mllp_support import LOOPBACK, msa_code, oru

from adapter.service.mllp_client import MllpClient
from adapter.store import MessageStatus, open_store

pytestmark = pytest.mark.timeout(120)

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "her2-adapter.service"
INSTALLED_BIN = "/opt/her2-adapter/.venv/bin/"
"""Where the unit expects the installation; the test runs this checkout's instead."""


def unit_command() -> list[str]:
    """ExecStart of the shipped unit, split as systemd splits it."""
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are cased
    unit.read(UNIT)
    return shlex.split(unit["Service"]["ExecStart"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_unit_runs_serve_with_a_config_file() -> None:
    """The unit starts the installed console script with --config, nothing else hidden."""
    command = unit_command()
    assert command[0] == f"{INSTALLED_BIN}her2-adapter"
    assert command[1:3] == ["serve", "--config"]


def test_the_units_command_line_serves_with_workers(tmp_path: Path) -> None:
    """That exact command line, with a config file asking for a worker, serves MLLP and HTTP."""
    command = unit_command()
    config_index = command.index("--config") + 1
    script = Path(sys.executable).parent / "her2-adapter"
    command[0] = str(script)  # this checkout's installation in place of /opt/her2-adapter
    mllp_port, http_port = free_port(), free_port()
    config = tmp_path / "her2.toml"
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    config.write_text(
        f'host = "{LOOPBACK}"\nmllp_port = {mllp_port}\nhttp_port = {http_port}\n'
        f'store = "{store_url}"\nworkers = 1\n'
    )
    command[config_index] = str(config)
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("HER2_")}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=log
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert line.startswith(f"her2-adapter listening: mllp {LOOPBACK}:{mllp_port}"), (
            line,
            (tmp_path / "serve.log").read_text(),
        )

        async def send() -> bytes:
            client = await MllpClient.connect(LOOPBACK, mllp_port)
            try:
                (ack,) = await client.send(oru("unit-1"))
            finally:
                await client.close()
            return ack

        assert msa_code(asyncio.run(send())) == "AA"
        health = httpx.get(f"http://{LOOPBACK}:{http_port}/healthz", timeout=10)
        assert health.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        log.close()
    assert "Can't pickle" not in (tmp_path / "serve.log").read_text()
    with open_store(store_url) as store:
        row = store.get_message("unit-1")
        assert row is not None
        assert row.status is MessageStatus.PROCESSED
