"""Reading one resource in keyset-paginated batches, each row already in the import
format as the database rendered it (see columns.py and render.py).

Each page is one index seek on (app_pk, created_at, id), compiled once per export and
run on the DBAPI cursor. The database also joins the page's rows (``group_concat`` on
SQLite, ``string_agg`` on PostgreSQL), so a page comes back as ONE value: the file's
bytes for those rows. The driver then does one step for a page instead of one per row,
and Python does no per-row work at all. A second, index-only query finds where the next
page starts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import NullType

from chatferry.exports.columns import EXPORTS, ResourceExport
from chatferry.exports.render import row_json
from chatferry.resources import Resource

DbRow = Sequence[Any]
# Turns the driver's created_at value into a naive UTC datetime.
TimeReader = Callable[[Any], Any]


def _naive(column: ColumnElement[Any]) -> ColumnElement[datetime]:
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


def count_rows(
    conn: Connection, resource: Resource, app_pk: int, lower: datetime, upper: datetime
) -> int:
    """How many rows of ``resource`` the app created in [lower, upper) (naive UTC)."""
    table = EXPORTS[resource].table
    created = _naive(table.c.created_at)
    query = (
        select(func.count())
        .select_from(table)
        .where(table.c.app_pk == app_pk, created >= lower, created < upper)
    )
    return int(conn.execute(query).scalar_one())


@dataclass(frozen=True)
class Page:
    """One batch: its rows' JSON objects joined by ",\n", and how many rows."""

    data: bytes
    rows: int
    last: tuple[datetime, int] | None  # where the next page starts; None: no more rows


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
    """The page's rows in keyset order: (id, created_at, JSON bytes)."""
    table: Table = resource.table
    return (
        select(
            table.c.id, _raw(table.c.created_at).label("created_at"), row_json(resource, dialect)
        )
        .select_from(resource.source)
        .where(*_keyset(table, continued))
        .order_by(table.c.created_at, table.c.id)
        .limit(bindparam("limit", type_=Integer()))
    )


def _joined(rows: Any, dialect: Dialect) -> ColumnElement[bytes]:
    """The page's JSON objects as one value, in the rows' order, joined by ",\n"."""
    separator = literal_column("',\n'", String())
    if dialect.name == "postgresql":
        bytes_separator = func.convert_to(separator, literal_column("'UTF8'", String()))
        ordered = aggregate_order_by(bytes_separator, rows.c.created_at, rows.c.id)
        return func.string_agg(rows.c.row_json, ordered, type_=LargeBinary())
    # SQLite joins the rows of an ordered subquery in its order (a test checks it).
    return cast(func.group_concat(rows.c.row_json, separator), LargeBinary())


def _page_select(resource: ResourceExport, dialect: Dialect, continued: bool) -> Select[bytes, int]:
    """One page as one row: (the rows' JSON joined, how many rows)."""
    rows = _rows_select(resource, dialect, continued).subquery("page")
    return select(_joined(rows, dialect), func.count())


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
class _CompiledPage:
    compiled: SQLCompiler

    def fetch(self, conn: Connection, values: dict[str, Any]) -> Sequence[DbRow]:
        """Runs the statement on the DBAPI cursor; rows come back as driver tuples."""
        # The driver's own paramstyle: SQLAlchemy's per-execution work is skipped.
        params = self.compiled.construct_params(values)
        names = self.compiled.positiontup
        driver_params = [params[name] for name in names] if names is not None else params
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self.compiled.string, driver_params)
            return cursor.fetchall()
        finally:
            cursor.close()


def _compile(query: Select[*tuple[Any, ...]], dialect: Dialect) -> _CompiledPage:
    compiled = query.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    return _CompiledPage(compiled)


class BatchReader:
    """Reads one export's rows page by page; ``format`` joins a page into file bytes.

    SQLAlchemy compiles the two page statements (the first page, and the page after a
    keyset position) once for the dialect; each page then runs on the DBAPI cursor with
    values already in the driver's form. Stored timestamps are bound and read through
    SQLAlchemy's own DateTime processors for the dialect, so comparisons match what
    UtcDateTime stores.
    """

    def __init__(
        self,
        dialect: Dialect,
        resource: Resource,
        app_pk: int,
        lower: datetime,
        upper: datetime,
        limit: int,
    ) -> None:
        export = EXPORTS[resource]
        self._pages = [
            _compile(_page_select(export, dialect, continued), dialect)
            for continued in (False, True)
        ]
        self._starts = [
            _compile(_next_select(export, continued), dialect) for continued in (False, True)
        ]
        self._read_time = time_reader(dialect)
        self._write_time = _time_writer(dialect)
        self._values = {"app_pk": app_pk, "upper": self._write_time(upper), "limit": limit}
        self._lower = lower
        self._limit = limit

    def _position(self, after: tuple[datetime, int] | None) -> dict[str, Any]:
        if after is None:
            return {"lower": self._write_time(self._lower)}
        created, row_id = after
        return {
            "lower": self._write_time(max(self._lower, created)),
            "after_created": self._write_time(created),
            "after_id": row_id,
        }

    def fetch(self, conn: Connection, after: tuple[datetime, int] | None) -> Page | None:
        """The page after ``after`` (None: the first page); None when no rows are left."""
        continued = int(after is not None)
        values = {**self._values, **self._position(after)}
        [(data, rows)] = self._pages[continued].fetch(conn, values)
        if not rows:
            return None
        last = None
        if rows == self._limit:  # a full page: more rows may follow
            [(created, row_id)] = self._starts[continued].fetch(
                conn, {**values, "skip": self._limit - 1}
            )
            last = (self._read_time(created), row_id)
        return Page(bytes(data), rows, last)
