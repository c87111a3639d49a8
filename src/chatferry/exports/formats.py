"""Reading one resource in keyset-paginated batches and writing it in the import format.

Each resource has a batch query ordered by (created_at, id) and a row formatter that
emits exactly the spec's import keys, so an export file imports again unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Row,
    Select,
    Table,
    func,
    select,
    tuple_,
    type_coerce,
)

from chatferry.db.models import Comment, Room, RoomParticipant, User, table_of

# Naive UTC datetimes come out as "2017-05-11T19:14:24Z" (microseconds only if set).
JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z

_users = table_of(User)
_rooms = table_of(Room)
_comments = table_of(Comment)
_participants = table_of(RoomParticipant)
_parents = _comments.alias("parent")


def _naive(column: ColumnElement[Any]) -> ColumnElement[datetime]:
    """Reads a UtcDateTime column as plain naive UTC (no per-row Python conversion)."""
    return type_coerce(column, DateTime())


@dataclass(frozen=True)
class ResourceFormat:
    table: Table
    select_rows: Callable[[], Select[Any]]
    format_batch: Callable[[Connection, Sequence[Row[Any]]], list[bytes]]


def _users_select() -> Select[Any]:
    return select(
        _users.c.id,
        _naive(_users.c.created_at).label("created_at"),
        _users.c.email,
        _users.c.name,
        _users.c.avatar_url,
        _users.c.authentication_token,
        _users.c.password_hash,
    )


def _format_users(_conn: Connection, rows: Sequence[Row[Any]]) -> list[bytes]:
    dumps = orjson.dumps
    return [
        dumps(
            {
                "Email": r.email,
                "Name": r.name,
                "AvatarUrl": r.avatar_url,
                "AuthenticationToken": r.authentication_token,
                "PasswordHash": r.password_hash,
                "CreateAt": r.created_at,
            },
            option=JSON_OPTIONS,
        )
        for r in rows
    ]


def _rooms_select() -> Select[Any]:
    return select(
        _rooms.c.id,
        _naive(_rooms.c.created_at).label("created_at"),
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


def _format_rooms(conn: Connection, rows: Sequence[Row[Any]]) -> list[bytes]:
    participants = _participant_emails(conn, [r.id for r in rows])
    dumps = orjson.dumps
    return [
        dumps(
            {
                "Name": r.name,
                "Type": r.type,
                "Options": r.options,
                "CreatorEmail": r.creator_email,
                "CreatedAt": r.created_at,
                "AvatarUrl": r.avatar_url,
                "UniqueId": r.unique_id,
                "ParticipantEmails": participants[r.id],
            },
            option=JSON_OPTIONS,
        )
        for r in rows
    ]


def _comments_select() -> Select[Any]:
    return select(
        _comments.c.id,
        _naive(_comments.c.created_at).label("created_at"),
        _comments.c.message,
        _comments.c.disable_link_preview,
        _comments.c.type,
        _comments.c.unique_id,
        _users.c.email.label("creator_email"),
        _rooms.c.unique_id.label("room_unique_id"),
        _comments.c.payload,
        func.coalesce(_parents.c.unique_id, "").label("parent_unique_id"),
    ).select_from(
        _comments.join(_users, _users.c.id == _comments.c.user_id)
        .join(_rooms, _rooms.c.id == _comments.c.room_id)
        .outerjoin(_parents, _parents.c.id == _comments.c.parent_id)
    )


def _format_comments(_conn: Connection, rows: Sequence[Row[Any]]) -> list[bytes]:
    dumps = orjson.dumps
    fragment = orjson.Fragment
    return [
        dumps(
            {
                "Message": r.message,
                "DisableLinkPreview": bool(r.disable_link_preview),
                "Type": r.type,
                "UniqueId": r.unique_id,
                "CreatorEmail": r.creator_email,
                "RoomUniqueId": r.room_unique_id,
                "CreatedAt": r.created_at,
                "Payload": fragment(r.payload) if r.payload is not None else None,
                "ParentCommentUniqueId": r.parent_unique_id,
            },
            option=JSON_OPTIONS,
        )
        for r in rows
    ]


FORMATS: dict[str, ResourceFormat] = {
    "users": ResourceFormat(_users, _users_select, _format_users),
    "rooms": ResourceFormat(_rooms, _rooms_select, _format_rooms),
    "comments": ResourceFormat(_comments, _comments_select, _format_comments),
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


def read_batch(
    conn: Connection,
    resource: str,
    app_pk: int,
    lower: datetime,
    upper: datetime,
    after: tuple[datetime, int] | None,
    limit: int,
) -> Sequence[Row[Any]]:
    """The next ``limit`` rows after the keyset position ``after`` (created_at, id)."""
    fmt = FORMATS[resource]
    table = fmt.table
    query = fmt.select_rows().where(*_in_window(table, app_pk, lower, upper))
    if after is not None:
        query = query.where(tuple_(_naive(table.c.created_at), table.c.id) > tuple_(*after))
    query = query.order_by(table.c.created_at, table.c.id).limit(limit)
    return conn.execute(query).all()
