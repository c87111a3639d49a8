"""The rules of a rooms file: parse each row, then unique ids unique in the file and new
to the app, creators and participants users of the app. Pure: what the app already
holds comes in as ``KnownForRooms``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from chatferry.imports.rules.common import (
    MAX_NESTING,
    MAX_UNIQUE_ID,
    Parsed,
    Problem,
    firsts,
    kind,
    repeats,
    row_number,
    shown,
)
from chatferry.imports.rules.fields import NUL, RowReader, nested_deeper_than, nul_problem

ROOM_TYPES = ("single", "group")
FIELDS = (
    "UniqueId",
    "CreatorEmail",
    "ParticipantEmails",
    "Type",
    "Name",
    "Options",
    "AvatarUrl",
    "CreatedAt",
)


@dataclass(slots=True)  # one a row: see ROW_RECORDS in common.py
class RoomDraft:
    """A parsed rooms row; a field with a problem holds "" (or the default date)."""

    key: str | None
    unique_id: str
    name: str
    type: str
    options: str
    creator_email: str
    avatar_url: str
    created_at: datetime
    participant_emails: tuple[str, ...]


@dataclass(slots=True)  # one a row: see ROW_RECORDS in common.py
class RoomRow:
    unique_id: str
    name: str
    type: str
    options: str
    creator_id: int
    avatar_url: str
    created_at: datetime
    participant_ids: list[int]


@dataclass(frozen=True, slots=True)
class KnownForRooms:
    """What the app holds of what the file names: room unique ids, users by email."""

    unique_ids: Set[str]
    user_ids: Mapping[str, int]


def _options(read: RowReader) -> str:
    value = read.raw.get("Options")
    if value is None:
        return ""
    if isinstance(value, str):
        return read.string("Options")
    if not isinstance(value, dict):
        read.add("Options", f"Options must be a string or a JSON object, got {kind(value)}")
        return ""
    if nested_deeper_than(value, MAX_NESTING):
        read.add("Options", f"Options nests objects and arrays more than {MAX_NESTING} deep")
        return ""
    return orjson.dumps(value).decode()


def _participants(read: RowReader) -> tuple[str, ...]:
    value = read.raw.get("ParticipantEmails")
    if value is None:
        read.add("ParticipantEmails", "ParticipantEmails is required: a list of user emails")
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        read.add("ParticipantEmails", "ParticipantEmails must be a list of email strings")
        return ()
    if any(NUL in email for email in value):
        read.add("ParticipantEmails", nul_problem("an email of ParticipantEmails"))
        return ()
    if not value:
        read.add("ParticipantEmails", "ParticipantEmails is empty: a room needs participants")
    seen: set[str] = set()
    for email in value:
        if email in seen:
            read.add("ParticipantEmails", f"{shown(email)} is listed more than once")
        seen.add(email)
    return tuple(value)


def _room_type(read: RowReader, creator: str, people: tuple[str, ...]) -> str:
    """The Type; a single room's participants and creator are checked too."""
    room_type = read.string("Type", required=True)
    if room_type and room_type not in ROOM_TYPES:
        read.add("Type", f'Type {shown(room_type)} is not valid: use "single" or "group"')
    elif room_type == "single" and people:
        if len(people) != 2:
            read.add(
                "ParticipantEmails",
                f"a single room needs exactly 2 participants, this one has {len(people)}",
            )
        elif creator and creator not in people:
            read.add(
                "CreatorEmail",
                f"CreatorEmail {shown(creator)} must be one of the single room's participants",
            )
    return room_type


def parse_room(index: int, raw: dict[str, Any], now: datetime) -> Parsed[RoomDraft]:
    read = RowReader(index, raw, "UniqueId", MAX_UNIQUE_ID)
    unique_id = read.string("UniqueId", required=True, max_len=MAX_UNIQUE_ID)
    creator = read.string("CreatorEmail", required=True)
    people = _participants(read)
    room_type = _room_type(read, creator, people)
    name = read.string("Name")
    if room_type == "single" and len(people) == 2:
        name = f"{people[0]} {people[1]}"  # the spec names a single room after its two people
    draft = RoomDraft(
        key=read.key,
        unique_id=unique_id,
        name=name,
        type=room_type,
        options=_options(read),
        creator_email=creator,
        avatar_url=read.url("AvatarUrl"),
        created_at=read.moment("CreatedAt", now),
        participant_emails=people,
    )
    return read.parsed(draft)


def in_file(drafts: Sequence[RoomDraft]) -> Iterator[Problem]:
    """Each unique id belongs to one row of the file."""
    for i, unique_id, first in repeats([d.unique_id for d in drafts]):
        message = f"UniqueId {shown(unique_id)} is also used by {row_number(first)}"
        yield Problem(i, drafts[i].key, "UniqueId", message)


def against_app(drafts: Sequence[RoomDraft], known: KnownForRooms) -> Iterator[Problem]:
    """Unique ids are new to the app; creators and participants are its users."""
    for i, unique_id in firsts(d.unique_id for d in drafts):
        if unique_id in known.unique_ids:
            message = f"a room with UniqueId {shown(unique_id)} already exists in this app"
            yield Problem(i, drafts[i].key, "UniqueId", message)
    for i, d in enumerate(drafts):
        if d.creator_email and d.creator_email not in known.user_ids:
            message = (
                f"CreatorEmail {shown(d.creator_email)} is not a user of this app: import it first"
            )
            yield Problem(i, d.key, "CreatorEmail", message)
        for email in d.participant_emails:
            if email not in known.user_ids:
                message = f"participant {shown(email)} is not a user of this app: import it first"
                yield Problem(i, d.key, "ParticipantEmails", message)


def build_rows(drafts: Sequence[RoomDraft], known: KnownForRooms) -> list[RoomRow]:
    """The rows to write; call only when no step found a problem."""
    users = known.user_ids
    return [
        RoomRow(
            unique_id=d.unique_id,
            name=d.name,
            type=d.type,
            options=d.options,
            creator_id=users[d.creator_email],
            avatar_url=d.avatar_url,
            created_at=d.created_at,
            participant_ids=[users[email] for email in d.participant_emails],
        )
        for d in drafts
    ]
