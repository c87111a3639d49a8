"""An export's rows as file pieces, a database page at a time.

The database renders each row's JSON and joins a page's rows (formats.py), so reading a
page is one statement whose work the driver does without holding Python's lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from chatferry.exports.formats import BatchReader
from chatferry.resources import Resource


@dataclass(frozen=True)
class Window:
    """The rows of one app and resource created in [lower, upper) (naive UTC)."""

    resource: Resource
    app_pk: int
    lower: datetime
    upper: datetime


@dataclass(frozen=True)
class Piece:
    """File bytes: a page's rows joined by ",\\n", and how many rows."""

    data: bytes
    rows: int


def window_pages(engine: Engine, window: Window, batch: int) -> Iterator[Piece]:
    """The window's rows, a page at a time. One connection serves every page (each page
    is its own statement, no transaction stays open), so its cache stays warm."""
    reader = BatchReader(
        engine.dialect, window.resource, window.app_pk, window.lower, window.upper, batch
    )
    after: tuple[datetime, int] | None = None
    with engine.connect() as conn:
        while True:
            page = reader.fetch(conn, after)
            if page is None:
                return
            yield Piece(page.data, page.rows)
            if page.last is None:
                return
            after = page.last
