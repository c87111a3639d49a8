"""Bulk-generates users, rooms and messages spread over the last N days."""

from __future__ import annotations

import random
import secrets
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from argon2 import PasswordHasher
from sqlalchemy import Column, Connection, DateTime, MetaData, Table
from sqlalchemy.orm import Session

from chatferry.clock import utcnow
from chatferry.db.bulk import insert_many, reserve_ids
from chatferry.db.models import Base, Comment, Room, RoomParticipant, User, table_of
from chatferry.db.types import UtcDateTime

FIRST_NAMES = [
    "Ayu",
    "Budi",
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "Amélie",
    "Björn",
    "Chloé",
    "Dmitri",
    "Сергей",
    "Анна",
    "李雷",
    "王芳",
    "さくら",
    "健太",
    "지민",
    "Ayşe",
    "Nguyễn",
    "Fatima",
    "أحمد",
    "Priya",
    "Olúwaseun",
    "Mateo",
    "Ingrid",
    "Kofi",
    "Siti",
    "Rahul",
    "Elif",
    "Noah",
]
LAST_NAMES = [
    "Santoso",
    "García",
    "Müller",
    "Kowalski",
    "Ødegaard",
    "Dubois",
    "Иванов",
    "Chen",
    "Tanaka",
    "Kim",
    "Yılmaz",
    "Trần",
    "Haddad",
    "Sharma",
    "Adeyemi",
    "Rossi",
    "Silva",
]
GROUP_NAMES = [
    "Family 👨‍👩‍👧",
    "Weekend hikers 🥾",
    "Team Jakarta",
    "Book club 📚",
    "Café crew ☕",
    "Ops on-call 🚨",
    "Klub Futsal ⚽",
    "Ремонт квартиры",
    "東京 trip ✈️",
    "Ünïcødé tester",
]
MESSAGES = [
    "Halo, apa kabar? 😊",
    "On my way, 10 minutes 🚗",
    "Can you send the file again?\nThe link expired.",
    "Thanks! 🙏🏽",
    "Meeting moved to 15:00 (UTC+7) — ok?",
    "¿Nos vemos mañana?",
    "Привет! Как дела?",
    "明日は雨です ☔",
    "Line one\nLine two\n\nLine four after a blank line",
    'She said "hello" and left \\o/',
    "👍",
    "Price is €12.50 / ¥1,800 / ₹950",
    "Tab\tseparated\tvalues",
    "Emoji family: 👩‍👩‍👧‍👦 flags: 🇮🇩🇯🇵",
    "ok",
]


@dataclass(frozen=True)
class DemoSpec:
    users: int
    rooms: int
    comments: int
    days: int
    seed: int | None = None
    # Avatars and one text message in ten (as file_attachment) point at files under this
    # URL; without it, rows carry no URL to fetch (a backup of demo data needs no network).
    files_base_url: str = ""


# Rows per INSERT ... executemany: large enough to amortise the statement, small enough
# that one chunk of row dicts stays a few MB.
CHUNK_ROWS = 10_000

# Every demo user's password is the published "password", so a costly hash protects
# nothing; light Argon2id parameters (still a valid hash for import and login) keep the
# command fast.
_DEMO_HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)

# SQLite page cache during a bulk load (KiB).
BULK_CACHE_KIB = 64 * 1024

Row = dict[str, Any]


def _insert_rows(conn: Connection, table: Table, rows: Sequence[Row]) -> None:
    """Bulk-inserts row dicts (all with the same keys), CHUNK_ROWS at a time."""
    if not rows:
        return
    keys = list(rows[0])
    for offset in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[offset : offset + CHUNK_ROWS]
        insert_many(conn, table, keys, [tuple(row.values()) for row in chunk])


def _plain_table(model: type[Base], metadata: MetaData) -> Table:
    """The model's table with plain DateTime columns, bound as naive UTC without conversion.

    The stored text is the same as through UtcDateTime (its impl is DateTime); only the
    per-row aware-to-naive step is skipped, because the generator works in naive UTC.
    """
    columns = [
        Column(
            column.name,
            DateTime() if isinstance(column.type, UtcDateTime) else column.type,
            primary_key=column.primary_key,
        )
        for column in table_of(model).columns
    ]
    return Table(table_of(model).name, metadata, *columns)


