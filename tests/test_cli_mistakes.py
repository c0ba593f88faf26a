"""Each mistake a user can make with ``convert``: one clear stderr line, the documented exit code.

Exit codes (adapter/cli.py, docs/cli.md): 1 input rejected, one ``file: id: CODE: reason`` line
per message; 2 usage, one ``her2-adapter: ...`` line. Never a traceback.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapter.cli import app

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hl7v2"
GOOD = FIXTURES / "ihc3-positive.hl7"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _only_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_empty_file_is_rejected(runner: CliRunner, tmp_path: Path) -> None:
    empty = tmp_path / "empty.hl7"
    empty.write_bytes(b"")
    result = runner.invoke(app, ["convert", str(empty)])
    assert result.exit_code == 1
    assert _only_line(result.stderr) == f"{empty}: -: HL7-MALFORMED: no message in the input"
    assert result.stdout == ""


@pytest.mark.parametrize("data", [b"", b"\r\n\n  \n"], ids=["nothing", "blank-lines"])
def test_empty_stdin_is_rejected(runner: CliRunner, data: bytes) -> None:
    """``convert - </dev/null``: exit 1 with a line, not a silent 0."""
    result = runner.invoke(app, ["convert", "-"], input=data)
    assert result.exit_code == 1
    assert _only_line(result.stderr) == "-: -: HL7-MALFORMED: no message in the input"


def test_missing_file_fails_before_anything_is_written(runner: CliRunner, tmp_path: Path) -> None:
    """Every name is checked first: a typo in the second name writes no Bundle for the first."""
    missing = tmp_path / "missing.hl7"
    result = runner.invoke(app, ["convert", str(GOOD), str(missing)])
    assert result.exit_code == 2
    assert (
        _only_line(result.stderr) == f"her2-adapter: cannot read {missing}: no such file or folder"
    )
    assert result.stdout == ""


def test_glob_without_match(runner: CliRunner, tmp_path: Path) -> None:
    pattern = str(tmp_path / "*.hl7")
    result = runner.invoke(app, ["convert", pattern])
    assert result.exit_code == 2
    assert _only_line(result.stderr) == f"her2-adapter: cannot read {pattern}: no match"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(runner: CliRunner, tmp_path: Path) -> None:
    locked = tmp_path / "locked.hl7"
    shutil.copy(GOOD, locked)
    locked.chmod(0)
    result = runner.invoke(app, ["convert", str(locked)])
    assert result.exit_code == 2
    assert _only_line(result.stderr) == f"her2-adapter: cannot read {locked}: Permission denied"


def test_unreadable_file_whoever_runs_the_test(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same line when the operating system refuses the read (as it does for non-root)."""
    target = tmp_path / "locked.hl7"
    shutil.copy(GOOD, target)

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    result = runner.invoke(app, ["convert", str(target)])
    assert result.exit_code == 2
    assert _only_line(result.stderr) == f"her2-adapter: cannot read {target}: Permission denied"


def test_out_that_is_a_file(runner: CliRunner) -> None:
    """``--out /etc/passwd``: a line, no traceback, nothing overwritten."""
    before = Path("/etc/passwd").read_bytes()
    result = runner.invoke(app, ["convert", "--out", "/etc/passwd", str(GOOD)])
    assert result.exit_code == 2
    assert _only_line(result.stderr) == "her2-adapter: --out /etc/passwd: not a folder"
    assert Path("/etc/passwd").read_bytes() == before


def test_out_that_cannot_be_created(runner: CliRunner, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "bundles"
    result = runner.invoke(app, ["convert", "--out", str(out), str(GOOD)])
    assert result.exit_code == 2
    assert (
        _only_line(result.stderr)
        == f"her2-adapter: --out {out}: cannot create the folder: Not a directory"
    )


def test_out_where_a_file_cannot_be_written(runner: CliRunner, tmp_path: Path) -> None:
    """A Bundle's file name taken by a folder: the write fails with its path named."""
    out = tmp_path / "out"
    (out / "ihc3-positive.json").mkdir(parents=True)
    result = runner.invoke(app, ["convert", "--out", str(out), str(GOOD)])
    assert result.exit_code == 2
    assert (
        _only_line(result.stderr)
        == f"her2-adapter: cannot write {out / 'ihc3-positive.json'}: Is a directory"
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_stdout_that_cannot_be_written() -> None:
    """stdout on a full disk: a line and exit 2, not an 'Exception ignored' at exit."""
    import subprocess
    import sys

    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "adapter", "convert", str(GOOD)],
            stdout=full,
            stderr=subprocess.PIPE,
            check=False,
        )
    assert done.returncode == 2
    line = _only_line(done.stderr.decode())
    assert line == "her2-adapter: cannot write to stdout: No space left on device"


