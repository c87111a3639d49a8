"""API paths, the shapes every answer has, and the error-envelope check."""

from __future__ import annotations

import re

import httpx

from support.waiting import API

EXPORTS = f"{API}/exports"
IMPORTS = f"{API}/imports"
SCHEDULES = f"{API}/export_schedules"

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
RFC3339_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")

# The keys an error may carry next to the spec's "message".
ERROR_KEYS = {
    "message",
    "code",
    "resource",
    "rows",
    "limit",
    "setting",
    "days",
    "max_days",
    "limit_bytes",
    "quota",
    "used",
    "retry_after",
    "size",
}


def assert_error(response: httpx.Response, status: int, *fragments: str) -> str:
    """The response is the error envelope with this status; returns its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"status", "error"}, body
    assert body["status"] == status
    # The spec's key first; extension keys (code, limit, ...) only next to it.
    assert next(iter(body["error"])) == "message"
    assert set(body["error"]) <= ERROR_KEYS, body
    message: str = body["error"]["message"]
    assert isinstance(message, str) and message.strip()
    assert "Traceback" not in message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), (fragment, message)
    return message


def relative(url: str) -> str:
    """The path and query of an absolute link, for the in-process TestClient."""
    return httpx.URL(url).raw_path.decode()
