"""Reading a chatferry process's log, in either format, as an operator's tools would.

``read_log`` checks the format of EVERY line while it parses (text: each physical line
starts with a timestamp; json: each line is an object with ``ts``) and returns the
events with their fields, so tests can follow a job by its ``unique_id``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
_TEXT_LINE = re.compile(
    rf"^(?P<ts>{TIMESTAMP}) (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<rest>.*)$"
)
_FIELDS = re.compile(r'^(?P<message>.*?)(?P<fields>(?: [a-z_]+=(?:"[^"]*"|[^\s"]+))*)$')
_FIELD = re.compile(r'([a-z_]+)=("[^"]*"|[^\s"]+)')


@dataclass
class LogLine:
    ts: str
    level: str
    logger: str
    message: str
    fields: dict[str, Any]
    details: list[str] = field(default_factory=list)  # a traceback's lines, if any

    def get(self, name: str) -> str:
        """A field as text, whichever format it came from ("" when absent)."""
        value = self.fields.get(name)
        return "" if value is None else str(value)


def _text_fields(rest: str) -> tuple[str, dict[str, Any]]:
    match = _FIELDS.match(rest)
    assert match is not None
    pairs = _FIELD.findall(match["fields"])
    return match["message"], {key: value.strip('"') for key, value in pairs}


def parse_text(text: str) -> list[LogLine]:
    """Every line must start with a timestamp; ``|`` lines continue the event before."""
    events: list[LogLine] = []
    for line in text.splitlines():
        match = _TEXT_LINE.match(line)
        assert match is not None, f"a log line without a timestamp: {line!r}"
        rest = match["rest"]
        if rest.startswith("| ") or rest == "|":
            assert events, line
            events[-1].details.append(rest[2:])
            continue
        message, fields = _text_fields(rest)
        events.append(LogLine(match["ts"], match["level"], match["logger"], message, fields))
    return events


def parse_json(text: str) -> list[LogLine]:
    """Every line must be one JSON object with ts, level, logger and message."""
    events: list[LogLine] = []
    for line in text.splitlines():
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        ts = entry.pop("ts")
        assert re.fullmatch(TIMESTAMP, ts), line
        level, logger, message = entry.pop("level"), entry.pop("logger"), entry.pop("message")
        details = str(entry.pop("exc", "")).splitlines()
        events.append(LogLine(ts, level, logger, message, entry, details))
    return events


def read_log(path: Path, fmt: str) -> list[LogLine]:
    text = path.read_text(errors="strict")
    return parse_json(text) if fmt == "json" else parse_text(text)


def events_of(lines: list[LogLine], **wanted: str) -> list[LogLine]:
    """The lines whose fields have these values (``message=`` matches the event)."""
    message = wanted.pop("message", None)
    return [
        line
        for line in lines
        if (message is None or line.message == message)
        and all(line.get(key) == value for key, value in wanted.items())
    ]


def job_story(lines: list[LogLine], unique_id: str) -> list[str]:
    """The events of one job, in order: ["job queued", "job started", ...]."""
    return [line.message for line in lines if line.get("unique_id") == unique_id]
