"""Rows written straight into the database, for tests that need data to export.

Everything goes through the real database; ``seed_comments`` also returns the rows an
export of them must contain.
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chatferry.db.engine import transaction
from chatferry.db.models import App, Comment, Room, RoomParticipant, User
from chatferry.runtime import Runtime


def app_pk(rt: Runtime, app_id: str) -> int:
    with transaction(rt.sessions) as session:
        pk = session.scalar(select(App.id).where(App.app_id == app_id))
    assert pk is not None
    return pk


def add_user(
    session: Session,
    pk: int,
    email: str,
    created_at: datetime,
    name: str = "",
    avatar_url: str = "",
    token: str | None = None,
    password_hash: str = "",
) -> User:
    user = User(
        app_pk=pk,
        email=email,
        name=name or email.split("@")[0],
        avatar_url=avatar_url,
        authentication_token=token or secrets.token_hex(8),
        password_hash=password_hash,
        created_at=created_at,
    )
    session.add(user)
    session.flush()
    return user


def add_room(
    session: Session,
    pk: int,
    unique_id: str,
    creator: User,
    participants: list[User],
    created_at: datetime,
    type: str = "group",
    name: str = "",
    options: str = "",
    avatar_url: str = "",
) -> Room:
    room = Room(
        app_pk=pk,
        unique_id=unique_id,
        name=name or unique_id,
        type=type,
        options=options,
        creator_id=creator.id,
        avatar_url=avatar_url,
        created_at=created_at,
    )
    session.add(room)
    session.flush()
    for position, user in enumerate(participants):
        session.add(RoomParticipant(room_id=room.id, position=position, user_id=user.id))
    session.flush()
    return room


def add_comment(
    session: Session,
    pk: int,
    unique_id: str,
    room: Room,
    user: User,
    created_at: datetime,
    message: str = "hello",
    type: str = "text",
    payload: str | None = None,
    parent: Comment | None = None,
    disable_link_preview: bool = False,
) -> Comment:
    comment = Comment(
        app_pk=pk,
        unique_id=unique_id,
        room_id=room.id,
        user_id=user.id,
        type=type,
        message=message,
        payload=payload,
        disable_link_preview=disable_link_preview,
        parent_id=parent.id if parent else None,
        created_at=created_at,
    )
    session.add(comment)
    session.flush()
    return comment


def add_users(rt: Runtime, app_id: str, moments: list[datetime], prefix: str = "u") -> list[str]:
    """Adds one user per instant; returns their emails in the same order."""
    pk = app_pk(rt, app_id)
    emails = [f"{prefix}{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(len(moments))]
    with transaction(rt.sessions) as session:
        for email, moment in zip(emails, moments, strict=True):
            add_user(session, pk, email, moment)
    return emails


def naive_utc(moment: datetime) -> str:
    """How export files spell a UTC moment: ``2017-01-02T03:04:05Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


MESSAGES = [
    "Halo doc",
    "Maaf mau tanya..",
    "Line one\nLine two\n\nLine four",
    "Emoji 👩‍👩‍👧‍👦 and flags 🇮🇩 — ok?",
    'Quotes "double" and \\backslash\\ and tab\there',
    "Привет, 明日は雨です ☔",
]


def seed_comments(
    rt: Runtime, app_id: str, moments: list[datetime], tag: str = "seed"
) -> list[dict[str, Any]]:
    """Adds two users, a single room between them and one comment per (aware) moment.

    Every third comment is a reply to the comment before it. Returns the rows an export of
    all of them must contain, in export order (created_at, then insertion order).
    """
    pk = app_pk(rt, app_id)
    first = min(moments)
    with transaction(rt.sessions) as session:
        users = [
            add_user(session, pk, f"{name}.{tag}@example.com", first, name.title(), "", token)
            for name, token in (("alice", f"token-alice-{tag}"), ("budi", f"token-budi-{tag}"))
        ]
        name = f"{users[0].email} {users[1].email}"
        room = add_room(session, pk, f"room-{tag}", users[0], users, first, "single", name)
        comments = _conversation(session, pk, room, users, moments, tag)
        expected = [
            (c.created_at, c.id, _export_row(c, users[i % 2], room, comments[i - 1]))
            for i, c in enumerate(comments)
        ]
    return [row for _, _, row in sorted(expected, key=lambda item: (item[0], item[1]))]


def _conversation(
    session: Session, pk: int, room: Room, users: list[User], moments: list[datetime], tag: str
) -> list[Comment]:
    """One comment per moment, the two users taking turns; every third is a reply."""
    comments: list[Comment] = []
    for index, moment in enumerate(moments):
        message = MESSAGES[index % len(MESSAGES)]
        parent = comments[-1] if index % 3 == 2 else None
        payload = json.dumps({"text": message, "replied_comment_id": parent.id}) if parent else None
        comment = add_comment(
            session,
            pk,
            f"msg-{tag}-{index}",
            room,
            users[index % 2],
            moment,
            message,
            type="reply" if parent else "text",
            payload=payload,
            parent=parent,
            disable_link_preview=index % 5 == 0,
        )
        comments.append(comment)
    return comments


def _export_row(comment: Comment, creator: User, room: Room, before: Comment) -> dict[str, Any]:
    """The comment as an export file holds it (``before``: the comment added before it)."""
    return {
        "Message": comment.message,
        "DisableLinkPreview": comment.disable_link_preview,
        "Type": comment.type,
        "UniqueId": comment.unique_id,
        "CreatorEmail": creator.email,
        "RoomUniqueId": room.unique_id,
        "CreatedAt": naive_utc(comment.created_at),
        "Payload": json.loads(comment.payload) if comment.payload else None,
        "ParentCommentUniqueId": before.unique_id if comment.parent_id else "",
    }
