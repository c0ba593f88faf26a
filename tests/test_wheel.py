"""The production route (docs/install.md): the built wheel in a clean venv, run from elsewhere.

Builds the wheel as a user would (``pip wheel .``), installs it into a new venv, and from a
directory outside the checkout runs ``convert`` and ``serve`` and checks that the active mappings
are exactly the shipped defaults: no example and no sender file of the checkout is active.
About a minute, most of it pip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from adapter import __version__, api
from adapter.config import PROJECT_MAPPINGS

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "fixtures" / "hl7v2" / "ihc3-positive.hl7"
EXLAB = ROOT / "fixtures" / "hl7v2" / "exlab-sp-ge6.hl7"
EXAMPLE_SENDER = PROJECT_MAPPINGS / "examples" / "senders" / "example-lab.toml"
EXAMPLES = PROJECT_MAPPINGS / "examples" / "senders"
LANGUAGES = PROJECT_MAPPINGS / "languages"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the checkout in which a lab's sender file sits."""
    where = tmp_path_factory.mktemp("wheel")
    source = where / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("adapter", "mappings"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "mappings" / "senders").mkdir(exist_ok=True)
    shutil.copy(EXAMPLE_SENDER, source / "mappings" / "senders" / "our-lab.toml")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--wheel-dir", str(where / "dist"), str(source)],
        check=True,
        timeout=300,
    )
    (built,) = (where / "dist").glob("her2_adapter-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin/`` of a fresh venv holding only the wheel and its dependencies."""
    target = tmp_path_factory.mktemp("venv")
    venv.create(target, with_pip=True)
    subprocess.run(
        [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        timeout=600,
    )
    return target / "bin"


def test_wheel_holds_the_defaults_and_the_examples_only(wheel: Path) -> None:
    """A sender file in the checkout's mappings/senders/ never ships; the examples do, inactive."""
    assert wheel.name == f"her2_adapter-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as packed:
        shipped = sorted(n for n in packed.namelist() if n.startswith("adapter/_mappings/"))
    defaults = sorted(f"adapter/_mappings/{p.name}" for p in PROJECT_MAPPINGS.glob("*.toml"))
    languages = [f"adapter/_mappings/languages/{p.name}" for p in LANGUAGES.glob("*.toml")]
    examples = [f"adapter/_mappings/examples/senders/{p.name}" for p in EXAMPLES.glob("*.toml")]
    assert shipped == sorted([*defaults, *languages, *examples])


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory with no mappings/, adapter/ or pyproject.toml in it."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    return work


def _run(
    bin_dir: Path, cwd: Path, *args: str, **options: object
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HER2_")}
    return subprocess.run(
        [str(bin_dir / "her2-adapter"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **options,  # type: ignore[arg-type]
    )


def test_version(installed: Path, elsewhere: Path) -> None:
    done = _run(installed, elsewhere, "--version")
    assert done.stdout.strip() == f"her2-adapter {__version__}"


def test_only_the_shipped_mappings_are_active(installed: Path, elsewhere: Path) -> None:
    done = _run(installed, elsewhere, "mappings", "check")
    assert done.returncode == 0, done.stderr
    checked = [Path(line.removeprefix("ok  ")) for line in done.stdout.splitlines()]
    defaults = sorted(p.name for p in PROJECT_MAPPINGS.glob("*.toml"))
    languages = sorted(p.name for p in LANGUAGES.glob("*.toml"))  # apply only where named
    assert [p.name for p in checked] == [*defaults, *languages]
    assert all("_mappings" in p.parts and "site-packages" in p.parts for p in checked)
    assert {p.parent.name for p in checked[len(defaults) :]} <= {"languages"}
    packaged = checked[0].parent
    assert not (packaged / "senders").exists()
    assert (packaged / "examples" / "senders" / "example-lab.toml").is_file()  # shipped, inactive


def test_convert_from_another_directory(installed: Path, elsewhere: Path) -> None:
    """The installed convert gives the checkout's bytes; the example lab's codes are not mapped:
    its 'HER2 IHC score' is read from the display only (code-inferred), its single-probe copies
    code is not used (a quantity is never inferred)."""
    done = _run(installed, elsewhere, "convert", str(GOOD))
    assert done.returncode == 0, done.stderr
    assert done.stdout.encode() == (api.convert(GOOD.read_bytes()).bundle_json or b"") + b"\n"
    exlab = _run(installed, elsewhere, "convert", str(EXLAB))
    assert exlab.returncode == 0, exlab.stderr
    assert '"code":"code-inferred"' in exlab.stdout
    assert "HER2SP" in exlab.stdout
    assert "not used" in exlab.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_from_another_directory(installed: Path, elsewhere: Path) -> None:
    """serve starts with the packaged mappings, answers a message, and stops cleanly on SIGTERM."""
    http_port, mllp_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HER2_")}
    env |= {"HER2_WORKERS": "0", "HER2_LOG_FORMAT": "json"}
    ports = ["--http-port", str(http_port), "--mllp-port", str(mllp_port)]
    with subprocess.Popen(
        [str(installed / "her2-adapter"), "serve", *ports],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as serve:
        try:
            assert serve.stdout is not None
            ready = serve.stdout.readline()
            assert ready.startswith("her2-adapter listening:"), ready
            answer = httpx.post(
                f"http://127.0.0.1:{http_port}/hl7v2",
                content=GOOD.read_bytes(),
                headers={"Content-Type": "x-application/hl7-v2+er7"},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json() == api.convert(GOOD.read_bytes()).bundle
            assert (elsewhere / "her2-adapter.db").is_file()  # the default store, in the cwd
        finally:
            serve.send_signal(signal.SIGTERM)
            _, stderr = serve.communicate(timeout=60)
    assert serve.returncode == 0, stderr
    events = [json.loads(line) for line in stderr.splitlines()]
    assert events, "serve logs its start and stop"
    assert {"time", "level", "logger", "event"} <= set(events[0])
