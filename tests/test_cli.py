"""her2-adapter convert / mappings check, driven as a user would, through typer's runner."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mapping_support import example_mappings_dir
from typer.testing import CliRunner

from adapter import __version__
from adapter.cli import app

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hl7v2"
GOOD = str(FIXTURES / "ihc3-positive.hl7")
BATCH = str(FIXTURES / "batch-3.hl7")
BAD = str(FIXTURES / "bad-glucose-only.hl7")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_version(runner: CliRunner) -> None:
    """--version prints the package version."""
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_help_lists_the_commands(runner: CliRunner) -> None:
    """--help names every command a user can run."""
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("convert", "mappings"):
        assert command in result.stdout


def test_convert_writes_one_bundle_per_line(runner: CliRunner) -> None:
    """A batch of three messages gives three NDJSON Bundles on stdout and exit 0."""
    result = runner.invoke(app, ["convert", BATCH])
    assert result.exit_code == 0, result.stderr
    bundles = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(bundles) == 3
    assert {b["resourceType"] for b in bundles} == {"Bundle"}
    assert len({b["identifier"]["value"] for b in bundles}) == 3


def test_convert_reads_stdin(runner: CliRunner) -> None:
    """'-' reads the message from standard input."""
    result = runner.invoke(app, ["convert", "-"], input=Path(GOOD).read_bytes())
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["identifier"]["value"] == "ihc3-positive"


def test_convert_out_dir_names_files_by_message_id(runner: CliRunner, tmp_path: Path) -> None:
    """--out writes <MSH-10>.json per message, nothing on stdout."""
    result = runner.invoke(app, ["convert", GOOD, BATCH, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "ihc3-positive.json" in names
    assert len(names) == 4


def test_rejection_is_one_stderr_line_and_exit_1(runner: CliRunner) -> None:
    """A rejection is one line (file, control id, code, reason); the other files still convert."""
    result = runner.invoke(app, ["convert", BAD, GOOD])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{BAD}: bad-glucose-only: NO-HER2-RESULT: ")
    assert len(result.stdout.splitlines()) == 1


def test_unreadable_input_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    """A missing file is a usage error (exit 2), not a rejection."""
    result = runner.invoke(app, ["convert", str(tmp_path / "missing.hl7")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_unsplittable_input_is_rejected(runner: CliRunner, tmp_path: Path) -> None:
    """A file that is not HL7 at all gives one rejection line, not a traceback."""
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"hello\nworld\n")
    result = runner.invoke(app, ["convert", str(junk)])
    assert result.exit_code == 1
    assert "HL7-MALFORMED" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_and_strict_flags(runner: CliRunner) -> None:
    """--strict and --validate accept a well-formed message."""
    result = runner.invoke(app, ["convert", "--strict", "--validate", GOOD])
    assert result.exit_code == 0, result.stderr


def test_bad_mapping_directory_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    """--mappings pointing at a broken directory stops before converting anything."""
    result = runner.invoke(app, ["convert", GOOD, "--mappings", str(tmp_path)])
    assert result.exit_code == 2
    assert "MAPPING-INVALID" in result.stderr


def test_same_input_same_output(runner: CliRunner) -> None:
    """Two runs print byte-identical Bundles (no wall clock, no random ids)."""
    first = runner.invoke(app, ["convert", BATCH]).stdout_bytes
    second = runner.invoke(app, ["convert", BATCH]).stdout_bytes
    assert first == second


def test_fhir_source_option_selects_the_sender_mapping(runner: CliRunner) -> None:
    """--source names the FHIR sender, so its local codes are understood."""
    examples = ["--mappings", str(example_mappings_dir())]
    bundle = runner.invoke(app, ["convert", *examples, str(FIXTURES / "exlab-sp-ge6.hl7")]).stdout
    without = runner.invoke(app, ["convert", *examples, "-"], input=bundle)
    with_source = runner.invoke(
        app,
        ["convert", *examples, "-", "--source", "https://lis.example-pathology.org/fhir"],
        input=bundle,
    )
    assert with_source.exit_code == 0, with_source.stderr
    summary = json.loads(with_source.stdout)
    assert "HER2-positive" in json.dumps(summary)
    assert without.stdout != with_source.stdout


@pytest.fixture
def collector_state() -> Iterator[None]:
    """Whatever a test does to the garbage collector is undone after it."""
    was_enabled = gc.isenabled()
    yield
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("collector_state")
@pytest.mark.parametrize("enabled", [True, False], ids=["collector-on", "collector-off"])
def test_convert_leaves_the_garbage_collector_as_it_found_it(
    runner: CliRunner, enabled: bool
) -> None:
    """convert pauses the collector only while it loads the pipeline."""
    if enabled:
        gc.enable()
    else:
        gc.disable()
    result = runner.invoke(app, ["convert", GOOD])
    assert result.exit_code == 0, result.stderr
    assert gc.isenabled() is enabled


CONVERT_THEN_LIST_MODULES = """
import sys
from adapter.cli import app
try:
    app(["convert", sys.argv[1]])
except SystemExit:
    pass
print(*sorted(sys.modules), file=sys.stderr)
"""


def test_convert_loads_no_library_it_does_not_use() -> None:
    """Converting HL7 v2 loads none of pydantic-settings, hl7apy, fhir.resources and rich."""
    run = subprocess.run(
        [sys.executable, "-c", CONVERT_THEN_LIST_MODULES, GOOD],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(run.stdout)["resourceType"] == "Bundle"
    loaded = run.stderr.split()
    heavy = ("pydantic_settings", "hl7apy", "fhir.resources", "rich")
    assert [name for name in loaded if name.startswith(heavy)] == []


STDLIB = sys.stdlib_module_names


# What a one-message convert may import besides the standard library: typer (which imports
# pydantic to read its parameters, and annotated_doc and shellingham), pydantic for the settings
# and the mapping files, orjson for the Bundles. docs/performance.md "The cold start" lists them.
CONVERT_LIBRARIES = {
    "adapter",
    "annotated_doc",
    "annotated_types",
    "orjson",
    "pydantic",
    "pydantic_core",
    "shellingham",
    "typer",
    "typing_extensions",
    "typing_inspection",
}
# The parts of the adapter a conversion runs through; the service, the store, replay, the audit
# and the onboarding helpers load only with their own commands.
CONVERT_PARTS = {
    "api",
    "cases",
    "classify",
    "cli",
    "cli_help",
    "cli_jobs",
    "cli_progress",
    "config",
    "emit",
    "errors",
    "ingest",
    "inputs",
    "logs",
    "mapping",
    "mapping_cache",
    "model",
    "pipeline",
}


def test_convert_imports_only_what_it_lists(tmp_path: Path) -> None:
    """A second convert reads its mappings from the cache: it imports neither TOML nor more
    libraries and parts of the adapter than listed above (a new one must be added there)."""
    environment = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    for _ in range(2):  # the first run writes the mappings' cache entry
        run = subprocess.run(
            [sys.executable, "-c", CONVERT_THEN_LIST_MODULES, GOOD],
            capture_output=True,
            text=True,
            check=True,
            env=environment,
        )
    loaded = run.stderr.split()
    outside = {name.partition(".")[0] for name in loaded if name.partition(".")[0] not in STDLIB}
    # site hooks of the environment (setuptools' _distutils_hack), not imported by convert
    assert {name for name in outside if not name.startswith("_")} <= CONVERT_LIBRARIES
    parts = {name.split(".")[1] for name in loaded if name.startswith("adapter.")}
    assert parts <= CONVERT_PARTS
    assert "tomllib" not in loaded
