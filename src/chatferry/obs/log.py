"""One log format for chatferry and uvicorn: timestamped text, or one JSON object a line.

Events carry fields (``log_event(log, "job finished", unique_id=..., rows=...)``): the text
format appends them as ``key=value``, the JSON format as keys. Link signatures are
redacted from every line, whoever logs it (uvicorn's access log prints request URLs).
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

FIELDS_ATTR = "chatferry_fields"
_SIGNATURE = re.compile(r"(signature=)[^&\s\"']+", re.IGNORECASE)
_AWS_SIGNATURE = re.compile(r"(X-Amz-Signature=)[^&\s\"']+", re.IGNORECASE)


def redact(text: str) -> str:
    """The text with download-link signatures (ours and S3's) replaced."""
    return _AWS_SIGNATURE.sub(r"\1[redacted]", _SIGNATURE.sub(r"\1[redacted]", text))


def log_event(
    logger: logging.Logger,
    event: str,
    level: int = logging.INFO,
    exc_info: BaseException | None = None,
    **fields: Any,
) -> None:
    """Logs ``event`` with structured fields (None values are left out) and, with
    ``exc_info``, the error's traceback under the line."""
    if logger.isEnabledFor(level):
        kept = {k: v for k, v in fields.items() if v is not None}
        logger.log(level, event, exc_info=exc_info, extra={FIELDS_ATTR: kept})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, FIELDS_ATTR, None)
    return fields if isinstance(fields, dict) else {}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _value(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if (" " in text or not text) else text


class TextFormatter(logging.Formatter):
    """``2026-12-02T10:00:00.123Z INFO chatferry.jobs.worker: job finished unique_id=...
    rows=12``. Every physical line starts with the timestamp: a traceback (or any
    multi-line message) continues on lines that repeat the head and then ``|``."""

    def format(self, record: logging.LogRecord) -> str:
        head = f"{_timestamp(record)} {record.levelname} {record.name}:"
        text = record.getMessage()
        fields = _fields(record)
        if fields:
            text += " " + " ".join(f"{k}={_value(v)}" for k, v in fields.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        first, *more = redact(text).splitlines() or [""]
        return "\n".join([f"{head} {first}", *(f"{head} | {line}" for line in more)])


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, the event's fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in _fields(record).items():
            entry.setdefault(key, redact(value) if isinstance(value, str) else value)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def configure_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Routes every logger (uvicorn's too) to one stderr handler in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # Python's warnings go through the same format
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # Alembic says "Context impl SQLiteImpl." on every start; the preflight logs one
    # "database migrated" line when it did migrate.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
