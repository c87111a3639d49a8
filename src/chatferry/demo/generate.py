"""Bulk-generates users, rooms and messages spread over the last N days."""

from __future__ import annotations

import random
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from argon2 import PasswordHasher
from sqlalchemy import insert
from sqlalchemy.orm import Session

from chatferry.clock import utcnow
from chatferry.db.models import Comment, Room, RoomParticipant, User

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


def _moment(rng: random.Random, start: datetime, span: timedelta, lo: float, hi: float) -> datetime:
    return (start + span * rng.uniform(lo, hi)).replace(microsecond=0)


def _insert_returning_ids(session: Session, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    if not rows:
        return []
    result = session.execute(insert(model).returning(model.id, sort_by_parameter_order=True), rows)
    return [row[0] for row in result]


def generate(session: Session, app_pk: int, spec: DemoSpec) -> dict[str, int]:
    """Adds the rows in the caller's transaction; returns how many of each it made."""
    rng = random.Random(spec.seed)
    tag = secrets.token_hex(3) if spec.seed is None else f"{spec.seed:x}"
    now = utcnow()
    start, span = now - timedelta(days=spec.days), timedelta(days=spec.days)
    password_hash = PasswordHasher().hash("password")

    users = _make_users(rng, app_pk, spec.users, tag, start, span, password_hash)
    user_ids = _insert_returning_ids(session, User, users)
    emails = {uid: u["email"] for uid, u in zip(user_ids, users, strict=True)}

    rooms, members = _make_rooms(rng, app_pk, spec.rooms, tag, user_ids, emails, start, span)
    room_ids = _insert_returning_ids(session, Room, rooms)
    participants = [
        {"room_id": rid, "position": pos, "user_id": uid}
        for rid, member_ids in zip(room_ids, members, strict=True)
        for pos, uid in enumerate(member_ids)
    ]
    session.execute(insert(RoomParticipant), participants)
    room_times = {rid: r["created_at"] for rid, r in zip(room_ids, rooms, strict=True)}
    room_members = dict(zip(room_ids, members, strict=True))

    _insert_comments(session, rng, app_pk, spec.comments, tag, room_times, room_members, now)
    return {"users": len(users), "rooms": len(rooms), "comments": spec.comments}


def _make_users(
    rng: random.Random,
    app_pk: int,
    count: int,
    tag: str,
    start: datetime,
    span: timedelta,
    password_hash: str,
) -> list[dict[str, Any]]:
    users = []
    for i in range(count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        users.append(
            {
                "app_pk": app_pk,
                "email": f"user{i}.{tag}@example.com",
                "name": f"{first} {last}",
                "avatar_url": f"https://avatars.example.com/{tag}/{i}.png",
                "authentication_token": secrets.token_hex(16),
                "password_hash": password_hash,
                "created_at": _moment(rng, start, span, 0.0, 0.3),
            }
        )
    return users


def _make_rooms(
    rng: random.Random,
    app_pk: int,
    count: int,
    tag: str,
    user_ids: list[int],
    emails: dict[int, str],
    start: datetime,
    span: timedelta,
) -> tuple[list[dict[str, Any]], list[list[int]]]:
    rooms, members = [], []
    for i in range(count):
        single = rng.random() < 0.4
        people = rng.sample(user_ids, 2 if single else min(len(user_ids), rng.randint(3, 12)))
        creator = people[0]
        name = f"{emails[people[0]]} {emails[people[1]]}" if single else rng.choice(GROUP_NAMES)
        rooms.append(
            {
                "app_pk": app_pk,
                "unique_id": f"room-{tag}-{i}",
                "name": name,
                "type": "single" if single else "group",
                "options": "" if rng.random() < 0.7 else '{"color":"teal","pinned":true}',
                "creator_id": creator,
                "avatar_url": "" if single else f"https://avatars.example.com/rooms/{i}.png",
                "created_at": _moment(rng, start, span, 0.3, 0.5),
            }
        )
        members.append(people)
    return rooms, members


def _insert_comments(
    session: Session,
    rng: random.Random,
    app_pk: int,
    count: int,
    tag: str,
    room_times: dict[int, datetime],
    room_members: dict[int, list[int]],
    now: datetime,
    chunk: int = 5000,
) -> None:
    """Inserts in time order, chunk by chunk; replies point at earlier chunks' comments."""
    room_ids = list(room_times)
    plan = []
    for i in range(count):
        room = rng.choice(room_ids)
        opened = room_times[room]
        moment = opened + (now - opened) * rng.random()
        plan.append((moment.replace(microsecond=0), room, i))
    plan.sort()
    history: dict[int, list[int]] = defaultdict(list)
    for offset in range(0, len(plan), chunk):
        rows = [
            _comment_row(rng, app_pk, tag, moment, room, i, room_members[room], history[room])
            for moment, room, i in plan[offset : offset + chunk]
        ]
        ids = _insert_returning_ids(session, Comment, rows)
        for row, comment_id in zip(rows, ids, strict=True):
            history[row["room_id"]].append(comment_id)


def _comment_row(
    rng: random.Random,
    app_pk: int,
    tag: str,
    moment: datetime,
    room: int,
    index: int,
    members: list[int],
    earlier: list[int],
) -> dict[str, Any]:
    message = rng.choice(MESSAGES)
    reply_to = rng.choice(earlier[-50:]) if earlier and rng.random() < 0.15 else None
    payload = (
        orjson.dumps({"text": message, "replied_comment_id": reply_to}).decode()
        if reply_to is not None
        else None
    )
    return {
        "app_pk": app_pk,
        "unique_id": f"msg-{tag}-{index}",
        "room_id": room,
        "user_id": rng.choice(members),
        "type": "reply" if reply_to is not None else "text",
        "message": message,
        "payload": payload,
        "disable_link_preview": rng.random() < 0.05,
        "parent_id": reply_to,
        "created_at": moment,
    }
