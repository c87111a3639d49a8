"""The wire envelope: ``{"results": ..., "status": 200}`` and the error shape."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class OrjsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ok(results: Any) -> OrjsonResponse:
    return OrjsonResponse({"results": results, "status": 200})


def error(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> OrjsonResponse:
    """The error envelope; ``details`` are extension keys after ``message``."""
    body = {"status": status, "error": {"message": message, **(details or {})}}
    return OrjsonResponse(body, status_code=status, headers=headers)
