"""PostgreSQL exports stream a window from one statement in chunks of rows
(exports/formats.py, StreamedRows): the pieces are cut at the batch size, in keyset
order, with every row, and an export stopped half-way ends the statement and leaves its
connection usable.
The file's bytes are tests/test_export_files.py's; the speed is bench/export_bench.py's.
"""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from chatferry.db.engine import snapshot
from chatferry.exports.formats import Window, window_pieces
from chatferry.resources import Resource
from chatferry.runtime import Runtime
from support.apps import NewApp
from support.rows import app_pk, seed_comments

ROWS = 1234
START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 2, 1)


class Stop(Exception):
    """What the export job raises when it stops early (ExportStopped)."""


@pytest.fixture
def seeded(runtime: Runtime, new_app: NewApp) -> tuple[Window, list[dict[str, Any]]]:
    """ROWS comments on PostgreSQL (SQLite reads in keyset pages: test_export_halves.py)."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite reads a window in keyset pages")
    app_id = new_app("Copy").app_id
    moments = [START + timedelta(seconds=i // 3, microseconds=(i % 2) * 5) for i in range(ROWS)]
    expected = seed_comments(runtime, app_id, moments)
    window = Window(Resource.COMMENTS, app_pk(runtime, app_id), START.replace(tzinfo=None), END)
    return window, expected


def test_the_window_comes_in_pieces_of_the_batch_size_with_every_row(
    runtime: Runtime, seeded: tuple[Window, list[dict[str, Any]]]
) -> None:
    window, expected = seeded
    with snapshot(runtime.engine) as conn:
        pieces = list(window_pieces(conn, window, 500))
    assert [p.rows for p in pieces] == [500, 500, 234]
    rows = [orjson.loads(line) for p in pieces for line in p.data.split(b",\n")]
    assert [r["UniqueId"] for r in rows] == [e["UniqueId"] for e in expected]
    assert all(p.data.count(b",\n") == p.rows - 1 for p in pieces)


def test_an_empty_window_gives_no_piece(
    runtime: Runtime, seeded: tuple[Window, list[dict[str, Any]]]
) -> None:
    window, _ = seeded
    empty = Window(window.resource, window.app_pk, datetime(2025, 1, 1), datetime(2025, 2, 1))
    with snapshot(runtime.engine) as conn:
        assert list(window_pieces(conn, empty, 500)) == []


def test_stopping_half_way_ends_the_statement_and_the_connection_serves_the_next_export(
    runtime: Runtime, seeded: tuple[Window, list[dict[str, Any]]]
) -> None:
    window, expected = seeded
    engine = runtime.engine
    engine.dispose()  # one pooled connection: the next export must get the same one
    with (
        pytest.raises(Stop),
        snapshot(engine) as conn,
        closing(window_pieces(conn, window, 100)) as pieces,
    ):
        assert next(pieces).rows == 100
        raise Stop
    assert engine.pool.checkedin() == 1  # the connection went back to the pool
    with snapshot(engine) as conn:
        again = list(window_pieces(conn, window, 5000))
    assert [p.rows for p in again] == [ROWS]
    assert engine.pool.checkedin() == 1
    assert len(again[0].data.split(b",\n")) == len(expected)
