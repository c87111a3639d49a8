"""The rules of a comments file: parse each row (payloads by message type), then unique
ids unique in the file and new to the app, rooms and creators of the app, and a reply's
parent earlier in the file or in the app, in the same room. Pure: what the app already
holds comes in as ``KnownForComments``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chatferry.imports.rules import plain
from chatferry.imports.rules.common import (
    MAX_UNIQUE_ID,
    Parsed,
    Problem,
    first_rows,
    kind,
    repeats,
    row_number,
    shown,
)
from chatferry.imports.rules.fields import RowReader
from chatferry.imports.rules.payloads import plain_payload, read_payload

COMMENT_TYPES = (
    "text",
    "reply",
    "file_attachment",
    "custom",
    "location",
    "contact_person",
    "buttons",
    "card",
    "carousel",
    "account_linking",
    "button_postback_response",
)
FIELDS = (
    "UniqueId",
    "RoomUniqueId",
    "CreatorEmail",
    "Type",
    "Message",
    "DisableLinkPreview",
    "Payload",
    "ParentCommentUniqueId",
    "CreatedAt",
)
_PARENT = "ParentCommentUniqueId"
_TYPES = frozenset(COMMENT_TYPES)


@dataclass(slots=True)  # one a row: see ROW_RECORDS in common.py
class CommentDraft:
    """A parsed comments row; a field with a problem holds "" (or its default)."""

    key: str | None
    unique_id: str
    room_unique_id: str
    creator_email: str
    type: str
    message: str
    payload: dict[str, Any] | None
    disable_link_preview: bool
    parent_unique_id: str  # a reply's parent; "" for other types
    created_at: datetime


@dataclass(slots=True)  # one a row: see ROW_RECORDS in common.py
class CommentRow:
    unique_id: str
    room_id: int
    user_id: int
    type: str
    message: str
    payload: dict[str, Any] | None
    disable_link_preview: bool
    created_at: datetime
    parent_id: int | None = None  # a comment already in the app
    parent_row: int | None = None  # an earlier row of this file (its index in the rows)


@dataclass(slots=True)  # one a row: see ROW_RECORDS in common.py
class StoredComment:
    id: int
    room_id: int


@dataclass(frozen=True, slots=True)
class KnownForComments:
    """What the app holds of what the file names: comments (by the file's unique ids and
    parent ids), rooms by unique id, users by email."""

    comments: Mapping[str, StoredComment]
    room_ids: Mapping[str, int]
    user_ids: Mapping[str, int]


def _comment_type(read: RowReader) -> str:
    comment_type = read.string("Type", required=True)
    if comment_type and comment_type not in COMMENT_TYPES:
        message = f"Type {shown(comment_type)} is not valid: use one of " + ", ".join(COMMENT_TYPES)
        read.add("Type", message)
        return ""
    return comment_type


def _preview(read: RowReader) -> bool:
    value = read.raw.get("DisableLinkPreview", False)
    if value is None:
        return False
    if not isinstance(value, bool):
        read.add(
            "DisableLinkPreview", f"DisableLinkPreview must be true or false, got {kind(value)}"
        )
        return False
    return value


def _parent(read: RowReader, comment_type: str) -> str:
    """A reply's ParentCommentUniqueId (required); other types must not have one."""
    parent = read.string(_PARENT)
    if comment_type == "reply" and not parent:
        read.add(
            _PARENT, f"{_PARENT} is required for a reply: the UniqueId of the comment it replies to"
        )
    elif comment_type != "reply" and parent:
        read.add(
            _PARENT, f"{_PARENT} is only used with Type reply, not {comment_type or 'this type'}"
        )
        return ""
    return parent


def parse_comment(index: int, raw: dict[str, Any], now: datetime) -> Parsed[CommentDraft]:
    read = RowReader(index, raw, "UniqueId", MAX_UNIQUE_ID)
    unique_id = read.string("UniqueId", required=True, max_len=MAX_UNIQUE_ID)
    room = read.string("RoomUniqueId", required=True)
    creator = read.string("CreatorEmail", required=True)
    comment_type = _comment_type(read)
    draft = CommentDraft(
        key=read.key,
        unique_id=unique_id,
        room_unique_id=room,
        creator_email=creator,
        type=comment_type,
        message=read.string("Message"),
        disable_link_preview=_preview(read),
        payload=read_payload(read, comment_type) if comment_type else None,
        parent_unique_id=_parent(read, comment_type),
        created_at=read.moment("CreatedAt", now),
    )
    return read.parsed(draft)


def _plain_columns(rows: Sequence[dict[str, Any]]) -> list[list[Any]] | None:
    """The string and flag columns of ``plain_drafts``, or None if one has a problem."""
    found = [
        plain.strings(plain.column(rows, "UniqueId"), required=True, max_len=MAX_UNIQUE_ID),
        plain.strings(plain.column(rows, "RoomUniqueId"), required=True),
        plain.strings(plain.column(rows, "CreatorEmail"), required=True),
        plain.strings(plain.column(rows, "Type"), required=True),
        plain.strings(plain.column(rows, "Message")),
        plain.strings(plain.column(rows, _PARENT)),
        plain.flags(plain.column(rows, "DisableLinkPreview", False)),
    ]
    return None if any(values is None for values in found) else found  # type: ignore[return-value]


