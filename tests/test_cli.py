"""The ``chatferry`` command line, run as real processes against both backends."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from chatferry.db.engine import transaction
from chatferry.db.models import App, Comment, Room, RoomParticipant, User
from chatferry.runtime import Runtime
from support.apps import Credentials, NewApp
from support.exports import create_export, wait_finished
from support.http import EXPORTS
from support.rows import seed_comments
from support.servers import StartServer, run_cli, run_cli_json

pytestmark = pytest.mark.slow  # every test runs the CLI as a process

SAMPLE_ID = "sdksample"
SAMPLE_SECRET = "2820ae9dfc5362f7f3a10381fb89afc7"
SAMPLE = Credentials(SAMPLE_ID, SAMPLE_SECRET)


def _status(http: httpx.Client, app_id: str, secret: str) -> int:
    return http.get(EXPORTS, headers=Credentials(app_id, secret).headers).status_code


def _assert_fails(done: Any, *fragments: str) -> None:
    """A non-zero exit with a one-line error on stderr that names every fragment."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    message = " ".join(done.stderr.split())  # immune to terminal line wrapping
    assert message.startswith("error:"), done.stderr
    for fragment in fragments:
        assert fragment in message, (fragment, done.stderr)
    # Nothing on stdout, so `chatferry apps create ... > creds.json` never saves an error.
    assert done.stdout == "", done.stdout


def test_apps_create_prints_credentials_that_authenticate(
    settings_env: dict[str, str], start_server: StartServer
) -> None:
    generated = run_cli_json(settings_env, "apps", "create", "--name", "My Chat App")
    assert {"app_id", "secret"} <= set(generated)
    assert generated["name"] == "My Chat App"
    assert generated["timezone"] == "UTC"
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", generated["app_id"])
    assert len(generated["secret"]) >= 16

    kept = run_cli_json(
        settings_env,
        "apps",
        "create",
        "--name",
        "Sample",
        "--app-id",
        SAMPLE_ID,
        "--secret",
        SAMPLE_SECRET,
        "--timezone",
        "Asia/Jakarta",
    )
    assert kept == {
        "app_id": SAMPLE_ID,
        "secret": SAMPLE_SECRET,
        "name": "Sample",
        "timezone": "Asia/Jakarta",
    }

    server = start_server()
    http = server.http
    assert _status(http, generated["app_id"], generated["secret"]) == 200
    assert _status(http, SAMPLE_ID, SAMPLE_SECRET) == 200
    # Each secret opens only its own app.
    assert _status(http, SAMPLE_ID, generated["secret"]) == 401
    assert _status(http, generated["app_id"], SAMPLE_SECRET) == 401
    assert _status(http, SAMPLE_ID, SAMPLE_SECRET[:-1] + "0") == 401
    # The kept app's timezone is used on its records.
    record = create_export(http, SAMPLE.headers, type="users")
    assert record["created_at"].endswith("+07:00"), record


def test_apps_create_refuses_duplicates_and_bad_input(
    settings_env: dict[str, str], new_app: NewApp
) -> None:
    # The app comes from the test's database directly: `apps create` is tested above.
    new_app("Sample", app_id=SAMPLE_ID, secret=SAMPLE_SECRET, real_secret_hash=True)

    duplicate = run_cli(
        settings_env, "apps", "create", "--name", "Other", "--app-id", SAMPLE_ID,
        "--secret", "another-secret-123",
    )  # fmt: skip
    _assert_fails(duplicate, SAMPLE_ID, "already exists")

    bad_zone = run_cli(
        settings_env, "apps", "create", "--name", "Mars", "--app-id", "mars",
        "--timezone", "Mars/Olympus",
    )  # fmt: skip
    _assert_fails(bad_zone, "Mars/Olympus", "timezone", "Asia/Jakarta")

    short_secret = run_cli(
        settings_env, "apps", "create", "--name", "Short", "--app-id", "short", "--secret", "abc"
    )
    _assert_fails(short_secret, "secret", "8 characters")

    bad_id = run_cli(settings_env, "apps", "create", "--name", "Bad", "--app-id", "has space")
    _assert_fails(bad_id, "'has space'", "not valid")

    # None of the refused commands created or changed anything.
    listed = run_cli_json(settings_env, "apps", "list", "--json")
    assert [(a["app_id"], a["name"]) for a in listed] == [(SAMPLE_ID, "Sample")]


