"""Checks an import file against the spec's rules, reporting every problem at once.

``parse_file`` checks the content (UTF-8, JSON, an array of objects, not empty);
``check_users``, ``check_rooms`` and ``check_comments`` apply the per-resource rules,
looking up what already exists in the app, and return the rows ready to be written
or the list of problems: ``{"row", "key", "field", "message"}`` for each.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import orjson
from sqlalchemy import Connection, Table, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY

from chatferry.db.models import Comment, Room, User, table_of
from chatferry.errors import ChatferryError
from chatferry.imports.passwords import hash_problem

_users = table_of(User)
_rooms = table_of(Room)
_comments = table_of(Comment)

_LOOKUP_CHUNK = 900
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL = re.compile(r"^[^@\s\"(),:;<>\[\\\]]+@" + _LABEL + r"(?:\." + _LABEL + r")+$")
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
MAX_EMAIL = 320
MAX_TOKEN = 200
MAX_UNIQUE_ID = 200

ROOM_TYPES = ("single", "group")
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


@dataclass(frozen=True)
class Problem:
    row: int | None
    key: str | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "key": self.key, "field": self.field, "message": self.message}


class ImportRejected(ChatferryError):
    """The file cannot be imported; ``problems`` lists what is wrong, row by row."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems


def by_row(problems: list[Problem]) -> list[Problem]:
    """Problems in row order (stable: a row's problems keep the order they were found)."""
    return sorted(problems, key=lambda p: -1 if p.row is None else p.row)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


# --- the file as a whole -------------------------------------------------------------


