"""What both converters build: users, rooms and comments in the spec's import keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chatferry.convert.ids import rfc3339

Row = dict[str, Any]


@dataclass
class User:
    key: str  # the source's id (a Mattermost username, a Slack user id)
    email: str
    name: str
    avatar: str
    token: str
    first_ms: int | None = None  # the user's first message

    def row(self, default_ms: int) -> Row:
        ms = self.first_ms if self.first_ms is not None else default_ms
        return {
            "Email": self.email,
            "Name": self.name,
            "AvatarUrl": self.avatar,
            "AuthenticationToken": self.token,
            "CreateAt": rfc3339(ms),
        }


@dataclass
class Room:
    key: str  # the source's id
    unique_id: str
    name: str
    kind: str  # channel, dm, group_dm
    members: list[str]  # user keys
    creator: str = ""  # a user key, when the source names one
    created_ms: int | None = None
    options: str = ""
    authors: dict[str, int] = field(default_factory=dict)  # user key -> first message

    def note_author(self, user: str, ms: int) -> None:
        if user not in self.authors or ms < self.authors[user]:
            self.authors[user] = ms


def comment_row(
    unique_id: str, room: Room, email: str, ms: int, text: str, parent: str = ""
) -> Row:
    """A text comment, or a reply when ``parent`` names the root's UniqueId."""
    payload = {"text": text, "replied_comment_id": 1} if parent else None
    return _comment(
        unique_id, room, email, ms, text, "reply" if parent else "text", payload, parent
    )


def file_row(unique_id: str, room: Room, email: str, ms: int, url: str, title: str) -> Row:
    payload = {"url": url, "caption": title}
    return _comment(unique_id, room, email, ms, title, "file_attachment", payload, "")


def _comment(
    unique_id: str,
    room: Room,
    email: str,
    ms: int,
    text: str,
    kind: str,
    payload: dict[str, Any] | None,
    parent: str,
) -> Row:
    return {
        "Message": text,
        "DisableLinkPreview": False,
        "Type": kind,
        "UniqueId": unique_id,
        "CreatorEmail": email,
        "RoomUniqueId": room.unique_id,
        "CreatedAt": rfc3339(ms),
        "Payload": payload,
        "ParentCommentUniqueId": parent,
    }
