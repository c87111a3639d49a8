"""SQLite exports read a big window as two halves at once (exports/halves.py): the same
bytes as one reader, both halves from the same committed data while another connection
keeps writing, a one-reader fallback while a writer holds the lock, and a failed or
stopped half that leaves nothing behind. The threshold is lowered so a few thousand rows
are split; the 1,000,000-row figures are bench/export_bench.py's.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from chatferry.db.models import Comment
from chatferry.exports.formats import Window, count_rows, window_pieces
from chatferry.exports.halves import GATE_WAIT_MS, pieces_in_halves, window_snapshot
from chatferry.resources import Resource
from chatferry.runtime import Runtime
from support.apps import NewApp
from support.rows import app_pk, seed_comments

ROWS = 3000
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def sqlite_runtime(runtime: Runtime) -> Runtime:
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL reads a window with one streamed statement")
    return runtime


@pytest.fixture
def window(sqlite_runtime: Runtime, new_app: NewApp) -> Window:
    """ROWS comments, many sharing a second (the split falls inside a run of equal
    created_at), some with microseconds."""
    app_id = new_app("Halves").app_id
    moments = [START + timedelta(seconds=i // 7, microseconds=(i % 3) * 250) for i in range(ROWS)]
    seed_comments(sqlite_runtime, app_id, moments)
    pk = app_pk(sqlite_runtime, app_id)
    return Window(Resource.COMMENTS, pk, START.replace(tzinfo=None), datetime(2026, 2, 1))


def _read(rt: Runtime, window: Window, spool: Path, min_rows: int) -> tuple[bytes, int, bool]:
    with window_snapshot(rt.engine, window, ROWS, min_rows) as snap:
        rows = count_rows(snap.conn, window.resource, window.app_pk, window.lower, window.upper)
        pieces = list(pieces_in_halves(snap, window, 500, rows, spool))
    return b",\n".join(p.data for p in pieces), sum(p.rows for p in pieces), snap.twin is not None


def test_two_halves_write_the_bytes_one_reader_writes(
    sqlite_runtime: Runtime, window: Window, tmp_path: Path
) -> None:
    with sqlite_runtime.engine.connect() as conn:
        alone = b",\n".join(p.data for p in window_pieces(conn, window, 500))
    halves, rows, twinned = _read(sqlite_runtime, window, tmp_path / "spool", min_rows=100)
    assert twinned and rows == ROWS
    assert halves == alone
    assert list((tmp_path / "spool").iterdir()) == []  # the half's file had no name


def test_a_window_whose_row_limit_is_under_the_threshold_is_read_by_one_reader(
    sqlite_runtime: Runtime, window: Window
) -> None:
    """Its rows are not counted to choose (an export that holds more fails its limit)."""
    with window_snapshot(sqlite_runtime.engine, window, 99, min_rows=100) as snap:
        assert snap.twin is None


def test_both_halves_see_the_same_data_while_another_connection_commits(
    sqlite_runtime: Runtime, window: Window, tmp_path: Path
) -> None:
    """A writer commits new rows into the window as fast as it can; the count and every
    row read come from the data as it was when the snapshot began."""
    stop = threading.Event()
    engine = sqlite_runtime.engine
    with engine.connect() as conn:
        template = dict(conn.execute(select(Comment.__table__)).mappings().first() or {})
    added = 0

    def keep_inserting() -> None:
        nonlocal added
        while not stop.is_set():
            row = {**template, "id": None, "unique_id": f"late-{added}", "parent_id": None}
            with engine.begin() as conn:
                conn.execute(insert(Comment.__table__).values(row))
            added += 1

    writer = threading.Thread(target=keep_inserting)
    writer.start()
    try:
        results = []
        for _ in range(5):
            with window_snapshot(engine, window, ROWS, min_rows=100) as snap:
                assert snap.twin is not None
                counted = [
                    count_rows(c, window.resource, window.app_pk, window.lower, window.upper)
                    for c in (snap.conn, snap.twin)
                ]
                read = pieces_in_halves(snap, window, 500, counted[0], tmp_path)
                results.append((counted, sum(p.rows for p in read)))
    finally:
        stop.set()
        writer.join()
    assert added > 0
    for (first, second), rows in results:
        assert first == second == rows
    assert results[-1][1] > ROWS  # later snapshots saw the writer's rows


def test_one_reader_when_a_writer_holds_the_lock(
    sqlite_runtime: Runtime, window: Window, tmp_path: Path
) -> None:
    """The write lock is not waited for past GATE_WAIT_MS: the export reads on alone."""
    with sqlite_runtime.engine.connect() as writer:
        writer.exec_driver_sql("SELECT 1")  # SQLAlchemy's BEGIN
        writer.exec_driver_sql("DELETE FROM comments WHERE 0")  # the write lock
        started = datetime.now()
        data, rows, twinned = _read(sqlite_runtime, window, tmp_path, min_rows=100)
        waited = datetime.now() - started
        writer.rollback()
    assert not twinned and rows == ROWS
    assert waited < timedelta(milliseconds=GATE_WAIT_MS + 1000)
    assert data.count(b'"UniqueId"') == ROWS


def test_a_failed_half_fails_the_read(
    sqlite_runtime: Runtime, window: Window, tmp_path: Path
) -> None:
    """A driver error in the half's thread (here every statement on its connection is
    interrupted) ends the read with that error once the first half is through."""
    spool = tmp_path / "spool"
    with window_snapshot(sqlite_runtime.engine, window, ROWS, min_rows=100) as snap:
        assert snap.twin is not None
        driver = snap.twin.connection.driver_connection
        driver.set_progress_handler(lambda: 1, 100)  # non-zero: abort the statement
        read = []
        try:
            with pytest.raises(sqlite3.OperationalError, match="interrupted"):
                read.extend(pieces_in_halves(snap, window, 500, ROWS, spool))
        finally:
            driver.set_progress_handler(None, 0)
    assert 0 < sum(p.rows for p in read) < ROWS  # the first half, then the error
    assert list(spool.iterdir()) == []


def test_an_export_stopped_early_stops_its_half(
    sqlite_runtime: Runtime, window: Window, tmp_path: Path
) -> None:
    with window_snapshot(sqlite_runtime.engine, window, ROWS, min_rows=100) as snap:
        spool = tmp_path / "spool"
        with closing(pieces_in_halves(snap, window, 100, ROWS, spool)) as pieces:
            first = next(iter(pieces))
        assert first.rows == 100
    assert not [t for t in threading.enumerate() if t.name == "chatferry-export-half"]
    assert list(spool.iterdir()) == []
