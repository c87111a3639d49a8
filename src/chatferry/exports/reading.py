"""An export's rows as file pieces; on SQLite, a large export is read by two threads.

The database renders and joins the rows (formats.py), so reading is nearly all work the
driver does without holding Python's lock. On SQLite that work is done in the job's own
process, on one core: a second thread reading the second half of the window at the same
time uses the second one (an export of 1,000,000 comments takes about 0.6 times as long).
The first half streams straight into the file; the second half is spooled to an
unlinked temporary file meanwhile and follows it, page by page, so the file holds the
same bytes in the same order and memory stays flat.

Each half is read in a snapshot of its own, both taken as the job starts; the halves
meet at a creation time, so no row is in both. (On PostgreSQL the database server
already does this work in its own process, beside the job's.)
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import IO

from sqlalchemy import Connection, Engine, select

from chatferry.db.engine import snapshot
from chatferry.exports.columns import EXPORTS
from chatferry.exports.formats import Piece, Window, naive_created_at, window_pieces


class _Stopped(Exception):
    """The job asked the second reader to stop (the export was cancelled or failed)."""


def middle(conn: Connection, window: Window, rows: int) -> datetime | None:
    """The creation time of the window's middle row (the second half starts there), or
    None when it is the window's first moment (nothing to split)."""
    table = EXPORTS[window.resource].table
    created = naive_created_at(table)
    query = (
        select(created)
        .where(table.c.app_pk == window.app_pk, created >= window.lower, created < window.upper)
        .order_by(created, table.c.id)
        .offset(rows // 2)
        .limit(1)
    )
    found = conn.execute(query).scalar()
    if not isinstance(found, datetime) or not window.lower < found < window.upper:
        return None
    return found


@dataclass
class Spool:
    """Reads a window in a thread of its own, in its own snapshot, into a temporary
    file; ``pieces`` then gives back the same pieces, in order."""

    engine: Engine
    window: Window
    batch: int
    _pages: list[tuple[int, int]] = field(default_factory=list)  # (bytes, rows) a page
    _file: IO[bytes] = field(default_factory=tempfile.TemporaryFile)
    _stop: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._read, name="chatferry-export-half")
        self._thread.start()

    def _read(self) -> None:
        try:
            with snapshot(self.engine) as conn:
                for piece in window_pieces(conn, self.window, self.batch):
                    if self._stop.is_set():
                        raise _Stopped
                    self._file.write(piece.data)
                    self._pages.append((len(piece.data), piece.rows))
        except BaseException as exc:
            self._error = exc

    def pieces(self) -> Iterator[Piece]:
        """The spooled pages, once the reader is done (its error, if any, is raised)."""
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._file.seek(0)
        for size, rows in self._pages:
            yield Piece(self._file.read(size), rows)

    def close(self) -> None:
        """Stops the reader if it still runs, and drops the file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._file.close()


@dataclass(frozen=True)
class ReadPlan:
    """How to read: rows a page, and from how many rows on two threads read (0: never)."""

    batch: int
    split_min_rows: int


def read_window(
    engine: Engine, conn: Connection, window: Window, rows: int, plan: ReadPlan
) -> Generator[Piece]:
    """The window's rows as file pieces of at most ``plan.batch`` rows, in order.
    ``conn`` is the job's snapshot, in which ``rows`` were counted."""
    batch = plan.batch
    split = None
    if engine.dialect.name == "sqlite" and 0 < plan.split_min_rows <= rows:
        split = middle(conn, window, rows)
    if split is None:
        yield from window_pieces(conn, window, batch)
        return
    spool = Spool(engine, replace(window, lower=split), batch)
    spool.start()
    try:
        yield from window_pieces(conn, replace(window, upper=split), batch)
        yield from spool.pieces()
    finally:
        spool.close()
