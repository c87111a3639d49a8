"""Paging of list endpoints: ``?page=N&limit=M`` in, ``meta`` out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatferry.api.responses import OrjsonResponse, ok
from chatferry.errors import BadRequest

PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGE = 1_000_000_000  # keeps the row offset inside a 64-bit integer


@dataclass(frozen=True)
class Page:
    number: int
    size: int


def page_of(page: str | None = None, limit: str | None = None) -> Page:
    """The ``page`` and ``limit`` query parameters as a Page (a FastAPI dependency)."""
    number, size = parse_paging(page, limit)
    return Page(number, size)


def parse_paging(page: str | None, limit: str | None) -> tuple[int, int]:
    """``page`` (1-based, default 1) and ``limit`` (default 20, at most 100)."""

    def positive(value: str | None, name: str, default: int, maximum: int) -> int:
        if value is None or value == "":
            return default
        # isascii: str.isdigit() also accepts digits like "²" that int() refuses.
        if not (value.isascii() and value.isdigit()) or not value.strip("0"):
            raise BadRequest(f"{name} must be a whole number of at least 1, got {value!r}")
        digits = value.lstrip("0")
        if len(digits) > len(str(maximum)) or int(digits) > maximum:
            raise BadRequest(f"{name} {value} is over the maximum of {maximum}")
        return int(digits)

    size = positive(limit, "limit", PAGE_SIZE, MAX_PAGE_SIZE)
    return positive(page, "page", 1, MAX_PAGE), size


def paged(key: str, records: list[dict[str, Any]], page: Page, total: int) -> OrjsonResponse:
    """``{"results": {key: records, "meta": {page, limit, total}}, "status": 200}``."""
    return ok({key: records, "meta": {"page": page.number, "limit": page.size, "total": total}})