@pytest.mark.parametrize(
    ("suffix", "compress"),
    [(".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)],
    ids=["gzip", "bzip2", "xz"],
)
def test_compressed_files_are_read(
    runner: CliRunner, tmp_path: Path, suffix: str, compress: object
) -> None:
    """Recognised by their first bytes, so a renamed file is read too."""
    plain = runner.invoke(app, ["convert", str(GOOD)])
    packed = tmp_path / f"message{suffix}"
    packed.write_bytes(compress(GOOD.read_bytes()))  # type: ignore[operator]
    renamed = tmp_path / "message.hl7"
    shutil.copy(packed, renamed)
    for path in (packed, renamed):
        result = runner.invoke(app, ["convert", str(path)])
        assert result.exit_code == 0, result.stderr
        assert result.stdout == plain.stdout


def test_truncated_gzip_is_named(runner: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "cut.hl7.gz"
    broken.write_bytes(gzip.compress(GOOD.read_bytes())[:40])
    result = runner.invoke(app, ["convert", str(broken)])
    assert result.exit_code == 2
    assert _only_line(result.stderr) == (
        f"her2-adapter: cannot read {broken}: a damaged or truncated gzip file (EOFError)"
    )


@pytest.mark.parametrize(
    "compress", [gzip.compress, bz2.compress, lzma.compress], ids=["gzip", "bzip2", "xz"]
)
def test_decompression_bomb_is_refused(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compress: object
) -> None:
    """A file that unpacks beyond the floor and 200 times its size is named, not unpacked whole;
    the same file under the floor is read."""
    from adapter import inputs

    content = GOOD.read_bytes() + b" " * 3_000_000
    bomb = tmp_path / "bomb.hl7.gz"
    bomb.write_bytes(compress(content))  # type: ignore[operator]
    unpacked = len(content)
    assert unpacked > inputs.DECOMPRESSED_RATIO * bomb.stat().st_size
    monkeypatch.setattr(inputs, "DECOMPRESSED_FLOOR", unpacked - 1)
    limit = max(unpacked - 1, inputs.DECOMPRESSED_RATIO * bomb.stat().st_size)
    result = runner.invoke(app, ["convert", str(bomb)])
    assert result.exit_code == 2
    name = {"gzip": "gzip", "bz2": "bzip2", "lzma": "xz"}[compress.__module__]  # type: ignore[attr-defined]
    assert _only_line(result.stderr) == (
        f"her2-adapter: cannot read {bomb}: the {name} file unpacks to more than {limit} bytes "
        "(200 times its size); unpack it yourself if it is genuine"
    )
    monkeypatch.setattr(inputs, "DECOMPRESSED_FLOOR", unpacked)
    assert inputs.read_input(str(bomb)) == content


def test_zip_archive_is_named(runner: CliRunner, tmp_path: Path) -> None:
    archive = tmp_path / "messages.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        packed.write(GOOD, GOOD.name)
    result = runner.invoke(app, ["convert", str(archive)])
    assert result.exit_code == 2
    assert _only_line(result.stderr) == (
        f"her2-adapter: cannot read {archive}: it is a zip archive; unpack it first "
        "(gzip, bzip2 and xz files are read as they are)"
    )


def test_folder_is_read_like_replay_reads_it(runner: CliRunner, tmp_path: Path) -> None:
    """Files under a folder, sorted, hidden ones skipped; no 'Is a directory'."""
    folder = tmp_path / "inbox"
    (folder / "2024").mkdir(parents=True)
    shutil.copy(FIXTURES / "batch-3.hl7", folder / "a.hl7")
    (folder / "2024" / "b.hl7.gz").write_bytes(gzip.compress(GOOD.read_bytes()))
    (folder / ".hidden.hl7").write_bytes(b"not read")
    result = runner.invoke(app, ["convert", str(folder)])
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 4
    assert result.stderr == ""


def test_strict_names_segment_field_and_rule(runner: CliRunner) -> None:
    """Not 'ValueError at message': the field, its occurrence and the rule it breaks."""
    fixture = FIXTURES / "ish-g4-no-ihc.hl7"  # ORC-7 is empty, which v2.5.1 requires
    result = runner.invoke(app, ["convert", "--strict", str(fixture)])
    assert result.exit_code == 1
    assert _only_line(result.stderr) == (
        f"{fixture}: ish-g4-no-ihc: HL7-MALFORMED: structure check: rule 'required': "
        "field ORC-7 is empty at ORC[1].7"
    )


def test_strict_names_a_missing_segment(runner: CliRunner, tmp_path: Path) -> None:
    text = GOOD.read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    without_obr = b"\n".join(s for s in text.split(b"\n") if not s.startswith(b"OBR"))
    path = tmp_path / "no-obr.hl7"
    path.write_bytes(without_obr)
    result = runner.invoke(app, ["convert", "--strict", str(path)])
    assert result.exit_code == 1
    assert _only_line(result.stderr) == (
        f"{path}: ihc3-positive: HL7-MALFORMED: structure check: rule 'required': "
        "segment OBR is missing from ORDER_OBSERVATION at OBR"
    )


def test_unknown_log_level_and_format(runner: CliRunner) -> None:
    result = runner.invoke(app, ["convert", "--log-level", "loud", str(GOOD)])
    assert result.exit_code == 2
    assert _only_line(result.stderr) == (
        "her2-adapter: log level 'loud': use one of debug, info, warning, error"
    )
    result = runner.invoke(app, ["convert", "--log-format", "xml", str(GOOD)])
    assert result.exit_code == 2
    assert _only_line(result.stderr) == "her2-adapter: log format 'xml': use one of text, json"


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["convert"], "her2-adapter convert: Missing argument 'INPUT...'"),
        (
            ["convert", "--bogus", "x"],
            "her2-adapter convert: No such option: --bogus (Possible options: --jobs, --out)",
        ),
        (
            ["serve", "--workers", "many"],
            "her2-adapter serve: Invalid value for '--workers': Input should be a valid integer, "
            "unable to parse string as an integer",
        ),
        (["nosuch"], "her2-adapter: No such command 'nosuch'"),
    ],
    ids=["missing-input", "unknown-option", "bad-value", "unknown-command"],
)
def test_usage_mistakes_are_one_line(runner: CliRunner, argv: list[str], line: str) -> None:
    """typer's usage errors too: one line naming what to fix and where help is, exit 2."""
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    command = " ".join(["her2-adapter", *argv[:1]]) if argv[0] != "nosuch" else "her2-adapter"
    assert _only_line(result.stderr) == f"{line}; see {command} --help"


