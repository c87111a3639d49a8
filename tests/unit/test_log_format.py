"""The two log formats: what a line holds, that every physical line is timestamped (text)
or one JSON object (json), and that link signatures never survive into a line."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from chatferry.obs.log import FIELDS_ATTR, JsonFormatter, TextFormatter, log_event
from support.logs import parse_json, parse_text

SIGNED = "/api/v2.1/rest/exports/x/file?expires=1796814045&signature=71fd39aa7eb6"
PRESIGNED = "https://s3.example.com/b/k?X-Amz-Expires=60&X-Amz-Signature=deadbeef01&x=1"


def record(
    message: str, level: int = logging.INFO, exc: bool = False, **fields: object
) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("storage said no\nDebug source: http://internal/bucket")
        except RuntimeError:
            exc_info = sys.exc_info()
    made = logging.LogRecord("chatferry.jobs.worker", level, __file__, 1, message, None, exc_info)
    setattr(made, FIELDS_ATTR, fields)
    return made


def test_a_text_line_is_timestamp_level_logger_message_and_fields() -> None:
    line = TextFormatter().format(record("job finished", unique_id="u-1", rows=12, error="a b"))
    [event] = parse_text(line)
    assert (event.level, event.logger, event.message) == (
        "INFO",
        "chatferry.jobs.worker",
        "job finished",
    )
    assert event.fields == {"unique_id": "u-1", "rows": "12", "error": "a b"}
    assert line.endswith('job finished unique_id=u-1 rows=12 error="a b"')


def test_a_traceback_continues_on_lines_that_carry_the_timestamp_too() -> None:
    text = TextFormatter().format(record("job failed", logging.ERROR, exc=True, reference="E1"))
    lines = text.splitlines()
    assert len(lines) > 3
    head = lines[0].split(" job failed")[0]
    assert all(line.startswith(head + " ") for line in lines)
    [event] = parse_text(text)  # asserts every line's timestamp
    assert event.get("reference") == "E1"
    assert event.details[0] == "Traceback (most recent call last):"
    assert "Debug source: http://internal/bucket" in event.details


def test_a_json_line_is_one_object_with_typed_fields_and_the_traceback() -> None:
    line = JsonFormatter().format(record("job failed", logging.ERROR, exc=True, rows=3, ok=True))
    assert "\n" not in line
    entry = json.loads(line)
    assert (entry["level"], entry["message"], entry["rows"], entry["ok"]) == (
        "ERROR",
        "job failed",
        3,
        True,
    )
    assert entry["exc"].startswith("Traceback") and "storage said no" in entry["exc"]
    [event] = parse_json(line)
    assert event.ts == entry["ts"]


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_link_signatures_are_redacted_in_messages_fields_and_tracebacks(
    formatter: logging.Formatter,
) -> None:
    made = record(f'127.0.0.1:1 - "GET {SIGNED} HTTP/1.1" 200', url=PRESIGNED)
    try:
        raise ValueError(f"while fetching {PRESIGNED}")
    except ValueError:
        made.exc_info = sys.exc_info()
    line = formatter.format(made)
    for secret in ("71fd39aa7eb6", "deadbeef01"):
        assert secret not in line
    assert "signature=[redacted]" in line and "X-Amz-Signature=[redacted]" in line
    assert "expires=1796814045" in line  # the rest of the link stays readable


def test_log_event_leaves_out_empty_fields_and_attaches_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("chatferry.test")
    with caplog.at_level(logging.INFO, logger="chatferry.test"):
        log_event(logger, "job queued", kind="export", type=None, run_after=None)
        log_event(logger, "job failed", logging.ERROR, ValueError("boom"), reference="E2")
    queued, failed = caplog.records
    assert getattr(queued, FIELDS_ATTR) == {"kind": "export"}
    assert failed.levelno == logging.ERROR and failed.exc_info is not None
    assert getattr(failed, FIELDS_ATTR) == {"reference": "E2"}
