"""Reading one resource in keyset-paginated batches and writing it in the import format.

Each resource has a batch query ordered by (created_at, id) and a row formatter that
emits exactly the spec's import keys, so an export file imports again unchanged.

This is the export's hot loop, so it avoids per-row SQLAlchemy work while staying on
Core statements (portable across SQLite and PostgreSQL): each page is one index seek
(see ``_page_select``), compiled once per export and run on the DBAPI cursor (see
``BatchReader``); the selected columns carry no result processors, rows are unpacked
by position, and timestamps are converted by the dialect's own DateTime processor only
where the driver does not already return datetimes (SQLite stores text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    Column,
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

from chatferry.db.models import Comment, Room, RoomParticipant, User, table_of

# Naive UTC datetimes come out as "2017-05-11T19:14:24Z" (microseconds only if set).
JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z

_users = table_of(User)
_rooms = table_of(Room)
_comments = table_of(Comment)
_participants = table_of(RoomParticipant)
_parents = _comments.alias("parent")


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


class NameCache:
    """One export's cache of a column's values by row id (user emails, room unique ids).

    Bounded: past MAX_ENTRIES per column it starts over, so memory stays flat however
    many rows the export has.
    """

    MAX_ENTRIES = 20_000
    IDS_PER_QUERY = 500  # well under SQLite's bound-parameter limit

    def __init__(self) -> None:
        self._columns: dict[str, dict[int, Any]] = {}

    def names(self, conn: Connection, column: Column[Any], ids: set[int]) -> dict[int, Any]:
        """``column`` of the rows with these ids (of the column's table), by id."""
        table = column.table
        cached = self._columns.setdefault(f"{table.name}.{column.name}", {})
        missing = [row_id for row_id in ids if row_id not in cached]
        if len(cached) + len(missing) > self.MAX_ENTRIES:
            cached.clear()
            missing = list(ids)
        for start in range(0, len(missing), self.IDS_PER_QUERY):
            some = missing[start : start + self.IDS_PER_QUERY]
            for row_id, value in conn.execute(
                select(table.c.id, column).where(table.c.id.in_(some))
            ):
                cached[row_id] = value
        return {row_id: cached[row_id] for row_id in ids}


def _no_lookup(_conn: Connection, _rows: Sequence[DbRow], _cache: NameCache) -> None:
    return None


@dataclass(frozen=True)
class ResourceFormat:
    """A resource's batch query, its extra lookups, and its row formatter.

    The query's first two columns are ``id`` and raw ``created_at`` (the keyset).
    ``lookup`` does any further database reads a batch needs (rooms: participants,
    comments: creator emails and room ids); ``format_rows`` then needs no database.
    It unpacks rows by position, which costs far less per row than attribute access.
    """

    table: Table
    select_rows: Callable[[], Select[Any]]
    format_rows: Callable[[Sequence[DbRow], Any, TimeReader], list[bytes]]
    lookup: Callable[[Connection, Sequence[DbRow], NameCache], Any] = _no_lookup


def _users_select() -> Select[Any]:
    return select(
        _users.c.id,
        _raw(_users.c.created_at).label("created_at"),
        _users.c.email,
        _users.c.name,
        _users.c.avatar_url,
        _users.c.authentication_token,
        _users.c.password_hash,
    )


def _format_users(rows: Sequence[DbRow], _extra: None, read_time: TimeReader) -> list[bytes]:
    dumps = orjson.dumps
    return [
        dumps(
            {
                "Email": email,
                "Name": name,
                "AvatarUrl": avatar_url,
                "AuthenticationToken": token,
                "PasswordHash": password_hash,
                "CreateAt": read_time(created_at),
            },
            option=JSON_OPTIONS,
        )
        for _id, created_at, email, name, avatar_url, token, password_hash in rows
    ]


def _rooms_select() -> Select[Any]:
    return select(
        _rooms.c.id,
        _raw(_rooms.c.created_at).label("created_at"),
        _rooms.c.name,
        _rooms.c.type,
        _rooms.c.options,
        _users.c.email.label("creator_email"),
        _rooms.c.avatar_url,
        _rooms.c.unique_id,
    ).select_from(_rooms.join(_users, _users.c.id == _rooms.c.creator_id))


def _participant_emails(conn: Connection, room_ids: list[int]) -> dict[int, list[str]]:
    query = (
        select(_participants.c.room_id, _users.c.email)
        .select_from(_participants.join(_users, _users.c.id == _participants.c.user_id))
        .where(_participants.c.room_id.in_(room_ids))
        .order_by(_participants.c.room_id, _participants.c.position)
    )
    emails: dict[int, list[str]] = {room_id: [] for room_id in room_ids}
    for room_id, email in conn.execute(query):
        emails[room_id].append(email)
    return emails


def _room_participants(
    conn: Connection, rows: Sequence[DbRow], _cache: NameCache
) -> dict[int, list[str]]:
    return _participant_emails(conn, [row[0] for row in rows])


def _format_rooms(
    rows: Sequence[DbRow], participants: dict[int, list[str]], read_time: TimeReader
) -> list[bytes]:
    dumps = orjson.dumps
    return [
        dumps(
            {
                "Name": name,
                "Type": room_type,
                "Options": options,
                "CreatorEmail": creator_email,
                "CreatedAt": read_time(created_at),
                "AvatarUrl": avatar_url,
                "UniqueId": unique_id,
                "ParticipantEmails": participants[room_id],
            },
            option=JSON_OPTIONS,
        )
        for (
            room_id,
            created_at,
            name,
            room_type,
            options,
            creator_email,
            avatar_url,
            unique_id,
        ) in rows
    ]


def _comments_select() -> Select[Any]:
    # Creator and room come as ids, named from a per-export cache (see _comment_names):
    # a few thousand users and rooms cover many thousand messages, so joining them on
    # every row would repeat the same lookups and strings.
    return select(
        _comments.c.id,
        _raw(_comments.c.created_at).label("created_at"),
        _comments.c.message,
        _raw(_comments.c.disable_link_preview).label("disable_link_preview"),
        _comments.c.type,
        _comments.c.unique_id,
        _comments.c.user_id,
        _comments.c.room_id,
        _comments.c.payload,
        func.coalesce(_parents.c.unique_id, "").label("parent_unique_id"),
    ).select_from(_comments.outerjoin(_parents, _parents.c.id == _comments.c.parent_id))


@dataclass(frozen=True)
class _CommentNames:
    emails: dict[int, str]  # user id -> email
    rooms: dict[int, str]  # room id -> unique id


def _comment_names(conn: Connection, rows: Sequence[DbRow], cache: NameCache) -> _CommentNames:
    return _CommentNames(
        emails=cache.names(conn, _users.c.email, {row[6] for row in rows}),
        rooms=cache.names(conn, _rooms.c.unique_id, {row[7] for row in rows}),
    )


def _format_comments(
    rows: Sequence[DbRow], names: _CommentNames, read_time: TimeReader
) -> list[bytes]:
    dumps = orjson.dumps
    fragment = orjson.Fragment
    emails, rooms = names.emails, names.rooms
    return [
        dumps(
            {
                "Message": message,
                "DisableLinkPreview": bool(disable_link_preview),
                "Type": comment_type,
                "UniqueId": unique_id,
                "CreatorEmail": emails[user_id],
                "RoomUniqueId": rooms[room_id],
                "CreatedAt": read_time(created_at),
                "Payload": fragment(payload) if payload is not None else None,
                "ParentCommentUniqueId": parent_unique_id,
            },
            option=JSON_OPTIONS,
        )
        for (
            _id,
            created_at,
            message,
            disable_link_preview,
            comment_type,
            unique_id,
            user_id,
            room_id,
            payload,
            parent_unique_id,
        ) in rows
    ]


FORMATS: dict[str, ResourceFormat] = {
    "users": ResourceFormat(_users, _users_select, _format_users),
    "rooms": ResourceFormat(_rooms, _rooms_select, _format_rooms, _room_participants),
    "comments": ResourceFormat(_comments, _comments_select, _format_comments, _comment_names),
}


def _in_window(table: Table, app_pk: int, lower: datetime, upper: datetime) -> list[Any]:
    created = _naive(table.c.created_at)
    return [table.c.app_pk == app_pk, created >= lower, created < upper]


def count_rows(
    conn: Connection, resource: str, app_pk: int, lower: datetime, upper: datetime
) -> int:
    """How many rows of ``resource`` the app created in [lower, upper) (naive UTC)."""
    table = FORMATS[resource].table
    query = select(func.count()).select_from(table).where(*_in_window(table, app_pk, lower, upper))
    return int(conn.execute(query).scalar_one())


@dataclass(frozen=True)
class Page:
    """One batch as read from the database, not yet formatted."""

    rows: Sequence[DbRow]
    extra: Any  # the resource's lookup result (rooms: participant emails by room id)
    last: tuple[datetime, int]  # keyset position (created_at, id) of the last row


class BatchReader:
    """Reads one export's rows page by page and formats them.

    SQLAlchemy compiles the two page statements (the first page, and the page after a
    keyset position) once for the dialect; each page then runs on the DBAPI cursor with
    values already in the driver's form, skipping SQLAlchemy's per-execution and per-row
    work. Stored timestamps are bound and read through SQLAlchemy's own DateTime
    processors for the dialect, so comparisons match what UtcDateTime stores.
    ``fetch`` does all the database work of a page (rows and lookups) and ``format``
    none of it.
    """

    def __init__(
        self,
        dialect: Dialect,
        resource: str,
        app_pk: int,
        lower: datetime,
        upper: datetime,
        limit: int,
    ) -> None:
        self._format = FORMATS[resource]
        table, select_rows = self._format.table, self._format.select_rows
        self._first = _compile(_page_select(table, select_rows, continued=False), dialect)
        self._next = _compile(_page_select(table, select_rows, continued=True), dialect)
        self._read_time = time_reader(dialect)
        self._write_time = _time_writer(dialect)
        self._values = {"app_pk": app_pk, "upper": self._write_time(upper), "limit": limit}
        self._lower = lower
        self._names = NameCache()

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
        extra = self._format.lookup(conn, rows, self._names)
        return Page(rows, extra, (last_created, rows[-1][0]))

    def format(self, page: Page) -> bytes:
        """The page's JSON objects, one per row in order, joined by a comma and newline."""
        return b",\n".join(self._format.format_rows(page.rows, page.extra, self._read_time))


def _page_select(
    table: Table, select_rows: Callable[[], Select[Any]], continued: bool
) -> Select[Any]:
    """One page in keyset order, with named parameters for the window and position.

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
    return (
        select_rows()
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


def _time_writer(dialect: Dialect) -> Callable[[datetime], Any]:
    """A naive UTC datetime in the form the dialect stores it (SQLite: its text)."""
    process = DateTime().dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _unchanged
