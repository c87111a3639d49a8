"""Reading one resource's rows in the import format, as the database rendered them
(see columns.py and render.py), in (created_at, id) order.

- SQLite: keyset pages. Each page is one index seek on (app_pk, created_at, id), and the
  database also joins the page's rows (``group_concat``), so a page comes back as ONE
  value: the driver does one step a page instead of one a row, and Python does no
  per-row work. A second, index-only query finds where the next page starts.
- PostgreSQL: one statement over the whole window, its rows streamed in chunks of the
  batch size (libpq's chunked rows mode, psycopg's ``Cursor.stream(size=...)``; binary:
  bytes as they are) and each chunk joined into a piece here. A single plan serves
  every row, where a page query would look every page's users and rooms up afresh.

The export job reads in one snapshot (db.engine.snapshot): the count it checks against
the row limit and every row of the file come from the same committed data.

Both compile their statements once per export and run them on the DBAPI cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Dialect,
    Integer,
    LargeBinary,
    Select,
    String,
    Table,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import NullType

from chatferry.exports.columns import EXPORTS, ResourceExport
from chatferry.exports.render import row_json
from chatferry.resources import Resource

DbRow = Sequence[Any]
# Turns the driver's created_at value into a naive UTC datetime.
TimeReader = Callable[[Any], Any]


def naive_time(column: ColumnElement[Any]) -> ColumnElement[datetime]:
    """A UtcDateTime column as plain naive UTC, for comparisons with naive bounds."""
    return type_coerce(column, DateTime())


def _raw(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A column read as the driver returns it: no per-row result processing."""
    return type_coerce(column, NullType())


def _unchanged(value: Any) -> Any:
    return value


def time_reader(dialect: Dialect) -> TimeReader:
    """SQLAlchemy's DateTime result processor for the dialect (SQLite: text to datetime);
    identity where the driver already returns datetimes (psycopg)."""
    process = DateTime().dialect_impl(dialect).result_processor(dialect, None)
    return process if process is not None else _unchanged


def _time_writer(dialect: Dialect) -> Callable[[datetime], Any]:
    """A naive UTC datetime in the form the dialect stores it (SQLite: its text)."""
    process = DateTime().dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _unchanged


@lru_cache(maxsize=len(Resource))
def _count_statement(resource: Resource) -> Select[int]:
    """The window's row count, built once per resource: SQLAlchemy then finds its
    compiled form without building and keying a new statement (every export creation
    counts)."""
    table = EXPORTS[resource].table
    created = naive_time(table.c.created_at)
    return (
        select(func.count())
        .select_from(table)
        .where(
            table.c.app_pk == bindparam("app_pk"),
            created >= bindparam("lower"),
            created < bindparam("upper"),
        )
    )


def count_rows(
    conn: Connection, resource: Resource, app_pk: int, lower: datetime, upper: datetime
) -> int:
    """How many rows of ``resource`` the app created in [lower, upper) (naive UTC)."""
    values = {"app_pk": app_pk, "lower": lower, "upper": upper}
    return int(conn.execute(_count_statement(resource), values).scalar_one())


@dataclass(frozen=True)
class Piece:
    """File bytes: rows' JSON objects joined by ",\n", and how many rows."""

    data: bytes
    rows: int


def _keyset(table: Table, continued: bool) -> list[Any]:
    """The window and, after the first page, the position, as named parameters.

    The position is spelled as a range on created_at plus a tie-break on id, not as a
    row-value comparison: both SQLite and PostgreSQL then seek the (app_pk, created_at,
    id) index straight to it, so every page costs the same however far the export is.
    """
    created = _raw(table.c.created_at)
    conditions = [
        table.c.app_pk == bindparam("app_pk"),
        created >= bindparam("lower", type_=NullType()),
        created < bindparam("upper", type_=NullType()),
    ]
    if continued:
        after_created = bindparam("after_created", type_=NullType())
        conditions.append(or_(created > after_created, table.c.id > bindparam("after_id")))
    return conditions


def _rows_select(resource: ResourceExport, dialect: Dialect, continued: bool) -> Select[Any]:
    """The window's rows (after the position) in keyset order: (id, created_at, JSON)."""
    table: Table = resource.table
    return (
        select(
            table.c.id, _raw(table.c.created_at).label("created_at"), row_json(resource, dialect)
        )
        .select_from(resource.source)
        .where(*_keyset(table, continued))
        .order_by(table.c.created_at, table.c.id)
    )


def _page_select(resource: ResourceExport, dialect: Dialect, continued: bool) -> Select[bytes, int]:
    """One page as one row: (its rows' JSON joined by ",\n", how many rows). SQLite's
    ``group_concat`` joins the rows of an ordered subquery in its order (a test checks)."""
    page = _rows_select(resource, dialect, continued).limit(bindparam("limit", type_=Integer()))
    rows = page.subquery("page")
    separator = literal_column("',\n'", String())
    joined = cast(func.group_concat(rows.c.row_json, separator), LargeBinary())
    return select(joined, func.count())


def _next_select(resource: ResourceExport, continued: bool) -> Select[Any]:
    """Where the next page starts: the (created_at, id) of the page's last row, read
    from the index alone (``skip`` = rows in a page - 1)."""
    table: Table = resource.table
    return (
        select(_raw(table.c.created_at), table.c.id)
        .where(*_keyset(table, continued))
        .order_by(table.c.created_at, table.c.id)
        .limit(1)
        .offset(bindparam("skip", type_=Integer()))
    )


