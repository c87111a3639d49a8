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

from chatferry.db.engine import transaction
from chatferry.db.models import App, Comment, Room, RoomParticipant, User
from chatferry.runtime import Runtime


def app_pk(rt: Runtime, app_id: str) -> int:
    with transaction(rt.sessions) as session:
        pk = session.scalar(select(App.id).where(App.app_id == app_id))
    assert pk is not None
    return pk


def add_user(
    session: Any,
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
    session: Any,
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
    session: Any,
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
    rt: Any, app_id: str, moments: list[datetime], tag: str = "seed"
) -> list[dict[str, Any]]:
    """Adds two users, a single room between them and one comment per (aware) moment.

    Every third comment is a reply to the comment before it. Returns the rows an export of
    all of them must contain, in export order (created_at, then insertion order).
    """
    with transaction(rt.sessions) as session:
        app_pk = session.scalar(select(App.id).where(App.app_id == app_id))
        assert app_pk is not None, f"no app {app_id}"
        first = min(moments)
        users = [
            User(
                app_pk=app_pk,
                email=f"{name}.{tag}@example.com",
                name=name.title(),
                avatar_url="",
                authentication_token=f"token-{name}-{tag}",
                password_hash="",
                created_at=first,
            )
            for name in ("alice", "budi")
        ]
        session.add_all(users)
        session.flush()
        room = Room(
            app_pk=app_pk,
            unique_id=f"room-{tag}",
            name=f"{users[0].email} {users[1].email}",
            type="single",
            options="",
            creator_id=users[0].id,
            avatar_url="",
            created_at=first,
        )
        session.add(room)
        session.flush()
        session.add_all(
            [
                RoomParticipant(room_id=room.id, position=i, user_id=u.id)
                for i, u in enumerate(users)
            ]
        )
        comments: list[Comment] = []
        for index, moment in enumerate(moments):
            message = MESSAGES[index % len(MESSAGES)]
            parent = comments[-1] if index % 3 == 2 else None
            comment = Comment(
                app_pk=app_pk,
                unique_id=f"msg-{tag}-{index}",
                room_id=room.id,
                user_id=users[index % 2].id,
                type="reply" if parent else "text",
                message=message,
                payload=(
                    json.dumps({"text": message, "replied_comment_id": parent.id})
                    if parent
                    else None
                ),
                disable_link_preview=index % 5 == 0,
                parent_id=parent.id if parent else None,
                created_at=moment,
            )
            session.add(comment)
            session.flush()
            comments.append(comment)
        expected = [
            (
                c.created_at,
                c.id,
                {
                    "Message": c.message,
                    "DisableLinkPreview": c.disable_link_preview,
                    "Type": c.type,
                    "UniqueId": c.unique_id,
                    "CreatorEmail": users[i % 2].email,
                    "RoomUniqueId": room.unique_id,
                    "CreatedAt": naive_utc(c.created_at),
                    "Payload": json.loads(c.payload) if c.payload else None,
                    "ParentCommentUniqueId": comments[i - 1].unique_id if c.parent_id else "",
                },
            )
            for i, c in enumerate(comments)
        ]
    return [row for _, _, row in sorted(expected, key=lambda item: (item[0], item[1]))]
