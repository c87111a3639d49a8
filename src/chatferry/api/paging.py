"""Paging of list endpoints: ``?page=N&limit=M`` in, ``meta`` out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatferry.api.responses import OrjsonResponse, ok
from chatferry.errors import BadRequest, show

PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGE = 1_000_000_000  # keeps the row offset inside a 64-bit integer


@dataclass(frozen=True)
class Page:
    number: int
    size: int


def _whole(value: object, name: str, default: int, maximum: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise BadRequest(f"{name} must be a whole number of at least 1")
    # isascii: str.isdigit() also accepts digits like "²" that int() refuses.
    if not (text.isascii() and text.isdigit()) or not text.strip("0"):
        raise BadRequest(f"{name} must be a whole number of at least 1, got {show(text)}")
    digits = text.lstrip("0")
    if len(digits) > len(str(maximum)) or int(digits) > maximum:
        raise BadRequest(f"{name} {show(text)} is over the maximum of {maximum}")
    return int(digits)


def parse_page_number(value: object) -> int:
    """``page``: 1-based, default 1."""
    return _whole(value, "page", 1, MAX_PAGE)


def parse_page_size(value: object) -> int:
    """``limit``: default 20, at most 100."""
    return _whole(value, "limit", PAGE_SIZE, MAX_PAGE_SIZE)


def paged(key: str, records: list[dict[str, Any]], page: Page, total: int) -> OrjsonResponse:
    """``{"results": {key: records, "meta": {page, limit, total}}, "status": 200}``."""
    return ok({key: records, "meta": {"page": page.number, "limit": page.size, "total": total}})
