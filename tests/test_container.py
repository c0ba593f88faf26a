"""deploy/Dockerfile: what it promises (slim base, non-root, a volume, a health check, a CMD our
command line takes), checked on its text everywhere and by a real build where Docker runs.

The image's HEALTHCHECK command is also run for real, here, against ``her2-adapter serve``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.main import get_command

from adapter.cli import app
from adapter.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
GOOD = ROOT / "fixtures" / "hl7v2" / "ihc3-positive.hl7"


def _instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def _one(name: str) -> str:
    (value,) = [args for instruction, args in _final_stage() if instruction == name]
    return value


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in _final_stage():
        if instruction == "ENV":
            env.update(part.split("=", 1) for part in shlex.split(args))  # type: ignore[misc]
    return env


def _exec_form(args: str) -> list[str]:
    argv = json.loads(args)
    assert isinstance(argv, list), "exec form (a JSON list), so signals reach the service"
    return [str(part) for part in argv]


def test_runs_on_a_slim_python_of_a_supported_version() -> None:
    image = _final_stage()[0][1].split()[0]
    assert image.startswith("python:3.11-slim"), image  # requires-python >= 3.11


def test_runs_as_a_user_that_is_not_root() -> None:
    stage = _final_stage()
    names = [name for name, _ in stage]
    user = _one("USER")
    assert user not in {"root", "0"}
    assert not user.startswith("0:")
    created = [args for name, args in stage if name == "RUN" and "useradd" in args]
    assert created, "the user is created in the image"
    assert f" {user}" in created[0]
    assert "--uid 0 " not in created[0]
    assert names.index("USER") < names.index("CMD"), "USER comes before the command runs"
    assert all(name != "RUN" for name in names[names.index("USER") :]), "no RUN after USER"


def test_the_store_lives_on_the_volume() -> None:
    (volume,) = json.loads(_one("VOLUME"))
    store = _env()["HER2_STORE"]
    assert store.startswith("sqlite:///")
    assert Path(store.removeprefix("sqlite:///")).parent == Path(volume)
    assert _one("WORKDIR") == volume


def test_environment_names_settings_the_service_reads() -> None:
    """Each HER2_* variable is a setting or a logging option: a typo would be silently ignored."""
    env = _env()
    settings = {f"HER2_{name.upper()}" for name in Settings.model_fields}
    logging_options = {"HER2_LOG_LEVEL", "HER2_LOG_FORMAT"}
    unknown = {name for name in env if name.startswith("HER2_")} - settings - logging_options
    assert unknown == set()
    assert env["HER2_HOST"] == "0.0.0.0"  # reachable from outside the container
    assert env["HER2_LOG_FORMAT"] in ("text", "json")


def test_cmd_is_a_command_line_our_cli_takes() -> None:
    argv = _exec_form(_one("CMD"))
    assert argv[0] == "her2-adapter"
    group = get_command(app)
    context = group.make_context(argv[0], argv[1:])
    command = group.get_command(context, argv[1])  # type: ignore[attr-defined]
    assert command is not None, f"no command {argv[1]!r}"
    command.make_context(argv[1], argv[2:], parent=context)  # raises on an unknown option


def test_healthcheck_is_exec_form_and_bounded() -> None:
    check = _one("HEALTHCHECK")
    assert "--timeout=" in check
    assert "--interval=" in check
    _options, _, command = check.partition("CMD ")
    assert _exec_form(command)[0] == "python"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _healthcheck(port: int) -> int:
    """The image's HEALTHCHECK command, run here, with the service's port in its environment."""
    argv = _exec_form(_one("HEALTHCHECK").partition("CMD ")[2])
    argv[0] = sys.executable
    env = {**os.environ, "HER2_HTTP_PORT": str(port)}
    return subprocess.run(argv, env=env, capture_output=True, check=False, timeout=30).returncode


@pytest.fixture
def service(tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    env = {
        **os.environ,
        "HER2_HTTP_PORT": str(port),
        "HER2_MLLP_PORT": "0",
        "HER2_STORE": f"sqlite:///{tmp_path / 'store.db'}",
        "HER2_WORKERS": "0",
        "HER2_LOG_FORMAT": "json",  # as the image sets it
    }
    cli = Path(sys.executable).with_name("her2-adapter")
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [str(cli), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log
        )
        try:
            yield port
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_every_log_line_of_the_service_is_json(service: int, tmp_path: Path) -> None:
    """uvicorn's events too: a malformed HTTP request makes it warn, as one JSON line."""
    deadline = time.monotonic() + 60
    while _healthcheck(service) != 0:
        assert time.monotonic() < deadline, "the service never became healthy"
        time.sleep(0.5)
    with socket.create_connection(("127.0.0.1", service), timeout=10) as garbage:
        garbage.sendall(b"\x00\x01 not http at all\r\n\r\n")
        garbage.recv(1024)
    deadline = time.monotonic() + 30
    lines: list[str] = []
    while not any("uvicorn" in line for line in lines):
        assert time.monotonic() < deadline, f"uvicorn logged nothing: {lines}"
        time.sleep(0.2)
        lines = (tmp_path / "serve.log").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    (warning,) = [e for e in events if e["logger"].startswith("uvicorn")]
    assert warning["level"] == "warning"
    assert warning["event"] == "Invalid HTTP request received."


def test_healthcheck_passes_against_a_running_service_and_fails_without(service: int) -> None:
    deadline = time.monotonic() + 60
    while _healthcheck(service) != 0:
        assert time.monotonic() < deadline, "the service never became healthy"
        time.sleep(0.5)
    assert _healthcheck(_free_port()) != 0  # nothing listens there


def _docker_unavailable() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker command on this machine"
    info = subprocess.run([docker, "info"], capture_output=True, check=False, timeout=60)
    return None if info.returncode == 0 else "the docker command finds no running Docker engine"


@pytest.mark.slow
def test_image_builds_starts_healthy_and_converts(tmp_path: Path) -> None:
    """Where Docker runs: build, start with a volume, wait for healthy, POST a message."""
    reason = _docker_unavailable()
    if reason is not None:
        pytest.skip(f"{reason}: the image is checked on its text only")
    tag = f"her2-adapter-test:{os.getpid()}"
    docker = ["docker"]
    subprocess.run(
        [*docker, "build", "-f", str(DOCKERFILE), "-t", tag, str(ROOT)], check=True, timeout=900
    )
    name = f"her2-adapter-test-{os.getpid()}"
    try:
        subprocess.run(
            [*docker, "run", "-d", "--name", name, "-p", "127.0.0.1::8080", tag],
            check=True,
            timeout=120,
        )
        deadline = time.monotonic() + 120
        while True:
            state = subprocess.run(
                [*docker, "inspect", "-f", "{{.State.Health.Status}}", name],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            if state == "healthy":
                break
            assert state in ("starting", ""), state
            assert time.monotonic() < deadline, "the container never became healthy"
            time.sleep(2)
        user = subprocess.run(
            [*docker, "exec", name, "id", "-u"], capture_output=True, text=True, check=True
        )
        assert user.stdout.strip() != "0"
        mapped = subprocess.run(
            [*docker, "port", name, "8080"], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        import httpx

        answer = httpx.post(
            f"http://{mapped}/hl7v2",
            content=GOOD.read_bytes(),
            headers={"Content-Type": "x-application/hl7-v2+er7"},
            timeout=30,
        )
        assert answer.status_code == 200
        assert answer.json()["resourceType"] == "Bundle"
    finally:
        subprocess.run([*docker, "rm", "-f", name], capture_output=True, check=False)
        subprocess.run([*docker, "rmi", "-f", tag], capture_output=True, check=False)