_metadata = MetaData()
_users = _plain_table(User, _metadata)
_rooms = _plain_table(Room, _metadata)
_participants = _plain_table(RoomParticipant, _metadata)
_comments = _plain_table(Comment, _metadata)


@contextmanager
def _bulk_load(conn: Connection) -> Iterator[Connection]:
    """On SQLite, a bigger page cache while loading, restored afterwards.

    With the default 2 MB, index pages of a large insert spill to the WAL over and over;
    the pragma is per connection and allowed inside a transaction.
    """
    if conn.dialect.name != "sqlite":
        yield conn
        return
    previous = int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
    conn.exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
    try:
        yield conn
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={previous}")


def _pick(rng: random.Random, items: Sequence[Any]) -> Any:
    """rng.choice without its rejection sampling: a little biased, several times faster."""
    return items[int(rng.random() * len(items))]


def _moment(rng: random.Random, start: datetime, span: timedelta, lo: float, hi: float) -> datetime:
    return (start + span * rng.uniform(lo, hi)).replace(microsecond=0)


def generate(session: Session, app_pk: int, spec: DemoSpec) -> dict[str, int]:
    """Adds the rows in the caller's transaction; returns how many of each it made."""
    with _bulk_load(session.connection()) as conn:
        return _generate(conn, app_pk, spec)


def _generate(conn: Connection, app_pk: int, spec: DemoSpec) -> dict[str, int]:
    rng = random.Random(spec.seed)
    tag = secrets.token_hex(3) if spec.seed is None else f"{spec.seed:x}"
    now = utcnow().replace(tzinfo=None)  # naive UTC, as stored
    start, span = now - timedelta(days=spec.days), timedelta(days=spec.days)
    password_hash = _DEMO_HASHER.hash("password")

    user_ids = reserve_ids(conn, _users, spec.users)
    users = _make_users(rng, app_pk, user_ids, tag, start, span, password_hash)
    base = spec.files_base_url.rstrip("/")
    if base:
        for i, user in enumerate(users):
            user["avatar_url"] = f"{base}/avatars/{tag}/{i}.png"
    _insert_rows(conn, _users, users)
    emails = {u["id"]: u["email"] for u in users}

    room_ids = reserve_ids(conn, _rooms, spec.rooms)
    rooms, members = _make_rooms(rng, app_pk, room_ids, tag, user_ids, emails, start, span)
    if base:
        for i, room in enumerate(rooms):
            room["avatar_url"] = f"{base}/rooms/{tag}/{i}.png" if i % 2 == 0 else ""
    _insert_rows(conn, _rooms, rooms)
    participants = [
        {"room_id": rid, "position": pos, "user_id": uid}
        for rid, member_ids in zip(room_ids, members, strict=True)
        for pos, uid in enumerate(member_ids)
    ]
    _insert_rows(conn, _participants, participants)
    room_times = {r["id"]: r["created_at"] for r in rooms}
    room_members = dict(zip(room_ids, members, strict=True))

    comments = _insert_comments(
        conn, rng, app_pk, spec.comments, tag, room_times, room_members, now, base
    )
    return {"users": len(users), "rooms": len(rooms), "comments": comments}


def _make_users(
    rng: random.Random,
    app_pk: int,
    ids: list[int],
    tag: str,
    start: datetime,
    span: timedelta,
    password_hash: str,
) -> list[Row]:
    users = []
    for i, user_id in enumerate(ids):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        users.append(
            {
                "id": user_id,
                "app_pk": app_pk,
                "email": f"user{i}.{tag}@example.com",
                "name": f"{first} {last}",
                "avatar_url": "",
                "authentication_token": secrets.token_hex(16),
                "password_hash": password_hash,
                "created_at": _moment(rng, start, span, 0.0, 0.3),
            }
        )
    return users


