"""Input files as ``convert`` and ``replay`` take them: files, folders, globs, stdin, compressed.

A user names what to read; this module turns the names into files (up front, so that a typo fails
before anything is written) and each file into bytes. gzip, bzip2 and xz files are recognised by
their first bytes, not their names, and read decompressed; a zip archive, which may hold many
files, is named so the user can unpack it. Problems a user can fix are ``InputFileError``: the CLI
prints them as one line and exits 2.
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Final

STDIN = "-"

# (magic bytes, name for messages, module whose open() reads it as a stream: multi-member files,
# and stopping where asked, so that a bomb is not unpacked whole)
_COMPRESSED: tuple[tuple[bytes, str, str], ...] = (
    (b"\x1f\x8b", "gzip", "gzip"),
    (b"BZh", "bzip2", "bz2"),
    (b"\xfd7zXZ\x00", "xz", "lzma"),
)
DECOMPRESSED_RATIO: Final = 200
"""Lab traffic packs 9 to 11 times (the fixtures: gzip, bzip2, xz); a file that unpacks to 200
times its size is a decompression bomb, or a test file of one message repeated."""
DECOMPRESSED_FLOOR: Final = 256 * 1024 * 1024
"""Up to this nothing is refused, whatever the ratio: it fits in memory anywhere we run."""
_ARCHIVES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
)


class InputFileError(ValueError):
    """A named input that cannot be read as given (missing, unreadable, an archive)."""


def expand_paths(sources: Sequence[str]) -> Iterator[str]:
    """Files named, files under folders (sorted, hidden skipped), glob matches (sorted), ``-``."""
    for source in sources:
        path = Path(source)
        if source == STDIN or path.is_file():
            yield source
        elif path.is_dir():
            yield from _files_under(path)
        else:
            matches = sorted(glob.glob(source, recursive=True))
            if not matches:
                reason = "no such file or folder" if not glob.has_magic(source) else "no match"
                raise InputFileError(f"cannot read {source}: {reason}")
            for match in matches:
                found = Path(match)
                yield from [match] if found.is_file() else _files_under(found)


def _files_under(folder: Path) -> Iterator[str]:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            yield str(path)


def read_input(source: str) -> bytes:
    """The bytes of a file (or of stdin for ``-``), decompressed when compressed."""
    try:
        data = sys.stdin.buffer.read() if source == STDIN else Path(source).read_bytes()
    except IsADirectoryError:
        raise InputFileError(f"cannot read {source}: is a folder") from None
    except OSError as error:
        raise InputFileError(f"cannot read {source}: {error.strerror or error}") from None
    return decompressed(data, source)


def decompressed(data: bytes, source: str) -> bytes:
    """``data`` itself, or its content when it starts like a gzip, bzip2 or xz file."""
    for magic, name, module in _COMPRESSED:
        if data.startswith(magic):
            return _decompress(data, source, name, module)
    for magic, what in _ARCHIVES:
        if data.startswith(magic):
            raise InputFileError(
                f"cannot read {source}: it is {what}; unpack it first "
                "(gzip, bzip2 and xz files are read as they are)"
            )
    return data


def _decompress(data: bytes, source: str, name: str, module: str) -> bytes:
    import importlib  # the decompressors load only for compressed input
    import io

    codec = importlib.import_module(module)
    opener: Callable[[io.BytesIO], BinaryIO] = codec.open
    # gzip and bz2 raise OSError or EOFError for damaged input, lzma its own LZMAError.
    damaged = (OSError, EOFError, getattr(codec, "LZMAError", OSError))
    limit = max(DECOMPRESSED_FLOOR, DECOMPRESSED_RATIO * len(data))
    try:
        with opener(io.BytesIO(data)) as stream:
            content = stream.read(limit + 1)  # streamed: a bomb stops at the limit
    except damaged as error:
        raise InputFileError(
            f"cannot read {source}: a damaged or truncated {name} file ({type(error).__name__})"
        ) from None
    if len(content) > limit:
        raise InputFileError(
            f"cannot read {source}: the {name} file unpacks to more than {limit} bytes "
            f"({DECOMPRESSED_RATIO} times its size); unpack it yourself if it is genuine"
        )
    return content