def parse_file(data: bytes) -> list[dict[str, Any]]:
    """The file's rows; raises ImportRejected naming exactly what is wrong with it."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportRejected(
            f"the file is not valid UTF-8 text (invalid byte at position {exc.start}): "
            "save it as UTF-8 and upload it again"
        ) from None
    if not data.strip():
        raise ImportRejected("the file is not valid JSON: it is empty")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ImportRejected(f"the file is not valid JSON: {exc}") from None
    if not isinstance(document, list):
        raise ImportRejected(
            f"the file must be a JSON array of objects, but it is {_kind(document)}: "
            "wrap the rows in [ ... ]"
        )
    if not document:
        raise ImportRejected("the file is an empty JSON array: there is nothing to import")
    problems = [
        Problem(i, None, "", f"row {i} is {_kind(item)}, not a JSON object")
        for i, item in enumerate(document)
        if not isinstance(item, dict)
    ]
    if problems:
        raise ImportRejected(
            f"every element of the array must be a JSON object, but {len(problems)} "
            f"of {len(document)} are not",
            problems,
        )
    return document


# --- per row helpers ----------------------------------------------------------------


class RowCheck:
    """Collects the problems of one row and reads its typed values."""

    def __init__(self, index: int, raw: dict[str, Any], key_field: str, out: list[Problem]):
        self.index = index
        self.raw = raw
        key = raw.get(key_field)
        self.key = key if isinstance(key, str) and key else None
        self._out = out
        self.failed = False

    def add(self, field_name: str, message: str) -> None:
        self.failed = True
        self._out.append(Problem(self.index, self.key, field_name, message))

    def string(self, name: str, *, required: bool = False, max_len: int | None = None) -> str:
        """The value as a string ("" when absent); reports a missing or non-string value."""
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                self.add(name, f"{name} is required")
            return ""
        if not isinstance(value, str):
            self.add(name, f"{name} must be a string, got {_kind(value)}")
            return ""
        if max_len is not None and len(value) > max_len:
            self.add(name, f"{name} is {len(value)} characters long, over the limit of {max_len}")
            return ""
        return value

    def moment(self, name: str, default: datetime) -> datetime:
        value = self.raw.get(name)
        if value is None or value == "":
            return default
        parsed = parse_rfc3339(value)
        if parsed is None:
            self.add(
                name,
                f"{name} {value!r} is not an RFC 3339 date-time: use e.g. 2017-05-10T11:46:30Z",
            )
            return default
        return parsed

    def url(self, name: str) -> str:
        value = self.string(name)
        if value and not is_http_url(value):
            self.add(
                name,
                f"{name} {value!r} is not an absolute http(s) URL: use e.g. "
                "https://example.com/avatar.png, or an empty string",
            )
            return ""
        return value


def parse_rfc3339(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value)
    if match is None:
        return None
    text = value
    if "z" in text or "t" in text:
        text = text.replace("z", "Z").replace("t", "T")
    fraction = match.group(1)
    if fraction is not None and len(fraction) > 7:  # Python keeps microseconds only
        text = text.replace(fraction, fraction[:7], 1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(UTC)


def is_http_url(value: str) -> bool:
    if any(ch.isspace() for ch in value):
        return False
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def is_email(value: str) -> bool:
    return len(value) <= MAX_EMAIL and bool(_EMAIL.match(value))


def _first_rows(values: Iterable[tuple[int, str]]) -> dict[str, int]:
    first: dict[str, int] = {}
    for index, value in values:
        if value:
            first.setdefault(value, index)
    return first


def existing(
    conn: Connection, table: Table, column: str, app_pk: int, values: Iterable[str], *extra: str
) -> dict[str, Any]:
    """The app's rows whose ``column`` is one of ``values``, by that value.

    PostgreSQL gets every value in one array parameter (``= ANY``); SQLite gets chunks
    of ``IN`` lists below its historical limit of 999 parameters.
    """
    wanted = sorted(set(v for v in values if v))
    col = table.c[column]
    columns = (col, table.c.id, *(table.c[name] for name in extra))
    found: dict[str, Any] = {}
    if not wanted:
        return found
    if conn.dialect.name == "postgresql":
        query = select(*columns).where(
            table.c.app_pk == app_pk, col == any_(bindparam("wanted", type_=ARRAY(col.type)))
        )
        for row in conn.execute(query, {"wanted": wanted}):
            found[row[0]] = row
        return found
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        query = select(*columns).where(table.c.app_pk == app_pk, col.in_(chunk))
        for row in conn.execute(query):
            found[row[0]] = row
    return found


# --- users --------------------------------------------------------------------------


@dataclass
class UserRow:
    email: str
    name: str
    avatar_url: str
    authentication_token: str
    password: str | None  # plain, to be hashed
    password_hash: str
    created_at: datetime


def check_users(
    conn: Connection, app_pk: int, rows: list[dict[str, Any]], now: datetime
) -> tuple[list[UserRow], list[Problem]]:
    problems: list[Problem] = []
    checks = [RowCheck(i, raw, "Email", problems) for i, raw in enumerate(rows)]
    emails = [c.string("Email", required=True, max_len=MAX_EMAIL) for c in checks]
    tokens = [c.string("AuthenticationToken", max_len=MAX_TOKEN) for c in checks]
    first_email = _first_rows(enumerate(emails))
    first_token = _first_rows(enumerate(tokens))
    known_emails = existing(conn, _users, "email", app_pk, emails)
    known_tokens = existing(conn, _users, "authentication_token", app_pk, tokens)
    out: list[UserRow] = []
    for check, email, token in zip(checks, emails, tokens, strict=True):
        i = check.index
        if email:
            if not is_email(email):
                check.add("Email", f"Email {email!r} is not a valid email address")
            elif first_email[email] != i:
                check.add("Email", f"Email {email!r} is also used by row {first_email[email]}")
            elif email in known_emails:
                check.add("Email", f"a user with Email {email!r} already exists in this app")
        if token:
            if first_token[token] != i:
                check.add(
                    "AuthenticationToken",
                    f"AuthenticationToken is also used by row {first_token[token]}",
                )
            elif token in known_tokens:
                check.add(
                    "AuthenticationToken",
                    "a user with this AuthenticationToken already exists in this app",
                )
        password = check.string("Password")
        password_hash = check.string("PasswordHash")
        if password and password_hash:
            check.add("Password", "send either Password (plain) or PasswordHash, not both")
        elif password_hash and (why := hash_problem(password_hash)):
            check.add("PasswordHash", f"PasswordHash {why}")
        name = check.string("Name")
        avatar = check.url("AvatarUrl")
        created = check.moment("CreateAt", now)
        if not check.failed:
            out.append(
                UserRow(
                    email=email,
                    name=name,
                    avatar_url=avatar,
                    authentication_token=token or secrets.token_hex(16),
                    password=password or None,
                    password_hash=password_hash,
                    created_at=created,
                )
            )
    return out, by_row(problems)


# --- rooms --------------------------------------------------------------------------


@dataclass
class RoomRow:
    unique_id: str
    name: str
    type: str
    options: str
    creator_id: int
    avatar_url: str
    created_at: datetime
    participant_ids: list[int]


def _options(check: RowCheck) -> str:
    value = check.raw.get("Options")
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    check.add("Options", f"Options must be a string or a JSON object, got {_kind(value)}")
    return ""


def _participants(check: RowCheck) -> list[str]:
    value = check.raw.get("ParticipantEmails")
    if value is None:
        check.add("ParticipantEmails", "ParticipantEmails is required: a list of user emails")
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        check.add("ParticipantEmails", "ParticipantEmails must be a list of email strings")
        return []
    if not value:
        check.add("ParticipantEmails", "ParticipantEmails is empty: a room needs participants")
    seen: set[str] = set()
    for email in value:
        if email in seen:
            check.add("ParticipantEmails", f"{email!r} is listed more than once")
        seen.add(email)
    return list(value)


def _check_unique_id(
    check: RowCheck, unique_id: str, first_id: dict[str, int], known: Container[str], noun: str
) -> None:
    """A row's UniqueId must be its own in the file and new to the app."""
    if not unique_id:
        return
    if first_id[unique_id] != check.index:
        check.add("UniqueId", f"UniqueId {unique_id!r} is also used by row {first_id[unique_id]}")
    elif unique_id in known:
        check.add("UniqueId", f"a {noun} with UniqueId {unique_id!r} already exists in this app")


