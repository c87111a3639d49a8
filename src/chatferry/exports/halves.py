"""SQLite: a big window read as two halves at once, on two connections that see the same
committed data, so an export uses both cores.

One SQLite connection renders rows on one core. The second half of the window is read on
a thread, into an unnamed temporary file in the data directory (deleted when closed, and
by the system if the process dies), while the first half streams into the export; then
the second half follows from the file. Every page is a piece as window_pieces makes it,
so the file is byte for byte the one a single reader writes.

Both connections begin their read transactions while a third one holds SQLite's write
lock (``BEGIN IMMEDIATE``): no commit can fall between the two, so they see the same
data, and the row count checked against the limit is the rows written. The lock is held
for about a millisecond; if another writer holds it longer than ``GATE_WAIT_MS``, the
window is read by one connection as before.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, select

from chatferry.db.engine import SQLITE_BUSY_TIMEOUT_MS, read_connection, snapshot
from chatferry.exports.columns import EXPORTS
from chatferry.exports.formats import Piece, Window, count_rows, naive_time, window_pieces

# Below this many rows a window is read by one connection (a thread and a file cost more).
SPLIT_MIN_ROWS = 50_000
# How long to wait for SQLite's write lock before reading the window in one go.
GATE_WAIT_MS = 200


@dataclass
class WindowSnapshot:
    """The connection to count and read on; on SQLite, a twin in the same snapshot."""

    conn: Connection
    twin: Connection | None = None


@contextmanager
def window_snapshot(
    engine: Engine, window: Window, max_rows: int, min_rows: int = SPLIT_MIN_ROWS
) -> Iterator[WindowSnapshot]:
    """A read-only snapshot (db.engine.snapshot); on SQLite, for a window of at least
    ``min_rows`` rows, with a second connection that sees exactly the same data (when
    the write lock is free within GATE_WAIT_MS). A window allowed fewer than
    ``min_rows`` rows (``max_rows``, the export's row limit) is never split: its rows
    are not counted first (a window over its limit fails as soon as it is counted)."""
    if not _may_split(engine, window, max_rows, min_rows):
        with snapshot(engine) as conn:
            yield WindowSnapshot(conn)
        return
    with snapshot(engine) as conn, snapshot(engine) as twin:
        gated = _begin_together(engine, conn, twin)
        yield WindowSnapshot(conn, twin if gated else None)


def _may_split(engine: Engine, window: Window, max_rows: int, min_rows: int) -> bool:
    """Whether the window is read in halves, if the write lock lets it."""
    if engine.dialect.name != "sqlite" or max_rows < min_rows:
        return False
    return _rough_count(engine, window) >= min_rows


def _rough_count(engine: Engine, window: Window) -> int:
    """The window's rows now, outside the snapshot: only to choose how to read it."""
    with read_connection(engine) as conn:
        return count_rows(conn, window.resource, window.app_pk, window.lower, window.upper)


def _begin_together(engine: Engine, *readers: Connection) -> bool:
    """Starts the readers' snapshots while the write lock is held; False (and each
    reader's snapshot started anyway) if the lock was not free in time."""
    gate: Any = engine.raw_connection()
    cursor = gate.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={GATE_WAIT_MS}")
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # another writer holds the lock: no twin
            _start_reading(*readers)
            return False
        try:
            _start_reading(*readers)
        finally:
            cursor.execute("ROLLBACK")
        return True
    finally:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()
        gate.close()


def _start_reading(*readers: Connection) -> None:
    """A read makes a WAL read transaction take its snapshot (BEGIN alone does not)."""
    for reader in readers:
        reader.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one()


def _middle(conn: Connection, window: Window, rows: int) -> Any:
    """The created_at of the window's middle row in keyset order (naive UTC), or None."""
    table = EXPORTS[window.resource].table
    created = naive_time(table.c.created_at)
    query = (
        select(created)
        .where(table.c.app_pk == window.app_pk, created >= window.lower, created < window.upper)
        .order_by(table.c.created_at, table.c.id)
        .offset(rows // 2)
        .limit(1)
    )
    return conn.execute(query).scalar_one_or_none()


def pieces_in_halves(
    snap: WindowSnapshot, window: Window, batch: int, rows: int, spool_dir: Path
) -> Generator[Piece]:
    """The window's pieces (``rows`` of them), its two halves read at once when the
    snapshot has a twin; else as window_pieces reads it."""
    middle = _middle(snap.conn, window, rows) if snap.twin is not None else None
    if snap.twin is None or middle is None or not window.lower < middle < window.upper:
        yield from window_pieces(snap.conn, window, batch)
        return
    spool = _Spool(snap.twin, replace(window, lower=middle), batch, spool_dir)
    try:
        yield from window_pieces(snap.conn, replace(window, upper=middle), batch)
        yield from spool.pieces()
    finally:
        spool.close()


class _Spool:
    """Reads one half of a window on a thread into an unnamed temporary file."""

    def __init__(self, conn: Connection, window: Window, batch: int, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115
        self._sizes: list[tuple[int, int]] = []  # (bytes, rows) of each piece
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._read, args=(conn, window, batch), name="chatferry-export-half"
        )
        self._thread.start()

    def _read(self, conn: Connection, window: Window, batch: int) -> None:
        pieces = window_pieces(conn, window, batch)
        try:
            for piece in pieces:
                if self._stop.is_set():
                    return
                self._file.write(piece.data)
                self._sizes.append((len(piece.data), piece.rows))
        except BaseException as exc:  # handed to the export's thread by pieces()
            self._error = exc
        finally:
            pieces.close()

    def pieces(self) -> Iterator[Piece]:
        """The half's pieces, once it has been read (its error, if reading failed)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._file.seek(0)
        for size, rows in self._sizes:
            yield Piece(self._file.read(size), rows)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._file.close()
