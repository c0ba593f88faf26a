"""The validated mappings kept between runs (adapter/mapping_cache.py) are only ever what the
files and the code would load to now: a changed file, changed code or a damaged, foreign or
unwritable cache each mean the files are read and validated again."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from adapter import mapping, mapping_cache
from adapter.config import default_mappings_dir
from adapter.errors import MappingFileError
from adapter.mapping import Mappings


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty cache of this test's own, written even when bytecode is not."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    return tmp_path / "cache" / "her2-adapter"


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """A copy of the shipped mappings, to change."""
    return Path(shutil.copytree(default_mappings_dir(), tmp_path / "mappings"))


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files validated from here on (not those read back from the cache)."""
    seen: list[Path] = []
    load_file = mapping.load_file

    def counting(path: Path) -> mapping.MappingFile:
        seen.append(path)
        return load_file(path)

    monkeypatch.setattr(mapping, "load_file", counting)
    return seen


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("mappings-*.pickle"))


def _same(first: Mappings, second: Mappings) -> None:
    assert first.version == second.version
    assert first.files == second.files
    assert first.default == second.default
    assert first.warnings() == second.warnings()
    for sender in ("COPATH", "LAB A"):
        assert first.for_hl7_sender(sender, sender) == second.for_hl7_sender(sender, sender)


def test_a_second_load_reads_back_what_the_first_validated(
    cache: Path, shipped: Path, validations: list[Path]
) -> None:
    """The same files load once; the next start gets an equal object without reading them."""
    first = Mappings.load(shipped)
    assert validations
    assert len(_entries(cache)) == 1
    validations.clear()
    second = Mappings.load(shipped)
    assert validations == []
    assert second is not first
    _same(first, second)


def test_a_changed_file_is_validated_again(
    cache: Path, shipped: Path, validations: list[Path]
) -> None:
    """One byte more in any file is another entry: the change is seen at once."""
    Mappings.load(shipped)
    validations.clear()
    file = shipped / "zz-units.toml"
    file.write_text('[units]\n"per cent" = "%"\n')
    changed = Mappings.load(shipped)
    assert file in validations
    assert changed.default.unit_for("Per  Cent") == "%"
    assert len(_entries(cache)) == 2


def test_a_bad_file_fails_every_time(cache: Path, shipped: Path) -> None:
    """Only a directory that loaded is kept: a bad file is an error at every start."""
    (shipped / "zz-bad.toml").write_text("[[codes]]\nsystem = 'x'\n")
    for _ in range(2):
        with pytest.raises(MappingFileError, match=r"zz-bad\.toml"):
            Mappings.load(shipped)
    assert _entries(cache) == []


def test_other_code_does_not_read_the_entry(
    cache: Path, shipped: Path, validations: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key holds the code that made the objects: another build validates again."""
    Mappings.load(shipped)
    validations.clear()
    monkeypatch.setattr(mapping_cache, "_code_version", lambda: b"another build")
    Mappings.load(shipped)
    assert validations


@pytest.mark.parametrize("damage", ["truncated", "one-byte-changed", "empty"])
def test_a_damaged_entry_is_loaded_again_and_replaced(
    cache: Path, shipped: Path, validations: list[Path], damage: str
) -> None:
    """A damaged entry is never unpickled: the files are validated and the entry written anew."""
    first = Mappings.load(shipped)
    (entry,) = _entries(cache)
    data = entry.read_bytes()
    damaged = {
        "truncated": data[: len(data) // 2],
        "one-byte-changed": data[:-10] + bytes([data[-10] ^ 1]) + data[-9:],
        "empty": b"",
    }[damage]
    entry.write_bytes(damaged)
    validations.clear()
    again = Mappings.load(shipped)
    assert validations
    _same(first, again)
    validations.clear()
    Mappings.load(shipped)
    assert validations == []


def test_an_entry_others_may_write_is_not_read(
    cache: Path, shipped: Path, validations: list[Path]
) -> None:
    """A pickle runs code when loaded: an entry or directory others may write is ignored."""
    Mappings.load(shipped)
    (entry,) = _entries(cache)
    for path, mode in ((entry, 0o666), (cache, 0o777)):
        original = path.stat().st_mode & 0o777
        path.chmod(mode)
        validations.clear()
        Mappings.load(shipped)
        assert validations, path
        path.chmod(original)


def test_an_unwritable_cache_only_costs_the_validation(
    cache: Path, shipped: Path, validations: list[Path]
) -> None:
    """No cache directory can be made (a file stands in its way): each load validates."""
    cache.parent.write_text("not a directory")
    Mappings.load(shipped)
    validations.clear()
    Mappings.load(shipped)
    assert validations


def test_no_entry_is_written_without_bytecode(
    cache: Path, shipped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PYTHONDONTWRITEBYTECODE stops the mappings' cache being written too."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    Mappings.load(shipped)
    assert not cache.exists() or _entries(cache) == []


def test_old_entries_are_pruned(cache: Path, shipped: Path) -> None:
    """At most KEPT_ENTRIES entries: the least recently used go."""
    file = sorted(shipped.glob("*.toml"))[0]
    text = file.read_text()
    for number in range(mapping_cache.KEPT_ENTRIES + 3):
        file.write_text(f"{text}\n# edit {number}\n")
        Mappings.load(shipped)
    assert len(_entries(cache)) == mapping_cache.KEPT_ENTRIES
