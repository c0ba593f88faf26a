"""Validated mapping directories kept between runs, the way Python keeps a module's bytecode.

Reading, validating and merging the shipped mapping files, with pydantic building the files'
schema first, was about 150 M instructions of the 1,271 M of a cold one-message ``convert``
(docs/performance.md). What ``Mappings.load`` made of a directory is pickled under a key of
every file's path and bytes and of the code that reads them (this module, ``adapter/mapping.py``,
``adapter/model.py``, the pydantic, pydantic-core and Python versions): any change to a file or
to that code gives another key, so an entry is never read for anything but what made it.
Only a directory that loaded is kept: a bad file fails as it did, at every start.

A pickle runs code when it is loaded, so an entry is read only from a directory and file the
user owns and no one else may write. Anything wrong with the cache (no home, a read-only or
foreign directory, a truncated or corrupt entry) means the files are loaded as without it.
``PYTHONDONTWRITEBYTECODE`` stops new entries being written, as it does for bytecode.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapter.mapping import Mappings

KEPT_ENTRIES = 8
"""Entries kept (the most recently used): one per mapping directory and build in use."""

_MAGIC = b"her2-adapter mappings 1\n"
_PREFIX = "mappings-"
_SUFFIX = ".pickle"


def cache_dir() -> Path | None:
    """``$XDG_CACHE_HOME/her2-adapter``, or ``~/.cache/her2-adapter``; None without a home."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG rule: a relative value is ignored
        try:
            base = str(Path.home() / ".cache")
        except (RuntimeError, KeyError):  # no home directory known for this user
            return None
    return Path(base) / "her2-adapter"


@cache
def _code_version() -> bytes:
    """What the pickled objects are made of: the modules that define and build them."""
    import pydantic
    import pydantic_core

    from adapter import mapping, model

    digest = hashlib.sha256()
    for module_file in (__file__, mapping.__file__, model.__file__):
        digest.update(Path(module_file).read_bytes() + b"\0")
    versions = (sys.implementation.cache_tag, pydantic.VERSION, pydantic_core.__version__)
    digest.update(repr((versions, pickle.HIGHEST_PROTOCOL)).encode())
    return digest.digest()


def _entry(content: bytes) -> Path | None:
    directory = cache_dir()
    if directory is None:
        return None
    try:
        key = hashlib.sha256(_code_version() + content).hexdigest()[:32]
    except OSError:  # the sources are not there to be read (a frozen build)
        return None
    return directory / f"{_PREFIX}{key}{_SUFFIX}"


def _private(status: os.stat_result) -> bool:
    """Owned by this user, and no one else may write it."""
    return status.st_uid == os.geteuid() and not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def read(content: bytes) -> Mappings | None:
    """The mappings cached for files whose digest is ``content``, or None."""
    from adapter.mapping import Mappings

    path = _entry(content)
    if path is None:
        return None
    try:
        if not _private(path.parent.stat()):
            return None
        with path.open("rb") as file:
            if not _private(os.fstat(file.fileno())):
                return None
            data = file.read()
        os.utime(path)  # recently used: kept by the pruning
    except OSError:  # no entry yet, or one that cannot be read
        return None
    checksum, payload = data[len(_MAGIC) : len(_MAGIC) + 32], data[len(_MAGIC) + 32 :]
    if not data.startswith(_MAGIC) or hashlib.sha256(payload).digest() != checksum:
        return None
    try:
        loaded = pickle.loads(payload)
    except Exception:  # noqa: BLE001 - a damaged entry is a cache miss, whatever it raises
        return None
    return loaded if isinstance(loaded, Mappings) else None


def write(content: bytes, mappings: Mappings) -> None:
    """Keep ``mappings`` for files whose digest is ``content``; quietly not, if it cannot be."""
    if sys.dont_write_bytecode:
        return
    path = _entry(content)
    if path is None:
        return
    payload = pickle.dumps(mappings, protocol=pickle.HIGHEST_PROTOCOL)
    data = _MAGIC + hashlib.sha256(payload).digest() + payload
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(path.parent.stat()):
            return
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
            os.replace(temporary, path)  # readers see the whole entry or none
        finally:
            temporary.unlink(missing_ok=True)
        _prune(path.parent)
    except OSError:
        return


def _prune(directory: Path) -> None:
    """Keep the ``KEPT_ENTRIES`` most recently used entries."""
    entries = []
    for entry in directory.glob(f"{_PREFIX}*{_SUFFIX}"):
        try:
            entries.append((entry.stat().st_mtime, entry))
        except OSError:  # removed by another process meanwhile
            continue
    for _, old in sorted(entries, reverse=True)[KEPT_ENTRIES:]:
        old.unlink(missing_ok=True)
