"""What an export file holds, declared once per resource: each key of the import format,
the column (or expression) it comes from, and how its value is written.

The file's rows are rendered to JSON by the database itself (see render.py) from these
declarations; ``NOT_EXPORTED`` names every stored column that is deliberately left out,
and a test checks that every column of the tables is one or the other (in the spirit of
Zulip's export sanity check), so a new column cannot silently go missing from backups.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, Table, func, select

from chatferry.db.models import Comment, Room, RoomParticipant, User, table_of
from chatferry.resources import Resource

_users = table_of(User)
_rooms = table_of(Room)
_comments = table_of(Comment)
_participants = table_of(RoomParticipant)
_creators = _users.alias("creator")
_parents = _comments.alias("parent")
_members = _users.alias("member")


class Kind(Enum):
    """How a value is written in the file."""

    TEXT = "a JSON string"
    BOOL = "true or false"
    TIME = "an RFC 3339 UTC time (2017-05-11T19:14:24Z)"
    RAW_JSON = "stored JSON text, written as it is (or null)"
    TEXT_ARRAY = "a JSON array of strings"


@dataclass(frozen=True)
class ExportColumn:
    """A key of the file. ``value`` is an expression over the resource's FROM clause;
    for a TEXT_ARRAY, a correlated SELECT of (element, position), the array in position
    order."""

    key: str  # the import format's key
    kind: Kind
    value: ColumnElement[Any] | Select[Any]


@dataclass(frozen=True)
class ResourceExport:
    table: Table  # the resource's rows; exports page through it by (created_at, id)
    source: FromClause  # the table with the joins its columns need
    columns: tuple[ExportColumn, ...]

    @property
    def keys(self) -> list[str]:
        return [column.key for column in self.columns]


def _participant_emails(room: Table) -> Select[Any]:
    """The room's participants' (email, position), in the room's order."""
    return (
        select(_members.c.email.label("element"), _participants.c.position.label("position"))
        .select_from(_participants.join(_members, _members.c.id == _participants.c.user_id))
        .where(_participants.c.room_id == room.c.id)
        .order_by(_participants.c.position)
        .correlate(room)
    )


USERS = ResourceExport(
    table=_users,
    source=_users,
    columns=(
        ExportColumn("Email", Kind.TEXT, _users.c.email),
        ExportColumn("Name", Kind.TEXT, _users.c.name),
        ExportColumn("AvatarUrl", Kind.TEXT, _users.c.avatar_url),
        ExportColumn("AuthenticationToken", Kind.TEXT, _users.c.authentication_token),
        ExportColumn("PasswordHash", Kind.TEXT, _users.c.password_hash),
        ExportColumn("CreateAt", Kind.TIME, _users.c.created_at),  # sic: the spec's key
    ),
)

ROOMS = ResourceExport(
    table=_rooms,
    source=_rooms.join(_creators, _creators.c.id == _rooms.c.creator_id),
    columns=(
        ExportColumn("Name", Kind.TEXT, _rooms.c.name),
        ExportColumn("Type", Kind.TEXT, _rooms.c.type),
        ExportColumn("Options", Kind.TEXT, _rooms.c.options),
        ExportColumn("CreatorEmail", Kind.TEXT, _creators.c.email),
        ExportColumn("CreatedAt", Kind.TIME, _rooms.c.created_at),
        ExportColumn("AvatarUrl", Kind.TEXT, _rooms.c.avatar_url),
        ExportColumn("UniqueId", Kind.TEXT, _rooms.c.unique_id),
        ExportColumn("ParticipantEmails", Kind.TEXT_ARRAY, _participant_emails(_rooms)),
    ),
)

COMMENTS = ResourceExport(
    table=_comments,
    source=_comments.join(_creators, _creators.c.id == _comments.c.user_id)
    .join(_rooms, _rooms.c.id == _comments.c.room_id)
    .outerjoin(_parents, _parents.c.id == _comments.c.parent_id),
    columns=(
        ExportColumn("Message", Kind.TEXT, _comments.c.message),
        ExportColumn("DisableLinkPreview", Kind.BOOL, _comments.c.disable_link_preview),
        ExportColumn("Type", Kind.TEXT, _comments.c.type),
        ExportColumn("UniqueId", Kind.TEXT, _comments.c.unique_id),
        ExportColumn("CreatorEmail", Kind.TEXT, _creators.c.email),
        ExportColumn("RoomUniqueId", Kind.TEXT, _rooms.c.unique_id),
        ExportColumn("CreatedAt", Kind.TIME, _comments.c.created_at),
        ExportColumn("Payload", Kind.RAW_JSON, _comments.c.payload),
        ExportColumn("ParentCommentUniqueId", Kind.TEXT, func.coalesce(_parents.c.unique_id, "")),
    ),
)

EXPORTS: dict[Resource, ResourceExport] = {
    Resource.USERS: USERS,
    Resource.ROOMS: ROOMS,
    Resource.COMMENTS: COMMENTS,
}

# Stored columns a file leaves out, and why (see the module's docstring).
NOT_EXPORTED: dict[str, str] = {
    "users.id": "an internal row id; users are named by Email",
    "users.app_pk": "the app is the one being exported",
    "rooms.id": "an internal row id; rooms are named by UniqueId",
    "rooms.app_pk": "the app is the one being exported",
    "rooms.creator_id": "exported as CreatorEmail",
    "room_participants.room_id": "the participants are exported inside their room",
    "room_participants.user_id": "exported as ParticipantEmails",
    "comments.id": "an internal row id; comments are named by UniqueId",
    "comments.app_pk": "the app is the one being exported",
    "comments.room_id": "exported as RoomUniqueId",
    "comments.user_id": "exported as CreatorEmail",
    "comments.parent_id": "exported as ParentCommentUniqueId",
}