def test_bare_command_still_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert "convert" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("name", ["bad-version-2.1.hl7", "bad-adt-a01.hl7"])
def test_strict_keeps_unsupported_as_unsupported(runner: CliRunner, name: str) -> None:
    """--strict checks the structure of what we take; a version or type we do not take is
    HL7-UNSUPPORTED (ACK AR, condition 200), as without --strict."""
    path = FIXTURES / name
    plain = runner.invoke(app, ["convert", str(path)])
    strict = runner.invoke(app, ["convert", "--strict", str(path)])
    assert strict.exit_code == plain.exit_code == 1
    assert _only_line(strict.stderr) == _only_line(plain.stderr)
    assert ": HL7-UNSUPPORTED: " in strict.stderr


def test_replay_report_that_cannot_be_written(runner: CliRunner, tmp_path: Path) -> None:
    """replay's mistakes too: an unwritable --json is a line and exit 2, not a traceback."""
    target = "/etc/passwd/report.json"
    result = runner.invoke(
        app, ["replay", str(GOOD), "--expected", str(tmp_path / "expected"), "--json", target]
    )
    assert result.exit_code == 2
    assert _only_line(result.stderr) == (
        "her2-adapter: cannot write into /etc/passwd: it is a file, not a folder"
    )


def test_replay_off_a_terminal_writes_nothing_to_stderr(runner: CliRunner, tmp_path: Path) -> None:
    """No progress bar off a terminal, and not the blank line a hidden one used to leave."""
    expected = str(tmp_path / "expected")
    result = runner.invoke(app, ["replay", str(GOOD), "--expected", expected, "--record"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