def check_rooms(
    conn: Connection, app_pk: int, rows: list[dict[str, Any]], now: datetime
) -> tuple[list[RoomRow], list[Problem]]:
    problems: list[Problem] = []
    checks = [RowCheck(i, raw, "UniqueId", problems) for i, raw in enumerate(rows)]
    unique_ids = [c.string("UniqueId", required=True, max_len=MAX_UNIQUE_ID) for c in checks]
    creators = [c.string("CreatorEmail", required=True) for c in checks]
    participants = [_participants(c) for c in checks]
    first_id = _first_rows(enumerate(unique_ids))
    known_rooms = existing(conn, _rooms, "unique_id", app_pk, unique_ids)
    all_emails = set(creators).union(*participants)
    user_ids = {e: r.id for e, r in existing(conn, _users, "email", app_pk, all_emails).items()}
    out: list[RoomRow] = []
    for check, unique_id, creator, people in zip(
        checks, unique_ids, creators, participants, strict=True
    ):
        _check_unique_id(check, unique_id, first_id, known_rooms, "room")
        if creator and creator not in user_ids:
            check.add(
                "CreatorEmail",
                f"CreatorEmail {creator!r} is not a user of this app: import it first",
            )
        for email in people:
            if email not in user_ids:
                check.add(
                    "ParticipantEmails",
                    f"participant {email!r} is not a user of this app: import it first",
                )
        room_type = check.string("Type", required=True)
        name = check.string("Name")
        if room_type and room_type not in ROOM_TYPES:
            check.add("Type", f'Type {room_type!r} is not valid: use "single" or "group"')
        elif room_type == "single" and people:
            if len(people) != 2:
                check.add(
                    "ParticipantEmails",
                    f"a single room needs exactly 2 participants, this one has {len(people)}",
                )
            elif creator and creator not in people:
                check.add(
                    "CreatorEmail",
                    f"CreatorEmail {creator!r} must be one of the single room's participants",
                )
            else:
                name = f"{people[0]} {people[1]}"
        options = _options(check)
        avatar = check.url("AvatarUrl")
        created = check.moment("CreatedAt", now)
        if not check.failed:
            out.append(
                RoomRow(
                    unique_id=unique_id,
                    name=name,
                    type=room_type,
                    options=options,
                    creator_id=user_ids[creator],
                    avatar_url=avatar,
                    created_at=created,
                    participant_ids=[user_ids[e] for e in people],
                )
            )
    return out, by_row(problems)


# --- comments -----------------------------------------------------------------------


@dataclass
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
    parent_row: int | None = None  # an earlier row of this file (index into the written rows)


PayloadCheck = Callable[[dict[str, Any]], list[str]]


def _need_str(payload: dict[str, Any], name: str, optional: bool = False) -> list[str]:
    value = payload.get(name)
    if value is None and optional:
        return []
    if not isinstance(value, str):
        return [f"Payload.{name} must be a string, got {_kind(value)}"]
    return []


def _need_url(payload: dict[str, Any], name: str, optional: bool = False) -> list[str]:
    problems = _need_str(payload, name, optional)
    value = payload.get(name)
    if not problems and isinstance(value, str) and not is_http_url(value):
        problems.append(f"Payload.{name} {value!r} is not an absolute http(s) URL")
    return problems