def test_apps_list_shows_apps_but_never_secrets(
    settings_env: dict[str, str], runtime: Runtime
) -> None:
    first = run_cli_json(settings_env, "apps", "create", "--name", "My Chat App")
    second = run_cli_json(
        settings_env, "apps", "create", "--name", "Sample", "--app-id", SAMPLE_ID,
        "--secret", SAMPLE_SECRET, "--timezone", "Asia/Jakarta",
    )  # fmt: skip
    with transaction(runtime.sessions) as session:
        hashes = list(session.scalars(select(App.secret_hash)))
    assert len(hashes) == 2

    table = run_cli(settings_env, "apps", "list")
    assert table.returncode == 0, table.stderr
    for app in (first, second):
        # The whole app id, on one line: operators copy it from here.
        assert app["app_id"] in table.stdout, table.stdout
    assert "My Chat App" in table.stdout and "Sample" in table.stdout
    assert "Asia/Jakarta" in table.stdout
    as_json = run_cli(settings_env, "apps", "list", "--json")
    assert as_json.returncode == 0, as_json.stderr

    for output in (table.stdout + table.stderr, as_json.stdout + as_json.stderr):
        for secret in (first["secret"], second["secret"], *hashes):
            assert secret not in output
        assert "secret" not in output.lower()

    listed = json.loads(as_json.stdout)
    assert [a["app_id"] for a in listed] == [first["app_id"], SAMPLE_ID]
    sample = listed[1]
    assert sample["name"] == "Sample"
    assert sample["timezone"] == "Asia/Jakarta"
    assert sample["export_max_rows"] == {"users": 1000, "rooms": 1000, "comments": 5000}
    assert sample["import_max_bytes"] == 4 * 1024 * 1024


def test_rotate_secret_takes_effect_on_a_running_server(
    settings_env: dict[str, str], new_app: NewApp, start_server: StartServer
) -> None:
    # The app comes from the test's database directly: `apps create` is tested above.
    new_app("Sample", app_id=SAMPLE_ID, secret=SAMPLE_SECRET, real_secret_hash=True)
    server = start_server()
    http = server.http
    # Authenticated once before rotating (a server may remember recent successes).
    assert _status(http, SAMPLE_ID, SAMPLE_SECRET) == 200

    rotated = run_cli_json(settings_env, "apps", "rotate-secret", SAMPLE_ID)
    assert rotated["app_id"] == SAMPLE_ID
    new_secret = rotated["secret"]
    assert new_secret != SAMPLE_SECRET and len(new_secret) >= 16

    old = http.get(EXPORTS, headers=SAMPLE.headers)
    assert old.status_code == 401, old.text
    assert old.json()["status"] == 401
    assert _status(http, SAMPLE_ID, new_secret) == 200

    again = run_cli_json(settings_env, "apps", "rotate-secret", SAMPLE_ID)["secret"]
    assert again != new_secret
    assert _status(http, SAMPLE_ID, new_secret) == 401
    assert _status(http, SAMPLE_ID, again) == 200

    unknown = run_cli(settings_env, "apps", "rotate-secret", "no-such-app")
    _assert_fails(unknown, "no-such-app")


