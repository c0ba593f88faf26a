"""Log lines: one event per line, as text or JSON, at a chosen level, never with patient data.

The standard library's ``logging`` carries the events (every module logs to a named logger under
``her2_adapter``); this module only lays the lines out. structlog is not used (it was declared):
importing it pulls asyncio and rich's console into ``convert``'s start, some tens of
milliseconds, for what two small formatters do here.

What may be logged is decided where an event is logged: control ids, error codes, positions and
rule ids. The formatters add a second guard for exceptions: only the exception's type and the
frames it passed through are written, never its text, which may quote the message.
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Literal

LogFormat = Literal["text", "json"]
LEVELS: Final = ("debug", "info", "warning", "error")
FORMATS: Final = ("text", "json")

# Attributes every LogRecord has; the others were passed as ``extra={...}`` and are fields.
_STANDARD: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def configure(level: str, log_format: str) -> None:
    """Send every log event to stderr, one line each, replacing what an earlier call set."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: use one of {', '.join(LEVELS)}")
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: use one of {', '.join(FORMATS)}")
    handler = _Stderr()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        if isinstance(old, _Stderr):  # set by an earlier call; other handlers are not ours
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is at each event: a test runner may have swapped it since."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def current() -> tuple[str, str] | None:
    """The level and format ``configure`` set, for worker processes to log alike."""
    root = logging.getLogger()
    for handler in root.handlers:
        formatter = handler.formatter
        if isinstance(formatter, JsonFormatter | TextFormatter):
            return logging.getLevelName(root.level).lower(), formatter.name
    return None


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and k[0] != "_"}


def _exception(exc_info: _ExcInfo) -> str:
    """``Type at file:line in function < file:line ...``: where it happened, not what it said."""
    kind, _, tb = exc_info
    frames = traceback.extract_tb(tb)
    where = " < ".join(f"{f.filename}:{f.lineno} in {f.name}" for f in reversed(frames))
    return f"{kind.__name__} at {where}" if where else kind.__name__


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger> <event> key=value ...``"""

    name: Final = "text"

    def format(self, record: logging.LogRecord) -> str:
        parts = [_time(record), record.levelname, record.name, record.getMessage()]
        parts += [f"{key}={value}" for key, value in _fields(record).items()]
        if record.exc_info and record.exc_info[0] is not None:
            parts.append(f"exception={_exception(record.exc_info)}")
        return _one_line(" ".join(parts))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``logger``, ``event``, then the fields."""

    name: Final = "json"

    def format(self, record: logging.LogRecord) -> str:
        import orjson  # loaded by the pipeline already; here only when JSON is asked for

        event: dict[str, object] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info and record.exc_info[0] is not None:
            event["exception"] = _exception(record.exc_info)
        return orjson.dumps(event, default=str).decode()