def _need_number(payload: dict[str, Any], name: str, low: float, high: float) -> list[str]:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [f"Payload.{name} must be a number, got {_kind(value)}"]
    if not low <= value <= high:
        return [f"Payload.{name} {value} is out of range ({low} to {high})"]
    return []


def _check_reply(p: dict[str, Any]) -> list[str]:
    problems = _need_str(p, "text")
    rid = p.get("replied_comment_id")
    if isinstance(rid, bool) or not isinstance(rid, int) or rid < 1:
        problems.append(
            "Payload.replied_comment_id must be an integer of at least 1 (write 1: the "
            f"real id of the parent is filled in on import), got {rid!r}"
        )
    return problems


def _check_file_attachment(p: dict[str, Any]) -> list[str]:
    return _need_url(p, "url") + _need_str(p, "caption", optional=True)


def _check_custom(p: dict[str, Any]) -> list[str]:
    problems = _need_str(p, "type")
    if "content" not in p:
        problems.append("Payload.content is required for a custom message")
    return problems


def _check_location(p: dict[str, Any]) -> list[str]:
    return (
        _need_str(p, "name")
        + _need_str(p, "address")
        + _need_number(p, "latitude", -90, 90)
        + _need_number(p, "longitude", -180, 180)
        + _need_url(p, "map_url", optional=True)
    )


def _check_contact(p: dict[str, Any]) -> list[str]:
    problems = _need_str(p, "name") + _need_str(p, "value") + _need_str(p, "type")
    if isinstance(p.get("type"), str) and p["type"] not in ("phone", "email"):
        problems.append(f'Payload.type {p["type"]!r} is not valid: use "phone" or "email"')
    return problems


def _check_button_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        return [f"{where} must be an array of buttons, got {_kind(value)}"]
    problems: list[str] = []
    for n, button in enumerate(value):
        if not isinstance(button, dict):
            problems.append(f"{where}[{n}] must be an object, got {_kind(button)}")
            continue
        if not isinstance(button.get("label"), str):
            problems.append(f"{where}[{n}].label must be a string")
        if button.get("type") not in ("link", "postback"):
            problems.append(f'{where}[{n}].type must be "link" or "postback"')
    return problems


def _check_buttons(p: dict[str, Any]) -> list[str]:
    problems = _need_str(p, "text")
    if not p.get("buttons"):
        return [*problems, "Payload.buttons must be a non-empty array of buttons"]
    return problems + _check_button_list(p.get("buttons"), "Payload.buttons")


def _check_card_at(card: Any, where: str) -> list[str]:
    if not isinstance(card, dict):
        return [f"{where} must be an object, got {_kind(card)}"]
    problems = [
        m.replace("Payload.", f"{where}.")
        for m in _need_str(card, "title") + _need_str(card, "description")
    ]
    if card.get("image") not in (None, ""):
        problems += [m.replace("Payload.", f"{where}.") for m in _need_url(card, "image")]
    if card.get("buttons") is not None:
        problems += _check_button_list(card["buttons"], f"{where}.buttons")
    return problems


def _check_card(p: dict[str, Any]) -> list[str]:
    return _check_card_at(p, "Payload")


def _check_carousel(p: dict[str, Any]) -> list[str]:
    cards = p.get("cards")
    if not isinstance(cards, list) or not cards:
        return ["Payload.cards must be a non-empty array of cards"]
    return [m for n, card in enumerate(cards) for m in _check_card_at(card, f"Payload.cards[{n}]")]


def _check_account_linking(p: dict[str, Any]) -> list[str]:
    problems = _need_url(p, "url") + _need_url(p, "redirect_url", optional=True)
    if p.get("params") is not None and not isinstance(p["params"], dict):
        problems.append("Payload.params must be an object")
    return problems


def _check_anything(_p: dict[str, Any]) -> list[str]:
    return []


PAYLOAD_CHECKS: dict[str, PayloadCheck] = {
    "reply": _check_reply,
    "file_attachment": _check_file_attachment,
    "custom": _check_custom,
    "location": _check_location,
    "contact_person": _check_contact,
    "buttons": _check_buttons,
    "card": _check_card,
    "carousel": _check_carousel,
    "account_linking": _check_account_linking,
    "button_postback_response": _check_anything,
}


def _payload(check: RowCheck, comment_type: str) -> dict[str, Any] | None:
    value = check.raw.get("Payload")
    if comment_type == "text" and value is None:
        return None
    if value is None:
        check.add("Payload", f"Payload is required for a {comment_type} message")
        return None
    if not isinstance(value, dict):
        check.add("Payload", f"Payload must be a JSON object or null, got {_kind(value)}")
        return None
    payload_check = PAYLOAD_CHECKS.get(comment_type)
    if payload_check is not None:
        for message in payload_check(value):
            check.add("Payload", message)
    return value


