"""Which URLs of a backup's rows are attachments.

By default: ``url`` of ``file_attachment`` payloads and users' and rooms' ``AvatarUrl``.
With ``all``: every other http(s) URL in comment payloads too (cards, carousels, buttons).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

MODES = ("none", "files", "all")


def is_http_url(value: Any) -> bool:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return False
    try:
        return bool(urlsplit(value).hostname)
    except ValueError:
        return False


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def row_urls(resource: str, row: dict[str, Any], mode: str) -> Iterator[str]:
    """The attachment URLs of one row (possibly repeated)."""
    if mode == "none":
        return
    if resource in ("users", "rooms"):
        if is_http_url(row.get("AvatarUrl")):
            yield row["AvatarUrl"]
        return
    payload = row.get("Payload")
    if not isinstance(payload, dict):
        return
    if row.get("Type") == "file_attachment" and is_http_url(payload.get("url")):
        yield payload["url"]
    if mode == "all":
        yield from (s for s in _strings(payload) if is_http_url(s))


def collect(rows: Iterable[tuple[str, dict[str, Any]]], mode: str) -> list[str]:
    """Every distinct attachment URL of (type, row) pairs, in the order first seen."""
    found: dict[str, None] = {}
    for resource, row in rows:
        for url in row_urls(resource, row, mode):
            found.setdefault(url)
    return list(found)