def plain_drafts(rows: Sequence[dict[str, Any]], now: datetime) -> list[CommentDraft] | None:
    """What ``parse_comment`` makes of every row when no row has a problem of its own, a
    column at a time (see rules.plain); None when a row might have one."""
    columns = _plain_columns(rows)
    if columns is None:
        return None
    unique_ids, rooms, creators, types, messages, parents, previews = columns
    if not _TYPES.issuperset(types) or [t == "reply" for t in types] != list(map(bool, parents)):
        return None
    payloads = plain.column(rows, "Payload")
    checked = zip(types, payloads, strict=True)
    if not all([plain_payload(t, p) for t, p in checked if p is not None or t != "text"]):
        return None
    times = plain.moments(plain.column(rows, "CreatedAt"), now)
    if times is None:
        return None
    fields = (unique_ids, rooms, creators, types, messages, payloads, previews, parents, times)
    return list(map(CommentDraft, unique_ids, *fields))


def _first_rows(drafts: Sequence[CommentDraft]) -> dict[str, int]:
    """Each unique id of the file -> the row it first appears in."""
    return first_rows([d.unique_id for d in drafts])


def _replies(drafts: Sequence[CommentDraft]) -> list[int]:
    """The rows that name a parent."""
    return [i for i, d in enumerate(drafts) if d.parent_unique_id]


def _earlier_parent(drafts: Sequence[CommentDraft], first: dict[str, int], i: int) -> int | None:
    """The row of row ``i``'s parent when it comes earlier in the file."""
    parent = drafts[i].parent_unique_id
    at = first.get(parent) if parent else None
    return at if at is not None and at < i else None


def in_file(drafts: Sequence[CommentDraft]) -> Iterator[Problem]:
    """Each unique id belongs to one row; a parent earlier in the file is in the same room."""
    for i, unique_id, first_row in repeats([d.unique_id for d in drafts]):
        message = f"UniqueId {shown(unique_id)} is also used by {row_number(first_row)}"
        yield Problem(i, drafts[i].key, "UniqueId", message)
    first = _first_rows(drafts)
    for i in _replies(drafts):
        at = _earlier_parent(drafts, first, i)
        d = drafts[i]
        if at is not None and drafts[at].room_unique_id != d.room_unique_id:
            parent = shown(d.parent_unique_id)
            message = f"the parent comment {parent} ({row_number(at)}) is in another room"
            yield Problem(i, d.key, _PARENT, message)


def _references(i: int, d: CommentDraft, known: KnownForComments) -> Iterator[Problem]:
    if d.room_unique_id and d.room_unique_id not in known.room_ids:
        message = (
            f"RoomUniqueId {shown(d.room_unique_id)} is not a room of this app: import it first"
        )
        yield Problem(i, d.key, "RoomUniqueId", message)
    if d.creator_email and d.creator_email not in known.user_ids:
        message = (
            f"CreatorEmail {shown(d.creator_email)} is not a user of this app: import it first"
        )
        yield Problem(i, d.key, "CreatorEmail", message)


def _parent_in_app(
    i: int, d: CommentDraft, first: dict[str, int], known: KnownForComments
) -> Iterator[Problem]:
    """A parent that is not earlier in the file: stored in the same room, or a problem."""
    parent = d.parent_unique_id
    stored = known.comments.get(parent)
    if stored is not None:
        room_id = known.room_ids.get(d.room_unique_id)
        if room_id is not None and stored.room_id != room_id:
            yield Problem(
                i, d.key, _PARENT, f"the parent comment {shown(parent)} is in another room"
            )
    elif first.get(parent) == i:
        message = (
            "the comment names itself as its parent comment: a reply's parent is another comment"
        )
        yield Problem(i, d.key, _PARENT, message)
    elif parent in first:
        message = (
            f"the parent comment {shown(parent)} comes later in the file "
            f"({row_number(first[parent])}): put a parent before its replies"
        )
        yield Problem(i, d.key, _PARENT, message)
    else:
        message = (
            f"no comment with UniqueId {shown(parent)} exists in this app or earlier in the file"
        )
        yield Problem(i, d.key, _PARENT, message)


def against_app(drafts: Sequence[CommentDraft], known: KnownForComments) -> Iterator[Problem]:
    """Unique ids are new to the app; rooms and creators are the app's; a reply's parent
    that is not earlier in the file is a comment of the app in the same room."""
    first = _first_rows(drafts)
    for i in sorted(first[unique_id] for unique_id in first.keys() & known.comments.keys()):
        message = f"a comment with UniqueId {shown(drafts[i].unique_id)} already exists in this app"
        yield Problem(i, drafts[i].key, "UniqueId", message)
    room_ids, user_ids = known.room_ids, known.user_ids
    for i, d in enumerate(drafts):
        if d.room_unique_id not in room_ids or d.creator_email not in user_ids:
            yield from _references(i, d, known)
    for i in _replies(drafts):
        if _earlier_parent(drafts, first, i) is None:
            yield from _parent_in_app(i, drafts[i], first, known)


def build_rows(drafts: Sequence[CommentDraft], known: KnownForComments) -> list[CommentRow]:
    """The rows to write; call only when no step found a problem (so every row is
    written, and a parent's row in the file is its index in the rows)."""
    room_ids, user_ids = known.room_ids, known.user_ids
    rows = [
        CommentRow(
            d.unique_id,
            room_ids[d.room_unique_id],
            user_ids[d.creator_email],
            d.type,
            d.message,
            d.payload,
            d.disable_link_preview,
            d.created_at,
        )
        for d in drafts
    ]
    first = _first_rows(drafts)
    for i in _replies(drafts):
        row = rows[i]
        row.parent_row = _earlier_parent(drafts, first, i)
        if row.parent_row is None:
            row.parent_id = known.comments[drafts[i].parent_unique_id].id
    return rows