def check_comments(
    conn: Connection, app_pk: int, rows: list[dict[str, Any]], now: datetime
) -> tuple[list[CommentRow], list[Problem]]:
    problems: list[Problem] = []
    checks = [RowCheck(i, raw, "UniqueId", problems) for i, raw in enumerate(rows)]
    unique_ids = [c.string("UniqueId", required=True, max_len=MAX_UNIQUE_ID) for c in checks]
    room_keys = [c.string("RoomUniqueId", required=True) for c in checks]
    creators = [c.string("CreatorEmail", required=True) for c in checks]
    parents = [c.string("ParentCommentUniqueId") for c in checks]
    first_id = _first_rows(enumerate(unique_ids))
    known_comments = existing(conn, _comments, "unique_id", app_pk, unique_ids)
    rooms = {k: r.id for k, r in existing(conn, _rooms, "unique_id", app_pk, room_keys).items()}
    users = {e: r.id for e, r in existing(conn, _users, "email", app_pk, creators).items()}
    stored_parents = existing(conn, _comments, "unique_id", app_pk, parents, "room_id")
    out: list[CommentRow] = []
    written: dict[int, int] = {}  # file row -> index in ``out``
    for check, unique_id, room_key, creator, parent in zip(
        checks, unique_ids, room_keys, creators, parents, strict=True
    ):
        i = check.index
        _check_unique_id(check, unique_id, first_id, known_comments, "comment")
        if room_key and room_key not in rooms:
            check.add(
                "RoomUniqueId",
                f"RoomUniqueId {room_key!r} is not a room of this app: import it first",
            )
        if creator and creator not in users:
            check.add(
                "CreatorEmail",
                f"CreatorEmail {creator!r} is not a user of this app: import it first",
            )
        comment_type = check.string("Type", required=True)
        if comment_type and comment_type not in COMMENT_TYPES:
            check.add(
                "Type",
                f"Type {comment_type!r} is not valid: use one of " + ", ".join(COMMENT_TYPES),
            )
            comment_type = ""
        message = check.string("Message")
        preview = check.raw.get("DisableLinkPreview", False)
        if preview is None:
            preview = False
        if not isinstance(preview, bool):
            check.add(
                "DisableLinkPreview",
                f"DisableLinkPreview must be true or false, got {_kind(preview)}",
            )
        payload = _payload(check, comment_type) if comment_type else None
        parent_id: int | None = None
        parent_row: int | None = None
        if comment_type == "reply":
            if not parent:
                check.add(
                    "ParentCommentUniqueId",
                    "ParentCommentUniqueId is required for a reply: the UniqueId of the "
                    "comment it replies to",
                )
            elif parent in first_id and first_id[parent] < i:
                parent_index = first_id[parent]
                if room_keys[parent_index] != room_key:
                    check.add(
                        "ParentCommentUniqueId",
                        f"the parent comment {parent!r} (row {parent_index}) is in another room",
                    )
                parent_row = written.get(parent_index)
            elif parent in stored_parents:
                stored = stored_parents[parent]
                if room_key in rooms and stored.room_id != rooms[room_key]:
                    check.add(
                        "ParentCommentUniqueId",
                        f"the parent comment {parent!r} is in another room",
                    )
                parent_id = int(stored.id)
            elif parent in first_id:
                check.add(
                    "ParentCommentUniqueId",
                    f"the parent comment {parent!r} comes later in the file (row "
                    f"{first_id[parent]}): put a parent before its replies",
                )
            else:
                check.add(
                    "ParentCommentUniqueId",
                    f"no comment with UniqueId {parent!r} exists in this app or earlier "
                    "in the file",
                )
        elif parent:
            check.add(
                "ParentCommentUniqueId",
                "ParentCommentUniqueId is only used with Type reply, not "
                f"{comment_type or 'this type'}",
            )
        created = check.moment("CreatedAt", now)
        if not check.failed:
            written[i] = len(out)
            out.append(
                CommentRow(
                    unique_id=unique_id,
                    room_id=rooms[room_key],
                    user_id=users[creator],
                    type=comment_type,
                    message=message,
                    payload=payload,
                    disable_link_preview=bool(preview),
                    created_at=created,
                    parent_id=parent_id,
                    parent_row=parent_row,
                )
            )
    return out, by_row(problems)
