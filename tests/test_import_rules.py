"""The spec's import rules, every problem reported per row, atomicity and reruns."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from chatferry.clock import utcnow
from chatferry.db.engine import transaction
from chatferry.db.models import App, Comment, Import, Room, RoomParticipant, User
from chatferry.imports import job as import_job
from chatferry.imports.passwords import hash_password, verify_password
from chatferry.imports.rules.file import parse_file
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
    run_import,
    upload,
    user,
    wait_import,
)

from conftest import Credentials

BCRYPT = "$2b$12$" + "a" * 53


def _pk(rt: Runtime, app_id: str) -> int:
    with transaction(rt.sessions) as session:
        pk = session.scalar(select(App.id).where(App.app_id == app_id))
    assert pk is not None
    return pk


def _users(rt: Runtime, app_id: str) -> dict[str, User]:
    with transaction(rt.sessions) as session:
        rows = session.scalars(select(User).where(User.app_pk == _pk(rt, app_id)))
        return {u.email: u for u in rows}


def _seed_people(client: TestClient, creds: Credentials, *emails: str) -> None:
    assert_finished(run_import(client, creds, "users", [user(e) for e in emails]), len(emails))


# --- the spec's own example files ----------------------------------------------------


def test_the_spec_examples_import_in_order(
    client: TestClient, make_app: Any, runtime: Runtime
) -> None:
    creds = make_app()
    assert_finished(run_import(client, creds, "users", SPEC_USERS), 1)
    # The rooms and comments examples name users the users example does not create.
    _seed_people(
        client,
        creds,
        "user@mymail.com",
        "newuser@mymail.com",
        "userid_844_6285868233422@kiwari-stag.com",
    )
    refused = run_import(client, creds, "rooms", SPEC_ROOMS)
    duplicate = SPEC_ROOMS[0]["UniqueId"]
    assert problems(refused) == [(1, duplicate, "UniqueId")]
    assert messages(refused, 1, "UniqueId") == [f"UniqueId {duplicate!r} is also used by row 0"]
    assert counts(runtime, creds.app_id)["rooms"] == 0

    fixed = [SPEC_ROOMS[0], {**SPEC_ROOMS[1], "UniqueId": "4e6c208b-3436-46a0-a6d7-add9b90dfc77"}]
    assert_finished(run_import(client, creds, "rooms", fixed), 2)
    assert_finished(run_import(client, creds, "comments", SPEC_COMMENTS), 2)

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
        comments = {c.unique_id: c for c in session.scalars(select(Comment))}
    parent = comments["android_14945300625232b81ffc0520f961"]
    reply = comments["android_14945300625232b81ffc0520f962"]
    assert reply.parent_id == parent.id
    assert orjson.loads(reply.payload or "null") == {
        "text": "Maaf mau tanya..",
        "replied_comment_id": parent.id,
    }
    assert parent.payload is None
    stored = _users(runtime, creds.app_id)["mymail@mymail.com"]
    assert stored.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password(stored.password_hash, "password")
    assert stored.authentication_token == "randomstring"
    assert stored.created_at.isoformat() == "2017-05-10T11:46:30+00:00"


# --- users ---------------------------------------------------------------------------


def test_user_rules_report_every_problem(
    client: TestClient, make_app: Any, runtime: Runtime
) -> None:
    creds = make_app()
    _seed_people(client, creds, "taken@x.com")
    taken_token = _users(runtime, creds.app_id)["taken@x.com"].authentication_token
    rows = [
        user("ok@x.com", AuthenticationToken="tok-1"),
        user("not-an-email"),
        user("ok@x.com", AuthenticationToken="tok-1"),
        user("taken@x.com"),
        {"Name": "no email", "Password": "p"},
        user("t@x.com", AuthenticationToken=taken_token),
        user("both@x.com", PasswordHash=BCRYPT),
        {"Email": "hash@x.com", "PasswordHash": "md5:abc"},
        user("av@x.com", AvatarUrl="ftp://x/y.png"),
        user("when@x.com", CreateAt="10/05/2017"),
        user("num@x.com", Name=42),
    ]
    record = run_import(client, creds, "users", rows)
    assert problems(record) == [
        (1, "not-an-email", "Email"),
        (2, "ok@x.com", "Email"),
        (2, "ok@x.com", "AuthenticationToken"),
        (3, "taken@x.com", "Email"),
        (4, None, "Email"),
        (5, "t@x.com", "AuthenticationToken"),
        (6, "both@x.com", "Password"),
        (7, "hash@x.com", "PasswordHash"),
        (8, "av@x.com", "AvatarUrl"),
        (9, "when@x.com", "CreateAt"),
        (10, "num@x.com", "Name"),
    ]
    assert messages(record, 2, "Email") == ["Email 'ok@x.com' is also used by row 0"]
    assert messages(record, 3, "Email") == [
        "a user with Email 'taken@x.com' already exists in this app"
    ]
    assert messages(record, 4, "Email") == ["Email is required"]
    assert "RFC 3339" in messages(record, 9, "CreateAt")[0]
    assert "11 problems in 10 of 11 rows" in record["errors"]["Message"]
    assert "nothing was imported" in record["errors"]["Message"]
    assert counts(runtime, creds.app_id)["users"] == 1


def test_users_passwords_hashes_tokens_and_defaults(
    client: TestClient, make_app: Any, runtime: Runtime
) -> None:
    creds = make_app()
    argon = hash_password("kept")
    rows = [
        # Enough plain passwords to go through the process pool.
        *(user(f"p{n}@x.com", Password=f"pw-{n}") for n in range(6)),
        {"Email": "argon@x.com", "PasswordHash": argon, "Ignored": "discarded"},
        {"Email": "bcrypt@x.com", "PasswordHash": BCRYPT, "AvatarUrl": "http://a.b/c.png"},
        {"Email": "nopass@x.com", "CreateAt": "2020-02-03T04:05:06.5+07:00"},
    ]
    before = utcnow()
    assert_finished(run_import(client, creds, "users", rows), 9)
    stored = _users(runtime, creds.app_id)
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


def test_room_rules_report_every_problem(
    client: TestClient, make_app: Any, runtime: Runtime
) -> None:
    creds = make_app()
    _seed_people(client, creds, "a@x.com", "b@x.com", "c@x.com")
    assert_finished(run_import(client, creds, "rooms", [room("old", "a@x.com", ["a@x.com"])]), 1)
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
        room("r9", "a@x.com", "a@x.com"),
        {k: v for k, v in room("", "a@x.com", ["a@x.com"]).items() if k != "UniqueId"},
        room("r11", "a@x.com", ["a@x.com", "a@x.com"], CreatedAt="yesterday"),
    ]
    record = run_import(client, creds, "rooms", rows)
    assert problems(record) == [
        (1, "old", "UniqueId"),
        (2, "r0", "UniqueId"),
        (3, "r3", "CreatorEmail"),
        (3, "r3", "ParticipantEmails"),
        (4, "r4", "ParticipantEmails"),
        (5, "r5", "CreatorEmail"),
        (6, "r6", "Type"),
        (7, "r7", "Options"),
        (8, "r8", "AvatarUrl"),
        (9, "r9", "ParticipantEmails"),
        (10, None, "UniqueId"),
        (11, "r11", "ParticipantEmails"),
        (11, "r11", "CreatedAt"),
    ]
    assert messages(record, 3, "ParticipantEmails") == [
        "participant 'nobody@x.com' is not a user of this app: import it first"
    ]
    assert messages(record, 4, "ParticipantEmails") == [
        "a single room needs exactly 2 participants, this one has 3"
    ]
    assert "must be one of the single room's participants" in messages(record, 5, "CreatorEmail")[0]
    assert counts(runtime, creds.app_id)["rooms"] == 1


def test_room_options_object_is_stored_as_json_text(
    client: TestClient, make_app: Any, runtime: Runtime
) -> None:
    creds = make_app()
    _seed_people(client, creds, "a@x.com", "b@x.com")
    rows = [
        room("g", "a@x.com", ["a@x.com", "b@x.com"], Options={"color": "teal"}, Name="Team"),
        room("s", "b@x.com", ["b@x.com", "a@x.com"], "single", Name="ignored", Options=None),
    ]
    assert_finished(run_import(client, creds, "rooms", rows), 2)
    with transaction(runtime.sessions) as session:
        stored = {r.unique_id: r for r in session.scalars(select(Room))}
    assert orjson.loads(stored["g"].options) == {"color": "teal"}
    assert stored["g"].name == "Team"
    assert stored["s"].name == "b@x.com a@x.com"
    assert stored["s"].options == ""


# --- comments ------------------------------------------------------------------------


def _comment_world(client: TestClient, creds: Credentials) -> None:
    _seed_people(client, creds, "a@x.com", "b@x.com")
    rooms = [room("r1", "a@x.com", ["a@x.com", "b@x.com"]), room("r2", "b@x.com", ["b@x.com"])]
    assert_finished(run_import(client, creds, "rooms", rooms), 2)
    assert_finished(run_import(client, creds, "comments", [comment("old", "r1", "a@x.com")]), 1)


def _reply(unique_id: str, room_id: str, parent: str, **extra: Any) -> dict[str, Any]:
    extra.setdefault("Payload", {"text": "re", "replied_comment_id": 1})
    return comment(unique_id, room_id, "a@x.com", "reply", ParentCommentUniqueId=parent, **extra)


def test_comment_rules_report_every_problem(
    client: TestClient, make_app: Any, runtime: Runtime
) -> None:
    creds = make_app()
    _comment_world(client, creds)
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
        _reply("c14", "r2", "old"),
        comment("c15", "r1", "a@x.com", CreatedAt="2017-05-11 19:14"),
        _reply("c16", "r1", "c0", Payload=None),
    ]
    record = run_import(client, creds, "comments", rows)
    assert problems(record) == [
        (1, "old", "UniqueId"),
        (2, "c0", "UniqueId"),
        (3, "c3", "RoomUniqueId"),
        (3, "c3", "CreatorEmail"),
        (4, "c4", "Type"),
        (5, "c5", "DisableLinkPreview"),
        (6, "c6", "ParentCommentUniqueId"),
        (7, "c7", "ParentCommentUniqueId"),
        (8, "c8", "ParentCommentUniqueId"),
        (10, "c10", "Payload"),
        (11, "c11", "Payload"),
        (12, "c12", "ParentCommentUniqueId"),
        (13, "c13", "ParentCommentUniqueId"),
        (14, "c14", "ParentCommentUniqueId"),
        (15, "c15", "CreatedAt"),
        (16, "c16", "Payload"),
    ]
    assert "comes later in the file (row 9)" in messages(record, 6, "ParentCommentUniqueId")[0]
    assert "is in another room" in messages(record, 7, "ParentCommentUniqueId")[0]
    assert "is in another room" in messages(record, 14, "ParentCommentUniqueId")[0]
    assert "integer of at least 1" in messages(record, 10, "Payload")[0]
    assert counts(runtime, creds.app_id)["comments"] == 1


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
]
PAYLOADS_BAD: list[tuple[str, dict[str, Any], str]] = [
    ("file_attachment", {"url": "nope"}, "Payload.url 'nope' is not an absolute http(s) URL"),
    ("custom", {"content": {}}, "Payload.type must be a string, got null"),
    ("location", {"name": "M", "address": "J", "latitude": 91, "longitude": 0}, "latitude 91"),
    ("contact_person", {"name": "B", "value": "v", "type": "fax"}, "Payload.type 'fax'"),
    ("buttons", {"text": "pick", "buttons": []}, "non-empty array of buttons"),
    ("card", {"title": "T"}, "Payload.description must be a string"),
    ("carousel", {"cards": [{"title": 1, "description": "D"}]}, "Payload.cards[0].title"),
    ("account_linking", {}, "Payload.url must be a string"),
    ("text", [], "Payload must be a JSON object or null"),  # type: ignore[list-item]
]


def test_message_types_and_payload_shapes(
    client: TestClient, make_app: Any, runtime: Runtime
) -> None:
    creds = make_app()
    _comment_world(client, creds)
    good = [
        comment(f"ok-{kind}", "r1", "a@x.com", kind, Payload=payload)
        for kind, payload in PAYLOADS_OK
    ]
    bad = [
        comment(f"bad-{n}", "r1", "a@x.com", kind, Payload=payload)
        for n, (kind, payload, _) in enumerate(PAYLOADS_BAD)
    ]
    record = run_import(client, creds, "comments", good + bad)
    offset = len(good)
    assert sorted({p[0] for p in problems(record)}) == list(range(offset, offset + len(bad)))
    for n, (_, _, expected) in enumerate(PAYLOADS_BAD):
        found = messages(record, offset + n, "Payload")
        assert any(expected in m for m in found), (expected, found)
    assert_finished(run_import(client, creds, "comments", good), len(good))
    with transaction(runtime.sessions) as session:
        stored = {c.unique_id: c for c in session.scalars(select(Comment))}
    for kind, payload in PAYLOADS_OK:
        assert stored[f"ok-{kind}"].type == kind
        assert orjson.loads(stored[f"ok-{kind}"].payload or "null") == payload


def test_replies_to_stored_and_earlier_comments_get_real_ids(
    client: TestClient, make_app: Any, runtime: Runtime
) -> None:
    creds = make_app()
    _comment_world(client, creds)
    rows = [
        _reply("to-old", "r1", "old"),
        comment("p", "r1", "b@x.com", DisableLinkPreview=True),
        _reply("to-p", "r1", "p", Payload={"text": "re", "replied_comment_id": 1, "x": "y"}),
        _reply("to-reply", "r1", "to-p"),
    ]
    assert_finished(run_import(client, creds, "comments", rows), 4)
    with transaction(runtime.sessions) as session:
        stored = {c.unique_id: c for c in session.scalars(select(Comment))}
    for child, parent in (("to-old", "old"), ("to-p", "p"), ("to-reply", "to-p")):
        assert stored[child].parent_id == stored[parent].id
        payload = orjson.loads(stored[child].payload or "null")
        assert payload["replied_comment_id"] == stored[parent].id
    assert orjson.loads(stored["to-p"].payload or "null")["x"] == "y"
    assert stored["p"].disable_link_preview is True
    assert stored["to-old"].id < stored["p"].id < stored["to-p"].id < stored["to-reply"].id


# --- atomicity, races and reruns -----------------------------------------------------


@pytest.mark.parametrize("resource", ["users", "rooms", "comments"])
def test_one_bad_row_writes_nothing(
    client: TestClient, make_app: Any, runtime: Runtime, resource: str
) -> None:
    creds = make_app()
    _comment_world(client, creds)
    before = counts(runtime, creds.app_id)
    rows: dict[str, list[dict[str, Any]]] = {
        "users": [user(f"n{n}@x.com") for n in range(50)] + [user("bad")],
        "rooms": [room(f"n{n}", "a@x.com", ["a@x.com"]) for n in range(50)]
        + [room("bad", "ghost@x.com", ["a@x.com"])],
        "comments": [comment(f"n{n}", "r1", "a@x.com") for n in range(50)]
        + [comment("bad", "r1", "ghost@x.com")],
    }
    record = run_import(client, creds, resource, rows[resource])
    assert problems(record) == [(50, "bad", "CreatorEmail" if resource != "users" else "Email")]
    assert counts(runtime, creds.app_id) == before


def _import_row(runtime: Runtime, unique_id: str) -> Import:
    with transaction(runtime.sessions) as session:
        found = session.scalar(select(Import).where(Import.unique_id == unique_id))
    assert found is not None
    return found


def test_unique_constraints_decide_a_race_and_reruns_do_nothing(
    client: TestClient, make_app: Any, runtime: Runtime
) -> None:
    creds = make_app()
    response = upload(client, creds, "users", [user("race@x.com"), user("free@x.com")])
    first = response.json()["results"]["backup_history"]["unique_id"]
    assert_finished(wait_import(client, creds, first), 2)
    assert_finished(run_import(client, creds, "users", [user("later@x.com")]), 1)
    finished = _import_row(runtime, first)
    assert finished.status == "finished"

    # A rerun of a finished import (a worker that crashed after committing) does nothing.
    handler = import_job.ImportJobHandler()
    claimed = ClaimedJob(0, "import", finished.id, 2, 3, "test")
    handler.run(runtime, claimed)
    assert counts(runtime, creds.app_id)["users"] == 3

    # Rows checked, then another writer takes the same email before this import writes.
    with transaction(runtime.sessions) as session:
        unfinished = Import(
            unique_id="race-import",
            app_pk=_pk(runtime, creds.app_id),
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
    runtime.store.put_stream(
        "imports/race.json", [orjson.dumps([user("new@x.com"), user("other@x.com")])]
    )
    plan = import_job._load_plan(runtime, unfinished.id)
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
        import_job._write(runtime, plan, checked, ["h1", "h2"])
    assert _import_row(runtime, "race-import").status == "started"
    assert "other@x.com" not in _users(runtime, creds.app_id)

    # The whole job, run now, reports the duplicate and ends failed.
    handler.run(runtime, ClaimedJob(0, "import", unfinished.id, 1, 3, "test"))
    lost = client.get("/api/v2.1/rest/imports/race-import", headers=creds.headers).json()
    lost = lost["results"]["backup_history"]
    assert problems(lost) == [(0, "new@x.com", "Email")]
    assert "other@x.com" not in _users(runtime, creds.app_id)
