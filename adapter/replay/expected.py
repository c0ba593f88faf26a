"""Expected outcomes on disk, one JSON file per message key, and the comparison with a replay.

An expected file holds one of:

* the Bundle, exactly as the adapter emitted it (pretty-printed for review);
* ``{"error": {"code": ..., "reason": ..., "ack": "AE"}}`` for a message the adapter rejects
  (``ack`` only for HL7 v2), so a rejection that stays the same is "same";
* ``{"ack": "AA"}`` when it was recorded over MLLP, where only the ACK code is seen.

A Bundle implies the ACK ``AA``, so files recorded in-process also check an MLLP replay.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapter.replay.diff import DEFAULT_IGNORE, diff_json, dump_json, load_json


@dataclass(frozen=True)
class Observed:
    """What one replay of a message produced; ``failure`` when the replay itself failed."""

    bundle_json: bytes | None = None
    error_code: str | None = None
    error_reason: str | None = None
    ack: str | None = None  # MSA-1, when known
    failure: str | None = None  # unreadable source, refused connection, timeout ...

    def document(self) -> Any:
        """The expected-file form of this outcome (None when the replay failed)."""
        if self.bundle_json is not None:
            return load_json(self.bundle_json)
        if self.error_code is not None:
            error = {"code": self.error_code, "reason": self.error_reason or ""}
            return {"error": error | ({"ack": self.ack} if self.ack else {})}
        if self.ack is not None:
            return {"ack": self.ack}
        return None


def implied_ack(expected: Any) -> str | None:
    if not isinstance(expected, dict):
        return None
    if expected.get("resourceType") == "Bundle":
        return "AA"
    if isinstance(expected.get("error"), dict):
        ack = expected["error"].get("ack")
        return str(ack) if ack else None
    return str(expected["ack"]) if expected.get("ack") else None


def compare(expected: Any, observed: Observed, ignore: Sequence[str] = DEFAULT_IGNORE) -> list[str]:
    """Readable differences between an expected file and a replay; ``[]`` when the same."""
    kind = _kind(expected)
    if observed.bundle_json is not None:
        if kind == "bundle":
            return diff_json(expected, load_json(observed.bundle_json), ignore).lines()
        if kind == "error":
            return [f"outcome: error {_error_text(expected['error'])} -> Bundle"]
        return _ack_lines(implied_ack(expected), "AA")
    if observed.error_code is not None:
        if kind == "error":
            return _error_lines(expected["error"], observed)
        if kind == "bundle":
            reason = f": {observed.error_reason}" if observed.error_reason else ""
            return [f"outcome: Bundle -> error {observed.error_code}{reason}"]
        return _ack_lines(implied_ack(expected), observed.ack)
    return _ack_lines(implied_ack(expected), observed.ack)


def _kind(expected: Any) -> str:
    if isinstance(expected, dict) and expected.get("resourceType") == "Bundle":
        return "bundle"
    if isinstance(expected, dict) and isinstance(expected.get("error"), dict):
        return "error"
    return "ack"


def _error_text(error: dict[str, Any]) -> str:
    return f"{error.get('code')}: {error.get('reason', '')}"


def _error_lines(error: dict[str, Any], observed: Observed) -> list[str]:
    lines: list[str] = []
    if error.get("code") != observed.error_code:
        lines.append(f"error.code: {error.get('code')} -> {observed.error_code}")
    if observed.error_reason is not None and error.get("reason") != observed.error_reason:
        lines.append(f"error.reason: {error.get('reason')} -> {observed.error_reason}")
    if observed.ack is not None and error.get("ack") and error["ack"] != observed.ack:
        lines.append(f"ACK: {error['ack']} -> {observed.ack}")
    return lines


def _ack_lines(expected: str | None, observed: str | None) -> list[str]:
    if expected == observed:
        return []
    return [f"ACK: {expected or '(not recorded)'} -> {observed or '(none)'}"]


class ExpectedDir:
    """The folder of expected files; a file is written only when its content changes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def file(self, stem: str) -> Path:
        return self.path / f"{stem}.json"

    def load(self, stem: str) -> Any:
        """The expected document, or None when there is no file; ValueError when unreadable."""
        try:
            data = self.file(stem).read_bytes()
        except FileNotFoundError:
            return None
        return load_json(data)

    def write(self, stem: str, document: Any) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.file(stem).write_bytes(dump_json(document, pretty=True) + b"\n")

    def stems(self) -> Iterator[str]:
        """Every expected file's key, sorted."""
        if not self.path.is_dir():
            return
        for path in sorted(self.path.glob("*.json")):
            yield path.stem

    def count(self) -> int:
        return sum(1 for _ in self.stems())
