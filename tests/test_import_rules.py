"""The import rules that need the database or the job: rows checked against what the app
holds, every problem listed end to end, hostile values stored or refused, the row cap,
atomicity, races and reruns, on SQLite and PostgreSQL.

The rules themselves are unit-tested without a database in ``tests/unit/``. Here every
import runs the real import job (``ImportJobHandler.run``) on the real database and file
store, called directly rather than through HTTP and a polling worker; the HTTP path is
covered by ``test_imports_api.py``. Test users carry a cheap Argon2 ``PasswordHash``
except where hashing is the subject.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from argon2 import PasswordHasher
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from chatferry.api.records import import_record
from chatferry.apps.service import app_context
from chatferry.clock import utcnow
from chatferry.db.engine import transaction
from chatferry.db.models import App, Comment, Import, Room, RoomParticipant, User
from chatferry.imports import job as import_job
from chatferry.imports.passwords import hash_password, verify_password
from chatferry.imports.rules.file import parse_file
from chatferry.imports.service import (
    JOB_KIND,
    StoredUpload,
    create_import,
    new_unique_id,
    storage_key_for,
)
from chatferry.jobs.queue import ClaimedJob
from chatferry.runtime import Runtime
from import_helpers import (
    SPEC_COMMENTS,
    SPEC_ROOMS,
    SPEC_USERS,
    assert_finished,
    comment,
    counts,
    messages,
    problems,
    room,
)

BCRYPT = "$2b$12$" + "a" * 53
# Made once, with the cheapest parameters Argon2 allows: a stored hash costs nothing to
# import, and these tests are not about hashing (those that are send plain passwords).
CHEAP_HASH = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("secret-pass")


def user(email: str, **extra: Any) -> dict[str, Any]:
    return {"Email": email, "Name": email.split("@")[0], "PasswordHash": CHEAP_HASH, **extra}


def _pk(rt: Runtime, app_id: str) -> int:
    with transaction(rt.sessions) as session:
        pk = session.scalar(select(App.id).where(App.app_id == app_id))
    assert pk is not None
    return pk


def run_job(
    rt: Runtime, app_id: str, resource: str, content: Any, upload_lost: bool = False
) -> dict[str, Any]:
    """Stores the file, records the import and runs its job; returns the final record.
    ``upload_lost``: the file is deleted before the job runs (as by a run that crashed
    between deleting it and committing its final status)."""
    body = content if isinstance(content, bytes) else orjson.dumps(content)
    with transaction(rt.sessions) as session:
        app = app_context(
            session.scalars(select(App).where(App.app_id == app_id)).one(), rt.settings
        )
    unique_id = new_unique_id()
    key = storage_key_for(app_id, unique_id)
    rt.store.put_stream(key, [body])
    upload = StoredUpload(unique_id, resource, "rows.json", len(body), False, key)
    with transaction(rt.sessions) as session:
        import_id = create_import(session, rt.settings, app, upload).id
    if upload_lost:
        rt.store.delete(key)
    import_job.ImportJobHandler().run(rt, ClaimedJob(0, JOB_KIND, import_id, 1, 3, "test"))
    with transaction(rt.sessions) as session:
        record = session.get(Import, import_id)
        assert record is not None
        return import_record(record, app)


def _users(rt: Runtime, app_id: str) -> dict[str, User]:
    with transaction(rt.sessions) as session:
        rows = session.scalars(select(User).where(User.app_pk == _pk(rt, app_id)))
        return {u.email: u for u in rows}


def _comments(rt: Runtime) -> dict[str, Comment]:
    with transaction(rt.sessions) as session:
        return {c.unique_id: c for c in session.scalars(select(Comment))}


def _seed_people(rt: Runtime, app_id: str, *emails: str) -> None:
    assert_finished(run_job(rt, app_id, "users", [user(e) for e in emails]), len(emails))


def _assert_no_internals(record: dict[str, Any]) -> None:
    """What the tenant reads names no SQL, parameters or Python internals."""
    text = orjson.dumps(record["errors"]).decode().lower()
    leaks = ("select ", "insert ", "[sql", "parameters", "traceback", "internal error", "recursion")
    for leak in leaks:
        assert leak not in text, record["errors"]


# --- the spec's own example files ----------------------------------------------------


def test_the_spec_examples_import_in_order(make_app: Any, runtime: Runtime) -> None:
    app_id = make_app().app_id
    assert_finished(run_job(runtime, app_id, "users", SPEC_USERS), 1)
    # The rooms and comments examples name users the users example does not create.
    _seed_people(
        runtime,
        app_id,
        "user@mymail.com",
        "newuser@mymail.com",
        "userid_844_6285868233422@kiwari-stag.com",
    )
    refused = run_job(runtime, app_id, "rooms", SPEC_ROOMS)
    duplicate = SPEC_ROOMS[0]["UniqueId"]
    assert problems(refused) == [(2, duplicate, "UniqueId")]
    assert messages(refused, 2, "UniqueId") == [f"UniqueId {duplicate!r} is also used by row 1"]
    assert counts(runtime, app_id)["rooms"] == 0

    fixed = [SPEC_ROOMS[0], {**SPEC_ROOMS[1], "UniqueId": "4e6c208b-3436-46a0-a6d7-add9b90dfc77"}]
    assert_finished(run_job(runtime, app_id, "rooms", fixed), 2)
    assert_finished(run_job(runtime, app_id, "comments", SPEC_COMMENTS), 2)

    with transaction(runtime.sessions) as session:
        rooms = {r.unique_id: r for r in session.scalars(select(Room))}
        single = rooms[duplicate]
        assert single.name == "user@mymail.com mymail@mymail.com"
        assert rooms["4e6c208b-3436-46a0-a6d7-add9b90dfc77"].name == "Qiscus Family Super"
        positions = session.execute(
            select(RoomParticipant.position, User.email)
            .join(User, User.id == RoomParticipant.user_id)
            .where(RoomParticipant.room_id == single.id)
            .order_by(RoomParticipant.position)
        ).all()
        assert [email for _, email in positions] == ["user@mymail.com", "mymail@mymail.com"]
    comments = _comments(runtime)
    parent = comments["android_14945300625232b81ffc0520f961"]
    reply = comments["android_14945300625232b81ffc0520f962"]
    assert reply.parent_id == parent.id
    assert orjson.loads(reply.payload or "null") == {
        "text": "Maaf mau tanya..",
        "replied_comment_id": parent.id,
    }
    assert parent.payload is None
    stored = _users(runtime, app_id)["mymail@mymail.com"]
    assert stored.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password(stored.password_hash, "password")
    assert stored.authentication_token == "randomstring"
    assert stored.created_at.isoformat() == "2017-05-10T11:46:30+00:00"


# --- users ---------------------------------------------------------------------------


def test_user_rules_report_every_problem(make_app: Any, runtime: Runtime) -> None:
    app_id = make_app().app_id
    _seed_people(runtime, app_id, "taken@x.com")
    taken_token = _users(runtime, app_id)["taken@x.com"].authentication_token
    rows = [
        user("ok@x.com", AuthenticationToken="tok-1"),
        user("not-an-email"),
        user("ok@x.com", AuthenticationToken="tok-1"),
        user("taken@x.com"),
        {"Name": "no email", "Password": "p"},
        user("t@x.com", AuthenticationToken=taken_token),
        {"Email": "both@x.com", "Password": "p", "PasswordHash": BCRYPT},
        {"Email": "hash@x.com", "PasswordHash": "md5:abc"},
        user("av@x.com", AvatarUrl="ftp://x/y.png"),
        user("when@x.com", CreateAt="10/05/2017"),
        user("num@x.com", Name=42),
    ]
    record = run_job(runtime, app_id, "users", rows)
    assert problems(record) == [
        (2, "not-an-email", "Email"),
        (3, "ok@x.com", "Email"),
        (3, "ok@x.com", "AuthenticationToken"),
        (4, "taken@x.com", "Email"),
        (5, None, "Email"),
        (6, "t@x.com", "AuthenticationToken"),
        (7, "both@x.com", "Password"),
        (8, "hash@x.com", "PasswordHash"),
        (9, "av@x.com", "AvatarUrl"),
        (10, "when@x.com", "CreateAt"),
        (11, "num@x.com", "Name"),
    ]
    assert messages(record, 3, "Email") == ["Email 'ok@x.com' is also used by row 1"]
    assert messages(record, 4, "Email") == [
        "a user with Email 'taken@x.com' already exists in this app"
    ]
    assert messages(record, 6, "AuthenticationToken") == [
        "a user with this AuthenticationToken already exists in this app"
    ]
    assert messages(record, 5, "Email") == ["Email is required"]
    assert "RFC 3339" in messages(record, 10, "CreateAt")[0]
    assert "11 problems in 10 of 11 rows" in record["errors"]["Message"]
    assert "nothing was imported" in record["errors"]["Message"]
    assert counts(runtime, app_id)["users"] == 1


def test_users_passwords_hashes_tokens_and_defaults(make_app: Any, runtime: Runtime) -> None:
    app_id = make_app().app_id
    argon = hash_password("kept")
    rows = [
        # Enough plain passwords to go through the hashing pool.
        *({"Email": f"p{n}@x.com", "Password": f"pw-{n}"} for n in range(6)),
        {"Email": "argon@x.com", "PasswordHash": argon, "Ignored": "discarded"},
        {"Email": "bcrypt@x.com", "PasswordHash": BCRYPT, "AvatarUrl": "http://a.b/c.png"},
        {"Email": "nopass@x.com", "CreateAt": "2020-02-03T04:05:06.5+07:00"},
    ]
    before = utcnow()
    assert_finished(run_job(runtime, app_id, "users", rows), 9)
    stored = _users(runtime, app_id)
    for n in range(6):
        assert verify_password(stored[f"p{n}@x.com"].password_hash, f"pw-{n}")
        assert stored[f"p{n}@x.com"].created_at >= before.replace(microsecond=0)
    assert stored["argon@x.com"].password_hash == argon
    assert stored["bcrypt@x.com"].password_hash == BCRYPT
    assert stored["bcrypt@x.com"].avatar_url == "http://a.b/c.png"
    assert stored["nopass@x.com"].password_hash == ""
    assert stored["nopass@x.com"].created_at.isoformat() == "2020-02-02T21:05:06.500000+00:00"
    tokens = {u.authentication_token for u in stored.values()}
    assert len(tokens) == 9 and "" not in tokens


# --- rooms ---------------------------------------------------------------------------


def test_room_rules_report_every_problem_then_options_are_stored(
    make_app: Any, runtime: Runtime
) -> None:
    app_id = make_app().app_id
    _seed_people(runtime, app_id, "a@x.com", "b@x.com", "c@x.com")
    assert_finished(run_job(runtime, app_id, "rooms", [room("old", "a@x.com", ["a@x.com"])]), 1)
    rows = [
        room("r0", "a@x.com", ["a@x.com", "b@x.com"], "single"),
        room("old", "a@x.com", ["a@x.com"]),
        room("r0", "a@x.com", ["a@x.com"]),
        room("r3", "ghost@x.com", ["a@x.com", "nobody@x.com"]),
        room("r4", "a@x.com", ["a@x.com", "b@x.com", "c@x.com"], "single"),
        room("r5", "c@x.com", ["a@x.com", "b@x.com"], "single"),
        room("r6", "a@x.com", ["a@x.com"], "channel"),
        room("r7", "a@x.com", ["a@x.com"], Options=5),
        room("r8", "a@x.com", ["a@x.com"], AvatarUrl="not a url"),
        room("r9", "a@x.com", "a@x.com"),  # type: ignore[arg-type]
        {k: v for k, v in room("", "a@x.com", ["a@x.com"]).items() if k != "UniqueId"},
        room("r11", "a@x.com", ["a@x.com", "a@x.com"], CreatedAt="yesterday"),
    ]
    record = run_job(runtime, app_id, "rooms", rows)
    assert problems(record) == [
        (2, "old", "UniqueId"),
        (3, "r0", "UniqueId"),
        (4, "r3", "CreatorEmail"),
        (4, "r3", "ParticipantEmails"),
        (5, "r4", "ParticipantEmails"),
        (6, "r5", "CreatorEmail"),
        (7, "r6", "Type"),
        (8, "r7", "Options"),
        (9, "r8", "AvatarUrl"),
        (10, "r9", "ParticipantEmails"),
        (11, None, "UniqueId"),
        (12, "r11", "ParticipantEmails"),
        (12, "r11", "CreatedAt"),
    ]
    assert messages(record, 2, "UniqueId") == [
        "a room with UniqueId 'old' already exists in this app"
    ]
    assert messages(record, 4, "CreatorEmail") == [
        "CreatorEmail 'ghost@x.com' is not a user of this app: import it first"
    ]
    assert messages(record, 4, "ParticipantEmails") == [
        "participant 'nobody@x.com' is not a user of this app: import it first"
    ]
    assert messages(record, 5, "ParticipantEmails") == [
        "a single room needs exactly 2 participants, this one has 3"
    ]
    assert "must be one of the single room's participants" in messages(record, 6, "CreatorEmail")[0]
    assert counts(runtime, app_id)["rooms"] == 1
    _import_rooms_with_options(runtime, app_id)


def _import_rooms_with_options(runtime: Runtime, app_id: str) -> None:
    """An Options object is stored as JSON text; a single room is named after its people."""
    good = [
        room("g", "a@x.com", ["a@x.com", "b@x.com"], Options={"color": "teal"}, Name="Team"),
        room("s", "b@x.com", ["b@x.com", "a@x.com"], "single", Name="ignored", Options=None),
    ]
    assert_finished(run_job(runtime, app_id, "rooms", good), 2)
    with transaction(runtime.sessions) as session:
        stored = {r.unique_id: r for r in session.scalars(select(Room))}
    assert orjson.loads(stored["g"].options) == {"color": "teal"}
    assert stored["g"].name == "Team"
    assert stored["s"].name == "b@x.com a@x.com"
    assert stored["s"].options == ""


# --- comments ------------------------------------------------------------------------


def _comment_world(rt: Runtime, app_id: str) -> None:
    _seed_people(rt, app_id, "a@x.com", "b@x.com")
    rooms = [room("r1", "a@x.com", ["a@x.com", "b@x.com"]), room("r2", "b@x.com", ["b@x.com"])]
    assert_finished(run_job(rt, app_id, "rooms", rooms), 2)
    stored = [comment("old", "r1", "a@x.com"), comment("old2", "r1", "b@x.com")]
    assert_finished(run_job(rt, app_id, "comments", stored), 2)


def _reply(unique_id: str, room_id: str, parent: str, **extra: Any) -> dict[str, Any]:
    extra.setdefault("Payload", {"text": "re", "replied_comment_id": 1})
    return comment(unique_id, room_id, "a@x.com", "reply", ParentCommentUniqueId=parent, **extra)


COMMENT_PROBLEMS = [
    (2, "old", "UniqueId"),
    (3, "c0", "UniqueId"),
    (4, "c3", "RoomUniqueId"),
    (4, "c3", "CreatorEmail"),
    (5, "c4", "Type"),
    (6, "c5", "DisableLinkPreview"),
    (7, "c6", "ParentCommentUniqueId"),
    (8, "c7", "ParentCommentUniqueId"),
    (9, "c8", "ParentCommentUniqueId"),
    (11, "c10", "Payload"),
    (12, "c11", "Payload"),
    (13, "c12", "ParentCommentUniqueId"),
    (14, "c13", "ParentCommentUniqueId"),
    (15, "c14", "ParentCommentUniqueId"),
    (16, "c15", "CreatedAt"),
    (17, "c16", "Payload"),
]


def test_comment_rules_report_every_problem(make_app: Any, runtime: Runtime) -> None:
    app_id = make_app().app_id
    _comment_world(runtime, app_id)
    rows = [
        comment("c0", "r1", "a@x.com"),
        comment("old", "r1", "a@x.com"),
        comment("c0", "r1", "a@x.com"),
        comment("c3", "nope", "ghost@x.com"),
        comment("c4", "r1", "a@x.com", "sticker"),
        comment("c5", "r1", "a@x.com", DisableLinkPreview="yes"),
        _reply("c6", "r1", "c9"),
        _reply("c7", "r2", "c0"),
        _reply("c8", "r1", "missing"),
        comment("c9", "r1", "a@x.com"),
        _reply("c10", "r1", "c0", Payload={"text": "re", "replied_comment_id": 0}),
        _reply("c11", "r1", "c0", Payload={"text": "re", "replied_comment_id": True}),
        _reply("c12", "r1", ""),
        comment("c13", "r1", "a@x.com", ParentCommentUniqueId="c0"),
        _reply("c14", "r2", "old2"),
        comment("c15", "r1", "a@x.com", CreatedAt="2017-05-11 19:14"),
        _reply("c16", "r1", "c0", Payload=None),
    ]
    record = run_job(runtime, app_id, "comments", rows)
    assert problems(record) == COMMENT_PROBLEMS
    assert messages(record, 2, "UniqueId") == [
        "a comment with UniqueId 'old' already exists in this app"
    ]
    assert "comes later in the file (row 10)" in messages(record, 7, "ParentCommentUniqueId")[0]
    assert "is in another room" in messages(record, 8, "ParentCommentUniqueId")[0]
    assert "no comment with UniqueId 'missing'" in messages(record, 9, "ParentCommentUniqueId")[0]
    assert messages(record, 15, "ParentCommentUniqueId") == [
        "the parent comment 'old2' is in another room"
    ]
    assert "integer of at least 1" in messages(record, 11, "Payload")[0]
    assert counts(runtime, app_id)["comments"] == 2


PAYLOADS_OK: list[tuple[str, dict[str, Any]]] = [
    ("file_attachment", {"url": "https://f.example.com/a.png", "caption": "pic"}),
    ("custom", {"type": "promo", "content": {"x": 1}}),
    (
        "location",
        {"name": "Monas", "address": "Jakarta", "latitude": -6.17, "longitude": 106.82},
    ),
    ("contact_person", {"name": "Budi", "value": "+62812", "type": "phone"}),
    ("buttons", {"text": "pick", "buttons": [{"label": "A", "type": "postback"}]}),
    ("card", {"title": "T", "description": "D", "image": "https://i.example.com/x.png"}),
    ("carousel", {"cards": [{"title": "T", "description": "D"}]}),
    ("account_linking", {"url": "https://login.example.com"}),
    ("button_postback_response", {}),
    ("text", {"nul": "a\x00b", "keys\x00too": ["\x00"]}),
]


def test_payloads_of_every_type_are_stored_as_sent(make_app: Any, runtime: Runtime) -> None:
    """Stored as JSON text: a NUL inside a string is the escape \\u0000 there, which
    PostgreSQL's text columns accept."""
    app_id = make_app().app_id
    _comment_world(runtime, app_id)
    good = [
        comment(f"ok-{kind}", "r1", "a@x.com", kind, Payload=payload)
        for kind, payload in PAYLOADS_OK
    ]
    assert_finished(run_job(runtime, app_id, "comments", good), len(good))
    stored = _comments(runtime)
    for kind, payload in PAYLOADS_OK:
        assert stored[f"ok-{kind}"].type == kind
        assert orjson.loads(stored[f"ok-{kind}"].payload or "null") == payload
    assert "\\u0000" in (stored["ok-text"].payload or "")


