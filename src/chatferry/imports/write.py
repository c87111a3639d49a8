"""Writes checked rows in the caller's transaction, in file order.

Rows go in with multi-row INSERT ... RETURNING, so ids follow the file's order and a
reply can point at a parent written earlier in the same file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import Session

from chatferry.db.models import Comment, Room, RoomParticipant, User, table_of
from chatferry.imports.validate import CommentRow, RoomRow, UserRow

_BATCH = 1000
_comments = table_of(Comment)


def _insert_returning_ids(session: Session, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    ids: list[int] = []
    for start in range(0, len(rows), _BATCH):
        batch = rows[start : start + _BATCH]
        result = session.execute(
            insert(model).returning(model.id, sort_by_parameter_order=True), batch
        )
        ids.extend(row[0] for row in result)
    return ids


def write_users(session: Session, app_pk: int, rows: Sequence[UserRow], hashes: list[str]) -> None:
    """``hashes`` holds the hashes of the rows with a plain password, in row order."""
    plain = iter(hashes)
    values = [
        {
            "app_pk": app_pk,
            "email": r.email,
            "name": r.name,
            "avatar_url": r.avatar_url,
            "authentication_token": r.authentication_token,
            "password_hash": next(plain) if r.password is not None else r.password_hash,
            "created_at": r.created_at,
        }
        for r in rows
    ]
    for start in range(0, len(values), _BATCH):
        session.execute(insert(User), values[start : start + _BATCH])


def write_rooms(session: Session, app_pk: int, rows: Sequence[RoomRow]) -> None:
    ids = _insert_returning_ids(
        session,
        Room,
        [
            {
                "app_pk": app_pk,
                "unique_id": r.unique_id,
                "name": r.name,
                "type": r.type,
                "options": r.options,
                "creator_id": r.creator_id,
                "avatar_url": r.avatar_url,
                "created_at": r.created_at,
            }
            for r in rows
        ],
    )
    participants = [
        {"room_id": room_id, "position": position, "user_id": user_id}
        for room_id, r in zip(ids, rows, strict=True)
        for position, user_id in enumerate(r.participant_ids)
    ]
    for start in range(0, len(participants), _BATCH):
        session.execute(insert(RoomParticipant), participants[start : start + _BATCH])


def _payload_text(payload: dict[str, Any] | None, parent: int | None = None) -> str | None:
    """The payload as stored; a reply's ``replied_comment_id`` becomes its parent's id."""
    if payload is None:
        return None
    if parent is not None:
        payload = {**payload, "replied_comment_id": parent}
    return orjson.dumps(payload).decode()


def write_comments(session: Session, app_pk: int, rows: Sequence[CommentRow]) -> None:
    """Inserts the comments; replies to rows of this file then get their parent's id."""
    ids = _insert_returning_ids(
        session,
        Comment,
        [
            {
                "app_pk": app_pk,
                "unique_id": r.unique_id,
                "room_id": r.room_id,
                "user_id": r.user_id,
                "type": r.type,
                "message": r.message,
                "payload": _payload_text(r.payload, r.parent_id),
                "disable_link_preview": r.disable_link_preview,
                "parent_id": r.parent_id,
                "created_at": r.created_at,
            }
            for r in rows
        ],
    )
    replies = [
        {
            "b_id": comment_id,
            "b_parent": ids[r.parent_row],
            "b_payload": _payload_text(r.payload, ids[r.parent_row]),
        }
        for comment_id, r in zip(ids, rows, strict=True)
        if r.parent_row is not None
    ]
    statement = (
        update(_comments)
        .where(_comments.c.id == bindparam("b_id"))
        .values(parent_id=bindparam("b_parent"), payload=bindparam("b_payload"))
    )
    for start in range(0, len(replies), _BATCH):
        session.connection().execute(statement, replies[start : start + _BATCH])