def _make_rooms(
    rng: random.Random,
    app_pk: int,
    ids: list[int],
    tag: str,
    user_ids: list[int],
    emails: dict[int, str],
    start: datetime,
    span: timedelta,
) -> tuple[list[Row], list[list[int]]]:
    rooms, members = [], []
    for i, room_id in enumerate(ids):
        single = rng.random() < 0.4
        people = rng.sample(user_ids, 2 if single else min(len(user_ids), rng.randint(3, 12)))
        creator = people[0]
        name = f"{emails[people[0]]} {emails[people[1]]}" if single else rng.choice(GROUP_NAMES)
        rooms.append(
            {
                "id": room_id,
                "app_pk": app_pk,
                "unique_id": f"room-{tag}-{i}",
                "name": name,
                "type": "single" if single else "group",
                "options": "" if rng.random() < 0.7 else '{"color":"teal","pinned":true}',
                "creator_id": creator,
                "avatar_url": "",
                "created_at": _moment(rng, start, span, 0.3, 0.5),
            }
        )
        members.append(people)
    return rooms, members


def _comment_plan(
    rng: random.Random, count: int, room_times: dict[int, datetime], now: datetime
) -> list[tuple[datetime, int, int]]:
    """(moment, room, index) for every message in time order, each after its room opened.

    Moments are whole seconds, drawn as integers and turned into datetimes once sorted.
    The index (for the message's unique id) follows time order too, which keeps inserts
    into the unique-id index local.
    """
    room_ids = list(room_times)
    end = _seconds(now)
    opened = {room: _seconds(moment) for room, moment in room_times.items()}
    drawn = []
    for _ in range(count):
        room = _pick(rng, room_ids)
        start = opened[room]
        drawn.append((start + int((end - start) * rng.random()), room))
    drawn.sort()
    return [(_EPOCH + timedelta(seconds=at), room, index) for index, (at, room) in enumerate(drawn)]


_EPOCH = datetime(1970, 1, 1)


def _seconds(moment: datetime) -> int:
    """Whole seconds since the epoch of a naive UTC datetime."""
    return (moment - _EPOCH) // timedelta(seconds=1)


def _insert_comments(
    conn: Connection,
    rng: random.Random,
    app_pk: int,
    count: int,
    tag: str,
    room_times: dict[int, datetime],
    room_members: dict[int, list[int]],
    now: datetime,
    files: str = "",
) -> int:
    """Inserts in time order with ascending ids; replies point at an earlier message."""
    plan = _comment_plan(rng, count, room_times, now) if room_times else []
    ids = reserve_ids(conn, _comments, len(plan))
    history: dict[int, list[int]] = defaultdict(list)
    for offset in range(0, len(plan), CHUNK_ROWS):
        rows = []
        for (moment, room, i), comment_id in zip(
            plan[offset : offset + CHUNK_ROWS], ids[offset : offset + CHUNK_ROWS], strict=True
        ):
            earlier = history[room]
            rows.append(
                _comment_row(
                    rng, app_pk, tag, comment_id, moment, room, i, room_members[room], earlier
                )
            )
            earlier.append(comment_id)
        if files:
            rows = [_with_file(row, files, tag) for row in rows]
        _insert_rows(conn, _comments, rows)
    return len(plan)


def _comment_row(
    rng: random.Random,
    app_pk: int,
    tag: str,
    comment_id: int,
    moment: datetime,
    room: int,
    index: int,
    members: list[int],
    earlier: list[int],
) -> Row:
    message = _pick(rng, MESSAGES)
    reply_to = _pick(rng, earlier[-50:]) if earlier and rng.random() < 0.15 else None
    payload = (
        orjson.dumps({"text": message, "replied_comment_id": reply_to}).decode()
        if reply_to is not None
        else None
    )
    return {
        "id": comment_id,
        "app_pk": app_pk,
        "unique_id": f"msg-{tag}-{index}",
        "room_id": room,
        "user_id": _pick(rng, members),
        "type": "reply" if reply_to is not None else "text",
        "message": message,
        "payload": payload,
        "disable_link_preview": rng.random() < 0.05,
        "parent_id": reply_to,
        "created_at": moment,
    }


def _with_file(row: Row, files: str, tag: str) -> Row:
    """One text message in ten as a file_attachment whose url is under ``files``."""
    if row["type"] != "text" or row["id"] % 10 != 3:
        return row
    url = f"{files}/files/{tag}/{row['unique_id']}.jpg"
    payload = orjson.dumps({"url": url, "caption": row["message"]}).decode()
    return {**row, "type": "file_attachment", "payload": payload}
