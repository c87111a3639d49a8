"""An export's rows as file pieces, read by one thread or, for a large export, two.

The database renders each row's JSON (render.py), so reading is nearly all database
work, which the drivers do without holding Python's lock: a second thread reading the
second half of the window at the same time uses the second core. The first half streams
straight into the file; the second half is spooled to a temporary file meanwhile and
follows it, so the file is the same, in the same order, and memory stays flat.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from sqlalchemy import DateTime, Engine, select, type_coerce

from chatferry.exports.columns import EXPORTS
from chatferry.exports.formats import BatchReader
from chatferry.resources import Resource

_SPOOL_PIECE = 1024 * 1024


class Stopped(Exception):
    """The other reader asked this one to stop (the export was cancelled or failed)."""


@dataclass(frozen=True)
class Window:
    """The rows of one app and resource created in [lower, upper) (naive UTC)."""

    resource: Resource
    app_pk: int
    lower: datetime
    upper: datetime


@dataclass(frozen=True)
class Piece:
    """File bytes: rows joined by ",\\n"; ``starts_rows`` when a separator goes before."""

    data: bytes
    starts_rows: bool
    rows: int


def window_pages(
    engine: Engine, window: Window, batch: int, stop: threading.Event | None = None
) -> Iterator[Piece]:
    """The window's rows, a database page at a time (each on a pooled connection)."""
    reader = BatchReader(
        engine.dialect, window.resource, window.app_pk, window.lower, window.upper, batch
    )
    after: tuple[datetime, int] | None = None
    while True:
        if stop is not None and stop.is_set():
            raise Stopped
        with engine.connect() as conn:
            page = reader.fetch(conn, after)
        if page is None:
            return
        yield Piece(reader.format(page), True, len(page.rows))
        after = page.last


def middle(engine: Engine, window: Window, rows: int) -> datetime | None:
    """The creation time of the window's middle row: the second half starts there."""
    table = EXPORTS[window.resource].table
    created = type_coerce(table.c.created_at, DateTime())  # naive UTC, as the bounds
    query = (
        select(created)
        .where(table.c.app_pk == window.app_pk, created >= window.lower, created < window.upper)
        .order_by(created, table.c.id)
        .offset(rows // 2)
        .limit(1)
    )
    with engine.connect() as conn:
        found = conn.execute(query).scalar()
    if not isinstance(found, datetime):
        return None
    return found if window.lower < found < window.upper else None


@dataclass
class Spool:
    """Reads a window in a thread into a temporary file (rows joined by ",\\n")."""

    engine: Engine
    window: Window
    batch: int
    pause: Callable[[], None] | None = None
    rows: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    _file: IO[bytes] = field(default_factory=tempfile.TemporaryFile)
    _error: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._read, name="chatferry-export-half")
        self._thread.start()

    def _read(self) -> None:
        try:
            for piece in window_pages(self.engine, self.window, self.batch, self.stop):
                self._file.write(b",\n" + piece.data if self.rows else piece.data)
                self.rows += piece.rows
                if self.pause is not None:
                    self.pause()
        except BaseException as exc:
            self._error = exc

    def close(self) -> None:
        """Stops the reader (if it still runs) and drops the file."""
        self.stop.set()
        if self._thread is not None:
            self._thread.join()
        self._file.close()

    def pieces(self) -> Iterator[Piece]:
        """The spooled rows, once the reader is done (its error, if any, is raised)."""
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._file.seek(0)
        first = True
        while data := self._file.read(_SPOOL_PIECE):
            yield Piece(data, first, self.rows if first else 0)
            first = False
