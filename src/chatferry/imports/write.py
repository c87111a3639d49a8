"""Writes checked rows in the caller's transaction, in file order.

The rows' ids are reserved up front (PostgreSQL: drawn from the table's sequence;
SQLite: after the highest id, under the write lock the transaction already holds), so
they follow the file's order and a reply written in the same file gets its parent's id
and payload in the same INSERT. The rows then go to the driver's own ``executemany``
as tuples: SQLAlchemy's per-row ORM bulk-insert bookkeeping costs many times the
database's own work for a file of thousands of rows. The columns' bind processors
(e.g. aware datetimes to naive UTC) still run, so the stored values are exactly those
SQLAlchemy would store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import Connection, Table, text
from sqlalchemy.orm import Session

from chatferry.db.models import Comment, Room, RoomParticipant, User, table_of
from chatferry.db.types import UtcDateTime
from chatferry.imports.validate import CommentRow, RoomRow, UserRow

_users = table_of(User)
_rooms = table_of(Room)
_participants = table_of(RoomParticipant)
_comments = table_of(Comment)

# Rows per multi-row INSERT on a server database (x 11 columns, far below the bind
# limit of PostgreSQL). SQLite runs a prepared single-row INSERT per row fastest.
ROWS_PER_STATEMENT = 500
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def reserve_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """``count`` new ids for ``table``, ascending, that no other writer will use.

    On SQLite the no-op DELETE makes sure the transaction holds the database's write
    lock (it normally does already), so no other writer can take ids after the highest
    one until this transaction ends, exactly as SQLite's own rowid assignment would.
    """
    if count <= 0:
        return []
    if conn.dialect.name == "postgresql":
        drawn = conn.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table.name, "n": count},
        )
        return sorted(int(value) for value in drawn.scalars())
    conn.exec_driver_sql(f"DELETE FROM {table.name} WHERE 0")
    highest = int(
        conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table.name}").scalar_one()
    )
    return list(range(highest + 1, highest + 1 + count))


def _sqlite_time(value: datetime | None) -> str | None:
    """An aware datetime as SQLite's DATETIME column stores it: naive UTC text."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


_TIME_SAMPLES = (
    datetime(2017, 5, 10, 11, 46, 30, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-7))),
    None,
)


def _processor(conn: Connection, table: Table, key: str) -> Callable[[Any], Any] | None:
    """The column's bind processor; for SQLite's datetimes a faster equivalent.

    SQLAlchemy formats SQLite datetimes field by field, a large part of a big file's
    insert; ``isoformat`` writes the same text, which is checked once here.
    """
    dialect = conn.dialect
    process = table.c[key].type.dialect_impl(dialect).bind_processor(dialect)
    if (
        process is not None
        and dialect.name == "sqlite"
        and isinstance(table.c[key].type, UtcDateTime)
        and all(process(v) == _sqlite_time(v) for v in _TIME_SAMPLES)
    ):
        return _sqlite_time
    return process


def _converter(conn: Connection, table: Table, keys: Sequence[str]) -> Callable[[Any], Any]:
    """A row tuple (in ``keys`` order) to the driver's values, via the bind processors."""
    processors = [
        (index, process)
        for index, key in enumerate(keys)
        if (process := _processor(conn, table, key))
    ]
    if not processors:
        return lambda row: row

    def convert(row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for index, process in processors:
            values[index] = process(values[index])
        return tuple(values)

    return convert


def insert_many(
    conn: Connection, table: Table, keys: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Inserts value tuples (in ``keys`` order) with the driver's executemany."""
    if not rows:
        return
    convert = _converter(conn, table, keys)
    values = [convert(row) for row in rows]
    per_statement = 1 if conn.dialect.name == "sqlite" else ROWS_PER_STATEMENT
    placeholder = _PLACEHOLDERS[conn.dialect.paramstyle]
    one_row = f"({', '.join(placeholder for _ in keys)})"
    columns = ", ".join(keys)
    whole = len(values) - len(values) % per_statement
    for start, end, size in ((0, whole, per_statement), (whole, len(values), len(values) - whole)):
        if start == end:
            continue
        sql = f"INSERT INTO {table.name} ({columns}) VALUES {', '.join([one_row] * size)}"
        params = (
            values[start:end]
            if size == 1
            else [
                tuple(chain.from_iterable(values[offset : offset + size]))
                for offset in range(start, end, size)
            ]
        )
        conn.exec_driver_sql(sql, params)


_USER_KEYS = (
    "app_pk",
    "email",
    "name",
    "avatar_url",
    "authentication_token",
    "password_hash",
    "created_at",
)


def write_users(session: Session, app_pk: int, rows: Sequence[UserRow], hashes: list[str]) -> None:
    """``hashes`` holds the hashes of the rows with a plain password, in row order."""
    plain = iter(hashes)
    values = [
        (
            app_pk,
            r.email,
            r.name,
            r.avatar_url,
            r.authentication_token,
            next(plain) if r.password is not None else r.password_hash,
            r.created_at,
        )
        for r in rows
    ]
    insert_many(session.connection(), _users, _USER_KEYS, values)


_ROOM_KEYS = (
    "id",
    "app_pk",
    "unique_id",
    "name",
    "type",
    "options",
    "creator_id",
    "avatar_url",
    "created_at",
)


def write_rooms(session: Session, app_pk: int, rows: Sequence[RoomRow]) -> None:
    conn = session.connection()
    ids = reserve_ids(conn, _rooms, len(rows))
    values = [
        (
            room_id,
            app_pk,
            r.unique_id,
            r.name,
            r.type,
            r.options,
            r.creator_id,
            r.avatar_url,
            r.created_at,
        )
        for room_id, r in zip(ids, rows, strict=True)
    ]
    insert_many(conn, _rooms, _ROOM_KEYS, values)
    participants = [
        (room_id, position, user_id)
        for room_id, r in zip(ids, rows, strict=True)
        for position, user_id in enumerate(r.participant_ids)
    ]
    insert_many(conn, _participants, ("room_id", "position", "user_id"), participants)


def _payload_text(payload: dict[str, Any] | None, parent: int | None = None) -> str | None:
    """The payload as stored; a reply's ``replied_comment_id`` becomes its parent's id."""
    if payload is None:
        return None
    if parent is not None:
        payload = {**payload, "replied_comment_id": parent}
    return orjson.dumps(payload).decode()


_COMMENT_KEYS = (
    "id",
    "app_pk",
    "unique_id",
    "room_id",
    "user_id",
    "type",
    "message",
    "payload",
    "disable_link_preview",
    "parent_id",
    "created_at",
)


def write_comments(session: Session, app_pk: int, rows: Sequence[CommentRow]) -> None:
    """Inserts the comments; a reply to a row of this file gets that row's reserved id."""
    conn = session.connection()
    ids = reserve_ids(conn, _comments, len(rows))
    values = []
    for comment_id, r in zip(ids, rows, strict=True):
        parent = ids[r.parent_row] if r.parent_row is not None else r.parent_id
        values.append(
            (
                comment_id,
                app_pk,
                r.unique_id,
                r.room_id,
                r.user_id,
                r.type,
                r.message,
                _payload_text(r.payload, parent),
                r.disable_link_preview,
                parent,
                r.created_at,
            )
        )
    insert_many(conn, _comments, _COMMENT_KEYS, values)