@dataclass(frozen=True)
class _Compiled:
    """A statement compiled once for the dialect, run on DBAPI cursors with values in
    the driver's own paramstyle (SQLAlchemy's per-execution work is skipped)."""

    compiled: SQLCompiler

    def driver_params(self, values: dict[str, Any]) -> Any:
        params = self.compiled.construct_params(values)
        names = self.compiled.positiontup
        return [params[name] for name in names] if names is not None else params

    def fetch(self, conn: Connection, values: dict[str, Any]) -> Sequence[DbRow]:
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self.compiled.string, self.driver_params(values))
            return cursor.fetchall()
        finally:
            cursor.close()


def _compile(query: Select[*tuple[Any, ...]], dialect: Dialect) -> _Compiled:
    compiled = query.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    return _Compiled(compiled)


# Built and compiled once per resource and engine (it took a small export a few ms).
_STATEMENTS_KEPT = 32


@lru_cache(maxsize=_STATEMENTS_KEPT)
def _keyset_statements(
    resource: Resource, dialect: Dialect
) -> tuple[tuple[_Compiled, ...], tuple[_Compiled, ...]]:
    """The page statements and the next-page-start statements, first page and after."""
    export = EXPORTS[resource]
    pages = tuple(_compile(_page_select(export, dialect, c), dialect) for c in (False, True))
    starts = tuple(_compile(_next_select(export, c), dialect) for c in (False, True))
    return pages, starts


@lru_cache(maxsize=_STATEMENTS_KEPT)
def _json_statement(resource: Resource, dialect: Dialect) -> _Compiled:
    """PostgreSQL: the window's rows' JSON alone, in keyset order."""
    export = EXPORTS[resource]
    rows = _rows_select(export, dialect, continued=False)
    return _compile(rows.with_only_columns(row_json(export, dialect)), dialect)


class KeysetPages:
    """SQLite: the window's rows a page at a time, each page one statement. Stored
    timestamps are bound and read through SQLAlchemy's own DateTime processors for the
    dialect, so comparisons match what UtcDateTime stores."""

    def __init__(self, dialect: Dialect, window: Window, limit: int) -> None:
        self._pages, self._starts = _keyset_statements(window.resource, dialect)
        self._read_time = time_reader(dialect)
        self._write_time = _time_writer(dialect)
        self._values = {
            "app_pk": window.app_pk,
            "upper": self._write_time(window.upper),
            "limit": limit,
        }
        self._lower = window.lower
        self._limit = limit

    def pieces(self, conn: Connection) -> Generator[Piece]:
        after: tuple[datetime, int] | None = None
        while True:
            continued = int(after is not None)
            values = {**self._values, **self._position(after)}
            [(data, rows)] = self._pages[continued].fetch(conn, values)
            if not rows:
                return
            yield Piece(bytes(data), rows)
            if rows < self._limit:  # a short page is the last
                return
            [(created, row_id)] = self._starts[continued].fetch(
                conn, {**values, "skip": self._limit - 1}
            )
            after = (self._read_time(created), row_id)

    def _position(self, after: tuple[datetime, int] | None) -> dict[str, Any]:
        if after is None:
            return {"lower": self._write_time(self._lower)}
        created, row_id = after
        return {
            "lower": self._write_time(max(self._lower, created)),
            "after_created": self._write_time(created),
            "after_id": row_id,
        }


# libpq 17 and later return a result's rows in chunks (the psycopg wheel bundles one);
# an older libpq can only stream row by row.
CHUNKED_ROWS = psycopg.pq.version() >= 170000


class StreamedRows:
    """PostgreSQL: the window's rows from one statement, in the caller's snapshot, a
    chunk of ``limit`` rows at a time, each chunk one piece.

    The statement is planned as a whole (hash joins, parallel workers: a server-side
    cursor would plan for a fast first row), and the database sends chunks without
    waiting to be asked, while this thread writes the previous one. Each row is one
    ``bytea`` read in binary: its bytes as they are. Measured against a ``COPY ... TO
    STDOUT`` of the same rows (one message a row, 1.5 us of Python each) and against the
    database joining 2,000 rows a piece (a second sort of every row): both slower."""

    def __init__(self, dialect: Dialect, window: Window, limit: int) -> None:
        self._statement = _json_statement(window.resource, dialect)
        write_time = _time_writer(dialect)
        self._values = {
            "app_pk": window.app_pk,
            "lower": write_time(window.lower),
            "upper": write_time(window.upper),
        }
        self._limit = limit

    def pieces(self, conn: Connection) -> Generator[Piece]:
        params = self._statement.driver_params(self._values)
        driver: Any = conn.connection.driver_connection  # a psycopg connection
        chunk = self._limit if CHUNKED_ROWS else 1
        rows: list[bytes] = []
        # A stream closed early cancels its statement and leaves the connection usable.
        with driver.cursor(binary=True) as cursor:
            for (data,) in cursor.stream(self._statement.compiled.string, params, size=chunk):
                rows.append(data)
                if len(rows) == self._limit:
                    yield Piece(b",\n".join(rows), len(rows))
                    rows = []
        if rows:
            yield Piece(b",\n".join(rows), len(rows))


@dataclass(frozen=True)
class Window:
    """The rows of one app and resource created in [lower, upper) (naive UTC)."""

    resource: Resource
    app_pk: int
    lower: datetime
    upper: datetime


READERS: dict[str, type[KeysetPages] | type[StreamedRows]] = {
    "sqlite": KeysetPages,
    "postgresql": StreamedRows,
}


def window_pieces(conn: Connection, window: Window, batch: int) -> Generator[Piece]:
    """The window's rows as file pieces of at most ``batch`` rows. Run it in a snapshot
    (db.engine.snapshot) so that every piece, and a count made before, agree."""
    reader = READERS[conn.dialect.name](conn.dialect, window, batch)
    return reader.pieces(conn)
