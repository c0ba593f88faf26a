"""The Node test peers in tests/peers (Medplum's validator and FHIR engine), for the Python tests.

``.ci/run`` installs them (``npm ci --prefix tests/peers`` and ``fetch-packages.sh``). A checkout
without them skips the tests that need them, except in CI (``CI=true``), where a missing peer is
a failure: CI must never pass by skipping its validators.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

PEERS = Path(__file__).resolve().parent / "peers"
NODE_FLAGS = ("--experimental-websocket",)  # @medplum/core defines a WebSocket client at import


def require_peers() -> str:
    """The node executable, once the peers are installed; skips (fails in CI) otherwise."""
    node = shutil.which("node")
    installed = (PEERS / "node_modules" / "@medplum" / "core").is_dir() and (
        PEERS / "packages" / "hl7.fhir.us.mcode" / "package"
    ).is_dir()
    if node is None or not installed:
        reason = "Node test peers missing: see tests/peers/README.md"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return node


def medplum_validate(*paths: Path) -> list[dict[str, Any]]:
    """A verdict per resource (and claimed profile) of each file, from tests/peers/validate.mjs."""
    node = require_peers()
    done = subprocess.run(
        [node, *NODE_FLAGS, str(PEERS / "validate.mjs"), *map(str, paths)],
        capture_output=True,
        check=True,
        text=True,
        timeout=240,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def errors(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    return [issue for issue in verdict["issues"] if issue["severity"] in ("error", "fatal")]


@contextmanager
def medplum_server(log: Path) -> Iterator[str]:
    """Medplum's FHIR engine (tests/peers/fhir-server.mjs) on a free loopback port: its base URL."""
    node = require_peers()
    with log.open("wb") as errors_log:
        server = subprocess.Popen(
            [node, *NODE_FLAGS, str(PEERS / "fhir-server.mjs"), "0"],
            stdout=subprocess.PIPE,
            stderr=errors_log,
        )
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], 60)
        line = server.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("http://127.0.0.1:"):
            reason = log.read_text(errors="replace")[-2000:]
            pytest.fail(f"the Medplum shim did not start: {reason}")
        yield line
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()
