"""Resuming a download safely: what ``If-Range`` may carry, and where a 206 starts.

A resumed download sends ``Range: bytes=N-`` with ``If-Range: <validator>`` (the ETag or
Last-Modified of the answer it started from). A server whose file changed since answers
200 with the whole new file: the client then writes from byte 0. A 206 for another range
than the one asked is not a continuation either."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Answer(Protocol):
    """An HTTP answer (httpx's, or the attachment client's): its headers, by lowercase
    name."""

    @property
    def headers(self) -> Mapping[str, str]: ...


def range_validator(response: Answer) -> str | None:
    """What ``If-Range`` may carry to resume this answer: its strong ETag, else its
    Last-Modified (a weak ETag cannot validate a range)."""
    etag = response.headers.get("etag")
    if etag and not etag.startswith("W/"):
        return str(etag)
    modified = response.headers.get("last-modified")
    return str(modified) if modified else None


def resume_headers(offset: int, validator: str | None) -> dict[str, str]:
    """``Range`` from ``offset`` (and ``If-Range`` when there is a validator); none at 0."""
    if not offset:
        return {}
    headers = {"Range": f"bytes={offset}-"}
    if validator is not None:
        headers["If-Range"] = validator
    return headers


def range_start(response: Answer) -> int | None:
    """The first byte of a ``Content-Range: bytes A-B/N`` answer."""
    value = response.headers.get("content-range", "")
    if not value.startswith("bytes ") or "-" not in value:
        return None
    first = value[6:].split("-", 1)[0]
    return int(first) if first.isdigit() else None