def test_apps_update_changes_limits_and_timezone(
    settings_env: dict[str, str], runtime: Runtime, new_app: NewApp, start_server: StartServer
) -> None:
    # The app comes from the test's database directly: `apps create` is tested above.
    new_app("Sample", app_id=SAMPLE_ID, secret=SAMPLE_SECRET, real_secret_hash=True)
    now = datetime.now(UTC).replace(microsecond=0)
    seed_comments(runtime, SAMPLE_ID, [now - timedelta(hours=2, minutes=i) for i in range(6)])
    server = start_server()
    http = server.http

    before = create_export(http, SAMPLE.headers, type="comments")
    assert before["created_at"].endswith("+00:00"), before
    assert wait_finished(http, SAMPLE.headers, before["unique_id"])["total_rows"] == 6

    updated = run_cli_json(
        settings_env, "apps", "update", SAMPLE_ID, "--export-max-comments", "5",
        "--timezone", "Asia/Jakarta",
    )  # fmt: skip
    assert updated["app_id"] == SAMPLE_ID
    assert updated["timezone"] == "Asia/Jakarta"
    assert updated["export_max_rows"]["comments"] == 5
    assert updated["export_max_rows"]["users"] == 1000  # untouched

    # The running server applies the new limit at once, and says what to change.
    refused = http.post(EXPORTS, json={"type": "comments"}, headers=SAMPLE.headers)
    assert refused.status_code == 400, refused.text
    message = refused.json()["error"]["message"]
    assert "6" in message and "limit of 5" in message, message
    assert "--export-max-comments" in message, message

    # Users are still under their (default) limit, and records use +07:00 now.
    record = create_export(http, SAMPLE.headers, type="users")
    assert record["created_at"].endswith("+07:00"), record
    assert record["original_filename"] == f"{record['created_at']}_exported_users.json"
    # The earlier export is shown in the new zone too.
    shown = http.get(f"{EXPORTS}/{before['unique_id']}", headers=SAMPLE.headers)
    assert shown.json()["results"]["backup_history"]["created_at"].endswith("+07:00")

    # 0 puts the limit back to the deployment default.
    reset = run_cli_json(settings_env, "apps", "update", SAMPLE_ID, "--export-max-comments", "0")
    assert reset["export_max_rows"]["comments"] == 5000
    assert reset["timezone"] == "Asia/Jakarta"
    accepted = create_export(http, SAMPLE.headers, type="comments")
    assert wait_finished(http, SAMPLE.headers, accepted["unique_id"])["total_rows"] == 6

    _assert_fails(
        run_cli(settings_env, "apps", "update", "no-such-app", "--timezone", "UTC"), "no-such-app"
    )
    _assert_fails(
        run_cli(settings_env, "apps", "update", SAMPLE_ID, "--timezone", "Mars/Olympus"),
        "Mars/Olympus",
    )
    _assert_fails(
        run_cli(settings_env, "apps", "update", SAMPLE_ID, "--export-max-comments", "-1"),
        "export_max_comments",
    )
    # A refused update changed nothing.
    assert run_cli_json(settings_env, "apps", "list", "--json")[0]["timezone"] == "Asia/Jakarta"


def test_demo_data_waits_for_other_writers_instead_of_failing(
    settings_env: dict[str, str], runtime: Runtime, new_app: NewApp
) -> None:
    """On SQLite a transaction that reads and then writes cannot wait for the write
    lock: a commit by another process in between (a worker's claim, a heartbeat) made
    demo-data fail with "database is locked". It takes the lock first now."""
    app = new_app("Busy", app_id="busy")
    stop = threading.Event()
    commits = 0

    def keep_committing() -> None:  # another writer, as a server's workers are
        nonlocal commits
        while not stop.is_set():
            with runtime.engine.begin() as conn:
                renamed = update(App).where(App.app_id == app.app_id).values(name=f"Busy {commits}")
                conn.execute(renamed)
            commits += 1

    writer = threading.Thread(target=keep_committing)
    writer.start()
    try:
        runs = [
            run_cli(settings_env, "demo-data", "--app-id", "busy", "--users", "5", "--rooms", "2",
                    "--comments", "20")
            for _ in range(3)
        ]  # fmt: skip
    finally:
        stop.set()
        writer.join()
    assert commits > 0
    assert [(r.returncode, r.stderr) for r in runs] == [(0, "")] * 3