def test_replies_to_stored_and_earlier_comments_get_real_ids(
    make_app: Any, runtime: Runtime
) -> None:
    app_id = make_app().app_id
    _comment_world(runtime, app_id)
    rows = [
        _reply("to-old", "r1", "old"),
        comment("p", "r1", "b@x.com", DisableLinkPreview=True),
        _reply("to-p", "r1", "p", Payload={"text": "re", "replied_comment_id": 1, "x": "y"}),
        _reply("to-reply", "r1", "to-p"),
    ]
    assert_finished(run_job(runtime, app_id, "comments", rows), 4)
    stored = _comments(runtime)
    for child, parent in (("to-old", "old"), ("to-p", "p"), ("to-reply", "to-p")):
        assert stored[child].parent_id == stored[parent].id
        payload = orjson.loads(stored[child].payload or "null")
        assert payload["replied_comment_id"] == stored[parent].id
    assert orjson.loads(stored["to-p"].payload or "null")["x"] == "y"
    assert stored["p"].disable_link_preview is True
    assert stored["to-old"].id < stored["p"].id < stored["to-p"].id < stored["to-reply"].id


# --- hostile values ------------------------------------------------------------------


# orjson writes no more than 254 levels, so a 1,000-deep value goes into a file as this
# marker, replaced by the raw JSON text (the file then nests 1,003 levels: orjson reads
# up to 1,024).
DEEP = "<1000 levels>"
DEEP_JSON = b"[" * 1000 + b"]" * 1000


