"""The exported files: every key of the import format, row by row against the database."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from chatferry.db.engine import transaction
from chatferry.db.models import Comment, Room, RoomParticipant, User
from chatferry.demo.generate import DemoSpec, generate
from chatferry.runtime import Runtime
from support.apps import NewApp
from support.exports import COMMENT_KEYS, ROOM_KEYS, USER_KEYS, download, export_and_wait
from support.rows import add_comment, add_room, add_user, app_pk

TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")

TRICKY_TEXTS = [
    "Emoji family: 👩‍👩‍👧‍👦 and flag 🇮🇩",
    "Line one\nLine two\r\n\nLine four",
    'She said "hello" and left \\o/ C:\\path\\to\\file',
    "Tab\tand unicode: Zoë, Łukasz, Сергей, 李雷, さくら, أحمد",
    'JSON-looking: {"a": [1, 2]} and </script>',
    "Separators:\u2028\u2029 and control \x01\x1f\x7f \b\f",
    "",
]

CUSTOM_PAYLOAD = (
    '{"type": "card", "content": {"title": "Hi \\"there\\"", "items": [1, 2.5, null, true]}}'
)
# Stored as it came: newlines, tabs and carriage returns between tokens, escapes in strings
# (backslashes, \n, \t, \u), raw unicode. The file must carry it byte for byte.
SPACED_PAYLOAD = (
    '{\n\t"path": "C:\\\\dir\\\\file \\\\N",\r\n  "text": "a\\nb\\tc \\u00e9 ü 🇮🇩",'
    '\n\t"list": [ 1 ,\t2 ]\n}'
)


@pytest.fixture
def extra_env() -> dict[str, str]:
    """Small batches, so every file here is written in several database pages."""
    return {"CHATFERRY_EXPORT_BATCH_SIZE": "3"}


def instant(text: str) -> datetime:
    """A timestamp from the file (e.g. "2017-05-11T19:14:24Z") as an aware datetime."""
    assert TIMESTAMP_RE.match(text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_file(record: dict[str, Any], body: bytes) -> list[dict[str, Any]]:
    """The record describes exactly these bytes; returns the parsed rows."""
    assert record["size"] == len(body)
    assert record["sha256"] == hashlib.sha256(body).hexdigest()
    rows: list[dict[str, Any]] = orjson.loads(body)
    assert isinstance(rows, list)
    assert record["total_rows"] == len(rows)
    body.decode("utf-8")  # strict UTF-8 throughout
    return rows


def db_users(rt: Runtime, pk: int) -> list[dict[str, Any]]:
    with transaction(rt.sessions) as session:
        users = session.scalars(
            select(User).where(User.app_pk == pk).order_by(User.created_at, User.id)
        ).all()
        return [
            {
                "Email": u.email,
                "Name": u.name,
                "AvatarUrl": u.avatar_url,
                "AuthenticationToken": u.authentication_token,
                "PasswordHash": u.password_hash,
                "CreateAt": u.created_at,
            }
            for u in users
        ]


def db_rooms(rt: Runtime, pk: int) -> list[dict[str, Any]]:
    with transaction(rt.sessions) as session:
        emails = dict(session.execute(select(User.id, User.email).where(User.app_pk == pk)).all())
        rooms = session.scalars(
            select(Room).where(Room.app_pk == pk).order_by(Room.created_at, Room.id)
        ).all()
        result = []
        for room in rooms:
            members = session.scalars(
                select(RoomParticipant.user_id)
                .where(RoomParticipant.room_id == room.id)
                .order_by(RoomParticipant.position)
            ).all()
            result.append(
                {
                    "Name": room.name,
                    "Type": room.type,
                    "Options": room.options,
                    "CreatorEmail": emails[room.creator_id],
                    "CreatedAt": room.created_at,
                    "AvatarUrl": room.avatar_url,
                    "UniqueId": room.unique_id,
                    "ParticipantEmails": [emails[m] for m in members],
                }
            )
        return result


def db_comments(rt: Runtime, pk: int) -> list[dict[str, Any]]:
    with transaction(rt.sessions) as session:
        emails = dict(session.execute(select(User.id, User.email).where(User.app_pk == pk)).all())
        rooms = dict(
            session.execute(select(Room.id, Room.unique_id).where(Room.app_pk == pk)).all()
        )
        comments = session.scalars(
            select(Comment).where(Comment.app_pk == pk).order_by(Comment.created_at, Comment.id)
        ).all()
        unique_ids = {c.id: c.unique_id for c in comments}
        return [
            {
                "Message": c.message,
                "DisableLinkPreview": c.disable_link_preview,
                "Type": c.type,
                "UniqueId": c.unique_id,
                "CreatorEmail": emails[c.user_id],
                "RoomUniqueId": rooms[c.room_id],
                "CreatedAt": c.created_at,
                "Payload": orjson.loads(c.payload) if c.payload is not None else None,
                "ParentCommentUniqueId": unique_ids[c.parent_id] if c.parent_id else "",
            }
            for c in comments
        ]


def old_way(rows: list[dict[str, Any]], raw_payloads: dict[str, str | None]) -> bytes:
    """The file as the exporter wrote it before the database rendered rows: a dict per
    row through orjson (naive UTC times with "Z"), stored Payload text as it is."""
    dumps = []
    for row in rows:
        if "Payload" in row:
            raw = raw_payloads[row["UniqueId"]]
            row = {**row, "Payload": orjson.Fragment(raw) if raw is not None else None}
        dumps.append(orjson.dumps(row, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z))
    return b"[\n" + b",\n".join(dumps) + b"\n]\n" if dumps else b"[]\n"


def stored_payloads(rt: Runtime, pk: int) -> dict[str, str | None]:
    with transaction(rt.sessions) as session:
        found = session.execute(
            select(Comment.unique_id, Comment.payload).where(Comment.app_pk == pk)
        ).all()
    return {unique_id: payload for unique_id, payload in found}


@pytest.mark.parametrize("resource", ["users", "rooms", "comments"])
def test_the_file_is_byte_for_byte_what_the_old_exporter_wrote(
    client: TestClient, runtime: Runtime, tricky: tuple[Any, int], resource: str
) -> None:
    creds, pk = tricky
    record = export_and_wait(client, creds.headers, type=resource)
    expected_rows = {"users": db_users, "rooms": db_rooms, "comments": db_comments}[resource]
    expected = old_way(expected_rows(runtime, pk), stored_payloads(runtime, pk))
    body = download(client, record)
    assert body == expected
    # The stored Payload keeps its own spacing (it is not re-rendered).
    if resource == "comments":
        assert CUSTOM_PAYLOAD.encode() in body
        assert SPACED_PAYLOAD.encode() in body


@pytest.mark.parametrize(
    "extra_env",
    [{"CHATFERRY_EXPORT_BATCH_SIZE": "1000"}, {"CHATFERRY_EXPORT_BATCH_SIZE": "40"}],
    ids=["one-page", "batch40"],
)
def test_rows_inserted_out_of_order_keep_the_keyset_order_inside_each_page(
    client: TestClient, runtime: Runtime, new_app: NewApp
) -> None:
    """The database joins a page's rows itself: their order inside the joined value must
    be (created_at, id) even when insertion order, and so rowid order, differs."""
    creds = new_app("shuffled")
    pk = app_pk(runtime, creds.app_id)
    base = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    # 250 comments at 25 distinct instants (ties), inserted in a scrambled order.
    moments = [base + timedelta(seconds=(i * 7) % 25) for i in range(250)]
    with transaction(runtime.sessions) as session:
        user = add_user(session, pk, "writer@example.com", base - timedelta(minutes=1))
        room = add_room(session, pk, "room", user, [user], base - timedelta(minutes=1))
        for i, moment in enumerate(moments):
            add_comment(session, pk, f"msg-{(i * 37) % 251}", room, user, moment, f"text {i}")
    record = export_and_wait(client, creds.headers, type="comments")
    body = download(client, record)
    assert body == old_way(db_comments(runtime, pk), stored_payloads(runtime, pk))
    assert record["total_rows"] == 250


def compare(
    rows: list[dict[str, Any]], expected: list[dict[str, Any]], keys: list[str], time_key: str
) -> None:
    """Row by row: exactly the format's keys, every value equal to the database's."""
    assert len(rows) == len(expected)
    for index, (row, want) in enumerate(zip(rows, expected, strict=True)):
        assert set(row) == set(keys), (index, sorted(row))
        got = {**row, time_key: instant(row[time_key])}
        assert got == want, index


@pytest.fixture
def tricky(runtime: Runtime, new_app: NewApp) -> tuple[Any, int]:
    """An app with hand-made rows full of awkward text, created over the last hours."""
    creds = new_app("tricky", "Asia/Jakarta")
    pk = app_pk(runtime, creds.app_id)
    base = (datetime.now(UTC) - timedelta(hours=6)).replace(microsecond=0)
    with transaction(runtime.sessions) as session:
        users = [
            add_user(
                session,
                pk,
                f"user{i}@example.com",
                base + timedelta(minutes=i, microseconds=123456 * (i % 2)),
                name=TRICKY_TEXTS[i % len(TRICKY_TEXTS)] or "x",
                avatar_url=f'https://avatars.example.com/{i}.png?size=64&q="x"',
                token=f"token-{i}-é",
                password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA" if i % 3 else "",
            )
            for i in range(8)
        ]
        # Same created_at for several rows: the keyset must not drop or repeat them.
        for i in range(8, 12):
            users.append(add_user(session, pk, f"tie{i}@example.com", base + timedelta(hours=1)))
        single = add_room(
            session,
            pk,
            "room-single",
            users[1],
            [users[1], users[0]],
            base + timedelta(minutes=30),
            type="single",
            name="user1@example.com user0@example.com",
        )
        group = add_room(
            session,
            pk,
            "room-🇮🇩-group",
            users[2],
            [users[5], users[2], users[0], users[7], users[3]],  # not in id order
            base + timedelta(minutes=31),
            name='Keluarga 👩‍👩‍👧‍👦 "Besar"',
            options='{"color":"teal","pinned":true,"nested":{"a":[1,"\\u00e9"]}}',
            avatar_url="https://avatars.example.com/rooms/1.png",
        )
        for i in range(3):
            add_room(session, pk, f"room-tie-{i}", users[0], [users[0]], base + timedelta(hours=1))
        first = add_comment(
            session, pk, "msg-0", group, users[2], base + timedelta(hours=2), TRICKY_TEXTS[0]
        )
        for i, text in enumerate(TRICKY_TEXTS[1:], start=1):
            add_comment(
                session,
                pk,
                f"msg-{i}",
                group if i % 2 else single,
                users[i],
                base + timedelta(hours=2, seconds=i, microseconds=999999 * (i % 2)),
                text,
                disable_link_preview=i % 3 == 0,
            )
        add_comment(
            session,
            pk,
            "msg-reply",
            group,
            users[5],
            base + timedelta(hours=3),
            'Maaf mau tanya..\n"quoted" \\ back',
            type="reply",
            payload=orjson.dumps(
                {"text": "Maaf mau tanya..", "replied_comment_id": 1, "emoji": "🇮🇩"}
            ).decode(),
            parent=first,
        )
        add_comment(
            session,
            pk,
            "msg-custom",
            single,
            users[0],
            base + timedelta(hours=3, minutes=1),
            "custom",
            type="custom",
            payload=CUSTOM_PAYLOAD,
        )
        add_comment(
            session,
            pk,
            "msg-spaced",
            group,
            users[1],
            base + timedelta(hours=3, minutes=2),
            "tab\there \\N \\\\ back\\nslash",
            type="custom",
            payload=SPACED_PAYLOAD,
        )
    return creds, pk


def test_the_users_file_matches_the_database(
    client: TestClient, runtime: Runtime, tricky: tuple[Any, int]
) -> None:
    creds, pk = tricky
    record = export_and_wait(client, creds.headers, type="users")
    body = download(client, record)
    rows = check_file(record, body)
    assert record["total_rows"] == 12
    compare(rows, db_users(runtime, pk), USER_KEYS, "CreateAt")
    assert "Password" not in rows[0]
    assert rows[0]["Name"] == TRICKY_TEXTS[0]
    assert rows[1]["CreateAt"].endswith(".123456Z")
    assert "." not in rows[2]["CreateAt"]  # microseconds only when there are some
    assert [r["Email"] for r in rows[8:]] == [f"tie{i}@example.com" for i in range(8, 12)]


def test_the_rooms_file_matches_the_database(
    client: TestClient, runtime: Runtime, tricky: tuple[Any, int]
) -> None:
    creds, pk = tricky
    record = export_and_wait(client, creds.headers, type="rooms")
    rows = check_file(record, download(client, record))
    compare(rows, db_rooms(runtime, pk), ROOM_KEYS, "CreatedAt")
    group = next(r for r in rows if r["UniqueId"] == "room-🇮🇩-group")
    assert group["ParticipantEmails"] == [
        "user5@example.com",
        "user2@example.com",
        "user0@example.com",
        "user7@example.com",
        "user3@example.com",
    ]
    assert group["Options"] == '{"color":"teal","pinned":true,"nested":{"a":[1,"\\u00e9"]}}'
    assert group["Name"] == 'Keluarga 👩‍👩‍👧‍👦 "Besar"'
    assert group["CreatorEmail"] == "user2@example.com"
    single = next(r for r in rows if r["UniqueId"] == "room-single")
    assert single["Type"] == "single"
    assert single["ParticipantEmails"] == ["user1@example.com", "user0@example.com"]
    assert sorted(r["UniqueId"] for r in rows[2:]) == [f"room-tie-{i}" for i in range(3)]


def test_the_comments_file_matches_the_database(
    client: TestClient, runtime: Runtime, tricky: tuple[Any, int]
) -> None:
    creds, pk = tricky
    record = export_and_wait(client, creds.headers, type="comments")
    rows = check_file(record, download(client, record))
    compare(rows, db_comments(runtime, pk), COMMENT_KEYS, "CreatedAt")
    by_id = {r["UniqueId"]: r for r in rows}
    assert [by_id[f"msg-{i}"]["Message"] for i in range(len(TRICKY_TEXTS))] == TRICKY_TEXTS
    assert by_id["msg-0"]["ParentCommentUniqueId"] == ""
    assert by_id["msg-0"]["Payload"] is None
    reply = by_id["msg-reply"]
    assert reply["Type"] == "reply"
    assert reply["ParentCommentUniqueId"] == "msg-0"
    assert reply["Payload"] == {"text": "Maaf mau tanya..", "replied_comment_id": 1, "emoji": "🇮🇩"}
    assert reply["Message"] == 'Maaf mau tanya..\n"quoted" \\ back'
    custom = by_id["msg-custom"]["Payload"]
    assert custom == {
        "type": "card",
        "content": {"title": 'Hi "there"', "items": [1, 2.5, None, True]},
    }
    assert by_id["msg-3"]["DisableLinkPreview"] is True
    assert by_id["msg-1"]["DisableLinkPreview"] is False
    assert by_id["msg-1"]["RoomUniqueId"] == "room-🇮🇩-group"
    assert by_id["msg-2"]["RoomUniqueId"] == "room-single"


def test_a_reply_keeps_its_parent_even_when_the_parent_is_outside_the_window(
    client: TestClient, runtime: Runtime, new_app: NewApp
) -> None:
    creds = new_app()
    pk = app_pk(runtime, creds.app_id)
    with transaction(runtime.sessions) as session:
        user = add_user(session, pk, "a@example.com", datetime(2024, 1, 1, tzinfo=UTC))
        room = add_room(session, pk, "r", user, [user], datetime(2024, 1, 1, tzinfo=UTC))
        parent = add_comment(session, pk, "old", room, user, datetime(2024, 1, 5, tzinfo=UTC))
        add_comment(
            session,
            pk,
            "new",
            room,
            user,
            datetime(2024, 2, 10, tzinfo=UTC),
            type="reply",
            payload='{"text": "hello", "replied_comment_id": 1}',
            parent=parent,
        )
    record = export_and_wait(
        client, creds.headers, type="comments", start_date="2024-02-01", end_date="2024-02-29"
    )
    rows = check_file(record, download(client, record))
    assert [(r["UniqueId"], r["ParentCommentUniqueId"]) for r in rows] == [("new", "old")]


@pytest.mark.parametrize("extra_env", [{"CHATFERRY_EXPORT_BATCH_SIZE": "7"}], ids=["batch7"])
def test_demo_data_exports_match_the_database_row_by_row(
    client: TestClient, runtime: Runtime, new_app: NewApp
) -> None:
    creds = new_app("demo", "Asia/Jakarta")
    pk = app_pk(runtime, creds.app_id)
    with transaction(runtime.sessions) as session:
        made = generate(session, pk, DemoSpec(users=12, rooms=6, comments=90, days=10, seed=7))
    assert made == {"users": 12, "rooms": 6, "comments": 90}

    users = export_and_wait(client, creds.headers, type="users")
    compare(
        check_file(users, download(client, users)), db_users(runtime, pk), USER_KEYS, "CreateAt"
    )
    rooms = export_and_wait(client, creds.headers, type="rooms")
    compare(
        check_file(rooms, download(client, rooms)), db_rooms(runtime, pk), ROOM_KEYS, "CreatedAt"
    )
    comments = export_and_wait(client, creds.headers, type="comments")
    rows = check_file(comments, download(client, comments))
    compare(rows, db_comments(runtime, pk), COMMENT_KEYS, "CreatedAt")
    assert (users["total_rows"], rooms["total_rows"], comments["total_rows"]) == (12, 6, 90)
    # The generated data does contain replies and multi-line messages.
    assert any(r["ParentCommentUniqueId"] for r in rows)
    assert any("\n" in r["Message"] for r in rows)


def test_an_empty_window_gives_an_empty_array(
    client: TestClient, runtime: Runtime, new_app: NewApp
) -> None:
    creds = new_app()
    for resource in ("users", "rooms", "comments"):
        record = export_and_wait(client, creds.headers, type=resource, end_date="2017-01-05")
        body = download(client, record)
        assert orjson.loads(body) == []
        assert record["total_rows"] == 0
        assert record["size"] == len(body)
        assert record["sha256"] == hashlib.sha256(body).hexdigest()
