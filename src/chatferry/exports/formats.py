"""Reading one resource in keyset-paginated batches, each row already in the import
format as the database rendered it (see columns.py and render.py).

Each page is one index seek on (app_pk, created_at, id), compiled once per export and
run on the DBAPI cursor; a row comes back as (id, created_at, JSON bytes), so a page's
file chunk is its rows' bytes joined, with no per-row Python formatting.
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
    Select,
    Table,
    bindparam,
    func,
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
    """One batch as read from the database: (id, created_at, JSON bytes) rows."""

    rows: Sequence[DbRow]
    last: tuple[datetime, int]  # keyset position (created_at, id) of the last row


def _page_select(resource: ResourceExport, dialect: Dialect, continued: bool) -> Select[Any]:
    """One page in keyset order, with named parameters for the window and position.

    The position is spelled as a range on created_at plus a tie-break on id, not as a
    row-value comparison: both SQLite and PostgreSQL then seek the (app_pk, created_at,
    id) index straight to it, so every page costs the same however far the export is.
    """
    table: Table = resource.table
    created = _raw(table.c.created_at)
    conditions = [
        table.c.app_pk == bindparam("app_pk"),
        created >= bindparam("lower", type_=NullType()),
        created < bindparam("upper", type_=NullType()),
    ]
    if continued:
        after_created = bindparam("after_created", type_=NullType())
        conditions.append(or_(created > after_created, table.c.id > bindparam("after_id")))
    return (
        select(table.c.id, created.label("created_at"), row_json(resource, dialect))
        .select_from(resource.source)
        .where(*conditions)
        .order_by(table.c.created_at, table.c.id)
        .limit(bindparam("limit", type_=Integer()))
    )


@dataclass(frozen=True)
class _CompiledPage:
    compiled: SQLCompiler

    def fetch(self, conn: Connection, values: dict[str, Any]) -> Sequence[DbRow]:
        """Runs the statement on the DBAPI cursor; rows come back as driver tuples."""
        params = self.compiled.construct_params(values)
        names = self.compiled.positiontup
        driver_params = [params[name] for name in names] if names is not None else params
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self.compiled.string, driver_params)
            return cursor.fetchall()
        finally:
            cursor.close()


def _compile(query: Select[Any], dialect: Dialect) -> _CompiledPage:
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
        self._first = _compile(_page_select(export, dialect, continued=False), dialect)
        self._next = _compile(_page_select(export, dialect, continued=True), dialect)
        self._read_time = time_reader(dialect)
        self._write_time = _time_writer(dialect)
        self._values = {"app_pk": app_pk, "upper": self._write_time(upper), "limit": limit}
        self._lower = lower

    def fetch(self, conn: Connection, after: tuple[datetime, int] | None) -> Page | None:
        """The page after ``after`` (None: the first page); None when no rows are left."""
        if after is None:
            page, values = self._first, {"lower": self._write_time(self._lower)}
        else:
            created, row_id = after
            page = self._next
            values = {
                "lower": self._write_time(max(self._lower, created)),
                "after_created": self._write_time(created),
                "after_id": row_id,
            }
        rows = page.fetch(conn, {**self._values, **values})
        if not rows:
            return None
        last_created = self._read_time(rows[-1][1])
        assert isinstance(last_created, datetime)
        return Page(rows, (last_created, rows[-1][0]))

    @staticmethod
    def format(page: Page) -> bytes:
        """The page's JSON objects, one per row in order, joined by a comma and newline."""
        return b",\n".join([bytes(row[2]) for row in page.rows])