def _file(rows: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(rows).replace(orjson.dumps(DEEP), DEEP_JSON)


HOSTILE_USERS: list[tuple[dict[str, Any], str, str]] = [
    ({"Email": "nul\x00@x.com"}, "Email", "contains a NUL character"),
    ({"Email": "n@x.com", "Name": "a\x00b"}, "Name", "contains a NUL character"),
    ({"Email": "t@x.com", "AuthenticationToken": "\x00"}, "AuthenticationToken", "NUL"),
    ({"Email": "p@x.com", "Password": "pw\x00"}, "Password", "NUL"),
    ({"Email": "h@x.com", "PasswordHash": CHEAP_HASH + "\x00"}, "PasswordHash", "NUL"),
    ({"Email": "a@x.com", "AvatarUrl": "https://x/\x00"}, "AvatarUrl", "NUL"),
    ({"Email": "late@x.com", "CreateAt": "9999-12-31T23:59:59-23:59"}, "CreateAt", "out of range"),
    ({"Email": "early@x.com", "CreateAt": "0001-01-01T00:00:00+05:00"}, "CreateAt", "out of range"),
    ({"Email": "deep@x.com", "Name": DEEP}, "Name", "must be a string, got an array"),
    ({"Email": "d2@x.com", "CreateAt": DEEP}, "CreateAt", "(an array) is not an RFC 3339"),
    ({"Email": "long@x.com", "AvatarUrl": "y" * 1_000_000}, "AvatarUrl", "'yyyy"),
]
HOSTILE_ROOMS: list[tuple[dict[str, Any], str, str]] = [
    ({"UniqueId": "u\x00"}, "UniqueId", "NUL"),
    ({"Name": "\x00"}, "Name", "NUL"),
    ({"Type": "group\x00"}, "Type", "NUL"),
    ({"Options": "\x00"}, "Options", "NUL"),
    ({"CreatorEmail": "a@x.com\x00"}, "CreatorEmail", "NUL"),
    ({"ParticipantEmails": ["a@x.com", "a\x00"]}, "ParticipantEmails", "NUL"),
    ({"Options": {"d": DEEP}}, "Options", "more than 100 deep"),
    ({"CreatedAt": "9999-12-31T23:59:59-23:59"}, "CreatedAt", "out of range"),
]
HOSTILE_COMMENTS: list[tuple[dict[str, Any], str, str]] = [
    ({"UniqueId": "\x00"}, "UniqueId", "NUL"),
    ({"Message": "hi\x00"}, "Message", "NUL"),
    ({"Type": "text\x00"}, "Type", "NUL"),
    ({"CreatorEmail": "\x00a@x.com"}, "CreatorEmail", "NUL"),
    ({"RoomUniqueId": "r1\x00"}, "RoomUniqueId", "NUL"),
    (
        {
            "Type": "reply",
            "ParentCommentUniqueId": "p\x00",
            "Payload": {"text": "t", "replied_comment_id": 1},
        },
        "ParentCommentUniqueId",
        "NUL",
    ),
    ({"Payload": {"d": DEEP}}, "Payload", "more than 100 deep"),
    ({"Type": "custom", "Payload": {"type": "t", "content": DEEP}}, "Payload", "100 deep"),
    ({"CreatedAt": "0001-01-01T00:00:00+05:00"}, "CreatedAt", "out of range"),
]


def _assert_each_row_has_its_problem(
    record: dict[str, Any], cases: list[tuple[dict[str, Any], str, str]]
) -> None:
    assert record["status"] == "failed"
    _assert_no_internals(record)
    data = record["errors"]["Data"]
    for row, (_, field, fragment) in enumerate(cases, start=1):
        found = [p["message"] for p in data if p["row"] == row and p["field"] == field]
        assert found and fragment in found[0], (row, field, data)
    assert all(len(p["message"]) < 300 and len(p["key"] or "") < 330 for p in data)


def test_hostile_values_are_row_problems(make_app: Any, runtime: Runtime) -> None:
    """NUL characters (refused by PostgreSQL's text columns), dates that overflow in UTC,
    1,000-deep nesting and huge strings: each a problem on its row, never a failed job
    with an internal error, SQL or a recursion error."""
    app_id = make_app().app_id
    _comment_world(runtime, app_id)
    before = counts(runtime, app_id)
    users_file = [{"Name": "n", **raw} for raw, _, _ in HOSTILE_USERS]
    _assert_each_row_has_its_problem(
        run_job(runtime, app_id, "users", _file(users_file)), HOSTILE_USERS
    )
    rooms_file = [
        {**room(f"h{n}", "a@x.com", ["a@x.com"]), **raw}
        for n, (raw, _, _) in enumerate(HOSTILE_ROOMS)
    ]
    _assert_each_row_has_its_problem(
        run_job(runtime, app_id, "rooms", _file(rooms_file)), HOSTILE_ROOMS
    )
    comments_file = [
        {**comment(f"h{n}", "r1", "a@x.com"), **raw}
        for n, (raw, _, _) in enumerate(HOSTILE_COMMENTS)
    ]
    record = run_job(runtime, app_id, "comments", _file(comments_file))
    _assert_each_row_has_its_problem(record, HOSTILE_COMMENTS)
    assert counts(runtime, app_id) == before


def test_dates_at_the_ends_of_the_range_are_stored(make_app: Any, runtime: Runtime) -> None:
    app_id = make_app().app_id
    rows = [
        user("first@x.com", CreateAt="0001-01-01T00:00:00Z"),
        user("last@x.com", CreateAt="9999-12-31T23:59:59.999999Z"),
        user("east@x.com", CreateAt="0001-01-01T05:00:00+05:00"),
    ]
    assert_finished(run_job(runtime, app_id, "users", rows), 3)
    stored = _users(runtime, app_id)
    assert stored["first@x.com"].created_at.isoformat() == "0001-01-01T00:00:00+00:00"
    assert stored["last@x.com"].created_at.isoformat() == "9999-12-31T23:59:59.999999+00:00"
    assert stored["east@x.com"].created_at.isoformat() == "0001-01-01T00:00:00+00:00"


# --- bounds ------------------------------------------------------------------------


@pytest.mark.parametrize("extra_env", [{"CHATFERRY_IMPORT_MAX_ROWS": "5"}])
def test_the_row_cap_comes_from_the_settings(make_app: Any, runtime: Runtime) -> None:
    app_id = make_app().app_id
    assert runtime.settings.import_max_rows == 5
    refused = run_job(runtime, app_id, "users", [{}] * 6)
    assert refused["status"] == "failed"
    assert refused["errors"] == {
        "Message": "the file has 6 rows, over the limit of 5 rows per import file (the "
        "CHATFERRY_IMPORT_MAX_ROWS setting): split it into smaller files",
        "Data": None,
    }
    assert_finished(run_job(runtime, app_id, "users", [user(f"u{n}@x.com") for n in range(5)]), 5)


def test_problems_past_the_first_1000_are_counted_not_kept(make_app: Any, runtime: Runtime) -> None:
    app_id = make_app().app_id
    record = run_job(runtime, app_id, "comments", [{}] * 1500)
    assert record["errors"]["Message"].startswith(
        "the file has 6000 problems in 1500 of 1500 rows (only the first 1000 are listed)"
    )
    data = record["errors"]["Data"]
    assert len(data) == 1000
    assert [(p["row"], p["field"]) for p in data[:5]] == [
        (1, "UniqueId"),
        (1, "RoomUniqueId"),
        (1, "CreatorEmail"),
        (1, "Type"),
        (2, "UniqueId"),
    ]
    assert data[-1]["row"] == 250


def test_thousands_of_look_ups_find_every_stored_row(make_app: Any, runtime: Runtime) -> None:
    """The look-up of what the app holds sends thousands of values at once (a JSON array
    on SQLite, an array on PostgreSQL), quotes and accents included."""
    app_id = make_app().app_id
    emails = [f"o'neil-é{i}@example.com" for i in range(2500)]
    assert_finished(run_job(runtime, app_id, "users", [user(e) for e in emails[::2]]), 1250)
    record = run_job(runtime, app_id, "users", [user(e) for e in emails])
    assert record["errors"]["Message"].startswith("the file has 1250 problems in 1250 of 2500")
    data = record["errors"]["Data"]
    assert {p["key"] for p in data} == set(emails[:2000:2])  # the first 1000 are listed
    assert all("already exists" in p["message"] for p in data)


# --- atomicity, races and reruns -----------------------------------------------------


def test_one_bad_row_writes_nothing(make_app: Any, runtime: Runtime) -> None:
    app_id = make_app().app_id
    _comment_world(runtime, app_id)
    before = counts(runtime, app_id)
    rows: dict[str, list[dict[str, Any]]] = {
        "users": [user(f"n{n}@x.com") for n in range(50)] + [user("bad")],
        "rooms": [room(f"n{n}", "a@x.com", ["a@x.com"]) for n in range(50)]
        + [room("bad", "ghost@x.com", ["a@x.com"])],
        "comments": [comment(f"n{n}", "r1", "a@x.com") for n in range(50)]
        + [comment("bad", "r1", "ghost@x.com")],
    }
    for resource, field in (
        ("users", "Email"),
        ("rooms", "CreatorEmail"),
        ("comments", "CreatorEmail"),
    ):
        record = run_job(runtime, app_id, resource, rows[resource])
        assert problems(record) == [(51, "bad", field)]
        assert counts(runtime, app_id) == before


def _import_row(runtime: Runtime, unique_id: str) -> Import:
    with transaction(runtime.sessions) as session:
        found = session.scalar(select(Import).where(Import.unique_id == unique_id))
    assert found is not None
    return found


def _unfinished_import(runtime: Runtime, app_id: str, rows: list[dict[str, Any]]) -> int:
    """An import recorded as started, its file stored, its job not yet run."""
    with transaction(runtime.sessions) as session:
        unfinished = Import(
            unique_id="race-import",
            app_pk=_pk(runtime, app_id),
            resource_name="users",
            status="started",
            dry_run=False,
            percentage=0,
            total_rows=0,
            size=0,
            original_filename="race.json",
            storage_key="imports/race.json",
            error_message="",
            created_at=utcnow(),
        )
        session.add(unfinished)
        session.flush()
        import_id = unfinished.id
    runtime.store.put_stream("imports/race.json", [orjson.dumps(rows)])
    return import_id


def test_unique_constraints_decide_a_race_and_reruns_do_nothing(
    make_app: Any, runtime: Runtime
) -> None:
    app_id = make_app().app_id
    first = run_job(runtime, app_id, "users", [user("race@x.com"), user("free@x.com")])
    assert_finished(first, 2)
    assert_finished(run_job(runtime, app_id, "users", [user("later@x.com")]), 1)
    finished = _import_row(runtime, first["unique_id"])
    assert finished.status == "finished"

    # A rerun of a finished import (a worker that crashed after committing) does nothing.
    handler = import_job.ImportJobHandler()
    handler.run(runtime, ClaimedJob(0, "import", finished.id, 2, 3, "test"))
    assert counts(runtime, app_id)["users"] == 3

    # Rows checked, then another writer takes the same email before this import writes.
    import_id = _unfinished_import(runtime, app_id, [user("new@x.com"), user("other@x.com")])
    plan = import_job._load_plan(runtime, import_id)
    assert plan is not None
    rows = parse_file(runtime.store.read_bytes(plan.storage_key), 1000)
    checked = import_job._check(runtime, plan, rows)
    with transaction(runtime.sessions) as session:
        session.execute(
            insert(User).values(
                app_pk=plan.app.pk,
                email="new@x.com",
                name="",
                avatar_url="",
                authentication_token="winner",
                password_hash="",
                created_at=utcnow(),
            )
        )
    with pytest.raises(IntegrityError):
        import_job._write(runtime, plan, checked, [])
    assert _import_row(runtime, "race-import").status == "started"
    assert "other@x.com" not in _users(runtime, app_id)

    # The whole job, run now, reports the duplicate and ends failed.
    handler.run(runtime, ClaimedJob(0, "import", import_id, 1, 3, "test"))
    with transaction(runtime.sessions) as session:
        lost = session.get(Import, import_id)
        assert lost is not None
        assert lost.status == "failed"
        data = orjson.loads(lost.error_data or "null")
    assert [(p["row"], p["key"], p["field"]) for p in data] == [(1, "new@x.com", "Email")]
    assert "other@x.com" not in _users(runtime, app_id)


def test_a_rerun_whose_upload_is_gone_fails_saying_to_upload_again(
    make_app: Any, runtime: Runtime
) -> None:
    app_id = make_app().app_id
    record = run_job(runtime, app_id, "users", [user("a@x.com")], upload_lost=True)
    assert record["status"] == "failed"
    assert record["errors"] == {
        "Message": "the uploaded file is no longer stored (the worker running this import "
        "stopped while finishing it); nothing was imported: upload the file again",
        "Data": None,
    }
    assert counts(runtime, app_id)["users"] == 0