def test_demo_data_fills_an_app_with_realistic_data(
    settings_env: dict[str, str], runtime: Runtime, new_app: NewApp
) -> None:
    new_app("Demo", app_id="demo")
    other = {"app_id": new_app("Other", app_id="other").app_id}
    started = datetime.now(UTC)
    counts = run_cli_json(
        settings_env, "demo-data", "--app-id", "demo", "--users", "50", "--rooms", "20",
        "--comments", "2000", "--days", "10",
    )  # fmt: skip
    finished = datetime.now(UTC)
    assert counts == {"app_id": "demo", "users": 50, "rooms": 20, "comments": 2000}

    with transaction(runtime.sessions) as session:
        app_pk = session.scalar(select(App.id).where(App.app_id == "demo"))
        other_pk = session.scalar(select(App.id).where(App.app_id == other["app_id"]))
        users = {u.id: u for u in session.scalars(select(User).where(User.app_pk == app_pk))}
        rooms = {r.id: r for r in session.scalars(select(Room).where(Room.app_pk == app_pk))}
        members: dict[int, list[int]] = {room_id: [] for room_id in rooms}
        for p in session.scalars(
            select(RoomParticipant)
            .where(RoomParticipant.room_id.in_(rooms))
            .order_by(RoomParticipant.room_id, RoomParticipant.position)
        ):
            members[p.room_id].append(p.user_id)
        comments = {
            c.id: c for c in session.scalars(select(Comment).where(Comment.app_pk == app_pk))
        }
        for model in (User, Room, Comment):
            assert not session.scalars(select(model).where(model.app_pk == other_pk)).first()

    assert (len(users), len(rooms), len(comments)) == (50, 20, 2000)
    assert len({u.email for u in users.values()}) == 50
    assert len({u.authentication_token for u in users.values()}) == 50
    assert len({r.unique_id for r in rooms.values()}) == 20
    assert len({c.unique_id for c in comments.values()}) == 2000

    types = Counter(r.type for r in rooms.values())
    assert set(types) == {"single", "group"}, types
    for room in rooms.values():
        people = members[room.id]
        assert len(set(people)) == len(people), room.unique_id
        assert set(people) <= set(users), room.unique_id
        assert room.creator_id in people, room.unique_id
        if room.type == "single":
            assert len(people) == 2, room.unique_id
            assert room.name == f"{users[people[0]].email} {users[people[1]].email}"
        else:
            assert len(people) >= 3, room.unique_id
            assert room.name

    window_start = started - timedelta(days=10, seconds=1)
    moments = [
        *(u.created_at for u in users.values()),
        *(r.created_at for r in rooms.values()),
        *(c.created_at for c in comments.values()),
    ]
    assert all(window_start <= m <= finished for m in moments)
    assert max(c.created_at for c in comments.values()) - min(moments) > timedelta(days=5)

    replies = [c for c in comments.values() if c.type == "reply"]
    for comment in comments.values():
        room = rooms[comment.room_id]
        assert comment.user_id in members[room.id], comment.unique_id
        assert comment.created_at >= room.created_at, comment.unique_id
        if comment.type != "reply":
            assert comment.parent_id is None and comment.payload is None, comment.unique_id
    # About 15% of messages are replies; 2000 messages must have some.
    assert len(replies) >= 100, f"only {len(replies)} of 2000 comments are replies"
    for reply in replies:
        parent = comments[reply.parent_id]  # type: ignore[index]
        assert parent.room_id == reply.room_id, reply.unique_id
        assert parent.created_at <= reply.created_at and parent.id < reply.id
        payload = json.loads(reply.payload or "null")
        assert payload == {"text": reply.message, "replied_comment_id": parent.id}

    messages = [c.message for c in comments.values()]
    assert any("\n" in m for m in messages), "no multi-line message"
    assert any(any(ord(ch) > 0xFFFF for ch in m) for m in messages), "no emoji"
    assert any(any(ord(ch) > 0x2FF for ch in m) for m in messages), "no non-Latin script"
    assert any(any(ord(ch) > 0x7F for ch in u.name) for u in users.values())

    unknown = run_cli(settings_env, "demo-data", "--app-id", "no-such-app", "--users", "2")
    _assert_fails(unknown, "no-such-app")
