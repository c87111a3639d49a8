"""Writes checked rows in the caller's transaction, in file order.

The rows' ids are reserved up front (see chatferry.db.bulk), so they follow the file's
order and a reply written in the same file gets its parent's id and payload in the same
write; the rows then go in through db.bulk.insert_many (COPY on PostgreSQL,
executemany on SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.orm import Session

from chatferry.db.bulk import insert_many, reserve_ids
from chatferry.db.models import Comment, Room, RoomParticipant, User, table_of
from chatferry.imports.rules.comments import CommentRow
from chatferry.imports.rules.rooms import RoomRow
from chatferry.imports.rules.users import UserRow

_users = table_of(User)
_rooms = table_of(Room)
_participants = table_of(RoomParticipant)
_comments = table_of(Comment)

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
