"""Credentials (headers, hashing, rotation) and isolation between apps (tenants)."""

from __future__ import annotations

import http.client
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from chatferry.apps.service import rotate_secret
from chatferry.db.engine import transaction
from chatferry.db.models import App, Export
from chatferry.runtime import Runtime
from chatferry.security.secrets import SecretHasher
from support.apps import Credentials, NewApp
from support.exports import create_export, download_json, export_and_wait, wait_finished
from support.http import EXPORTS, assert_error
from support.rows import add_comment, add_room, add_user, app_pk
from support.servers import StartServer

MISSING_APP_ID = "QISCUS-SDK-APP-ID"
MISSING_SECRET = "QISCUS-SDK-SECRET"


def export_rows(rt: Runtime) -> int:
    with transaction(rt.sessions) as session:
        return len(session.scalars(select(Export.id)).all())


# --- authentication ---------------------------------------------------------------------


def test_missing_credentials_get_401_naming_the_header(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    requests = [
        ("GET", EXPORTS),
        ("POST", EXPORTS),
        ("GET", f"{EXPORTS}/{uuid.uuid4()}"),
        ("DELETE", f"{EXPORTS}/{uuid.uuid4()}"),
    ]
    for method, path in requests:
        for headers, fragment in [
            ({}, MISSING_APP_ID),
            ({"QISCUS-SDK-SECRET": creds.secret}, MISSING_APP_ID),
            ({"QISCUS-SDK-APP-ID": creds.app_id}, MISSING_SECRET),
            ({"QISCUS-SDK-APP-ID": creds.app_id, "QISCUS-SDK-SECRET": ""}, MISSING_SECRET),
            ({"QISCUS-SDK-APP-ID": "", "QISCUS-SDK-SECRET": creds.secret}, MISSING_APP_ID),
        ]:
            response = client.request(method, path, headers=headers, json={"type": "users"})
            assert_error(response, 401, fragment)
    assert export_rows(runtime) == 0


def test_wrong_secret_and_unknown_app_get_the_same_401(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app(real_secret_hash=True)
    other = new_app("other")  # only its secret is used, against the first app's hash
    wrong_secret = client.get(
        EXPORTS, headers={"QISCUS-SDK-APP-ID": creds.app_id, "QISCUS-SDK-SECRET": "nope" * 8}
    )
    unknown_app = client.get(
        EXPORTS, headers={"QISCUS-SDK-APP-ID": "no-such-app", "QISCUS-SDK-SECRET": creds.secret}
    )
    # Another app's valid secret opens nothing but that app.
    crossed = client.post(
        EXPORTS,
        json={"type": "users"},
        headers={"QISCUS-SDK-APP-ID": creds.app_id, "QISCUS-SDK-SECRET": other.secret},
    )
    first = assert_error(wrong_secret, 401, MISSING_APP_ID, MISSING_SECRET)
    # Never reveal whether the app id exists.
    assert assert_error(unknown_app, 401) == first
    assert assert_error(crossed, 401) == first
    assert export_rows(runtime) == 0
    assert client.get(EXPORTS, headers=creds.headers).status_code == 200


def test_header_names_are_case_insensitive_and_take_underscores_in_process(
    client: TestClient, new_app: NewApp
) -> None:
    creds = new_app()
    variants = [
        {"qiscus-sdk-app-id": creds.app_id, "qiscus-sdk-secret": creds.secret},
        {"Qiscus-Sdk-App-Id": creds.app_id, "QiScUs-SdK-sEcReT": creds.secret},
        {"QISCUS_SDK_APP_ID": creds.app_id, "QISCUS_SDK_SECRET": creds.secret},
        {"QISCUS-SDK-APP-ID": creds.app_id, "qiscus_sdk_secret": creds.secret},
    ]
    for headers in variants:
        response = client.get(EXPORTS, headers=headers)
        assert response.status_code == 200, (headers, response.text)


def raw_request(
    base_url: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b""
) -> tuple[int, Any]:
    """Sends header names byte for byte as given (no client-side normalisation)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        response = conn.getresponse()
        return response.status, orjson.loads(response.read())
    finally:
        conn.close()


@pytest.mark.slow
def test_a_real_server_accepts_any_header_case_and_the_underscore_forms(
    start_server: StartServer, new_app: NewApp
) -> None:
    creds = new_app()
    server = start_server()
    spellings = [
        ("QISCUS-SDK-APP-ID", "QISCUS-SDK-SECRET"),
        ("qiscus-sdk-app-id", "qiscus-sdk-secret"),
        ("Qiscus-Sdk-App-Id", "qIsCuS-sDk-SeCrEt"),
        ("QISCUS_SDK_APP_ID", "QISCUS_SDK_SECRET"),
        ("qiscus_sdk_app_id", "qiscus_sdk_secret"),
        ("QISCUS-SDK-APP-ID", "QISCUS_SDK_SECRET"),  # as in the spec's DELETE example
    ]
    for app_header, secret_header in spellings:
        status, body = raw_request(
            server.base_url,
            "GET",
            EXPORTS,
            [(app_header, creds.app_id), (secret_header, creds.secret)],
        )
        assert status == 200, (app_header, secret_header, body)
        assert body["status"] == 200

    # The whole spec flow with underscores only: create, read, delete.
    underscores = [("QISCUS_SDK_APP_ID", creds.app_id), ("QISCUS_SDK_SECRET", creds.secret)]
    status, body = raw_request(
        server.base_url,
        "POST",
        EXPORTS,
        [*underscores, ("Content-Type", "application/json")],
        b'{"type": "comments", "start_date": "2017-01-01", "end_date": "2017-01-05"}',
    )
    assert status == 200, body
    unique_id = body["results"]["unique_id"]
    record = wait_finished(server.http, dict(underscores), unique_id)
    assert record["download_url"].startswith(f"{server.base_url}/api/v2.1/rest/exports/")
    status, body = raw_request(server.base_url, "DELETE", f"{EXPORTS}/{unique_id}", underscores)
    assert status == 200, body
    assert body["results"]["backup_history"]["unique_id"] == unique_id

    # Without the secret (in any spelling) the server still says 401 with the envelope.
    status, body = raw_request(
        server.base_url, "GET", EXPORTS, [("QISCUS_SDK_APP_ID", creds.app_id)]
    )
    assert status == 401
    assert body["status"] == 401 and MISSING_SECRET in body["error"]["message"]


def test_secrets_are_stored_as_keyed_hashes(make_app: Any, runtime: Runtime) -> None:
    creds = make_app()
    chosen = make_app("chosen", app_id="chosen-app", secret="my-own-secret-1234")
    with transaction(runtime.sessions) as session:
        stored = {a.app_id: a.secret_hash for a in session.scalars(select(App))}
    for app in (creds, chosen):
        secret_hash = stored[app.app_id]
        assert app.secret not in secret_hash
        assert secret_hash.startswith("hmac-sha256$") and len(secret_hash) == 12 + 64
        # The server's key is part of it: the database alone cannot test a guess.
        assert secret_hash == runtime.secrets.hash(app.app_id, app.secret)
        assert secret_hash != SecretHasher(b"another key").hash(app.app_id, app.secret)
    assert chosen.secret == "my-own-secret-1234"
    assert len(creds.secret) == 32 and int(creds.secret, 16) >= 0  # 128 random bits, hex
    # The app id is part of it: equal secrets of two apps never show as equal hashes.
    twin = make_app("twin", app_id="twin-app", secret="my-own-secret-1234")
    with transaction(runtime.sessions) as session:
        twin_hash = session.scalar(select(App.secret_hash).where(App.app_id == twin.app_id))
    assert twin_hash != stored["chosen-app"]


def test_a_legacy_argon2_secret_works_once_and_is_upgraded(
    client: TestClient, make_app: Any, runtime: Runtime
) -> None:
    creds = make_app()
    legacy = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(creds.secret)
    with transaction(runtime.sessions) as session:
        session.execute(update(App).where(App.app_id == creds.app_id).values(secret_hash=legacy))
    wrong = Credentials(creds.app_id, "0" * 32)
    assert_error(client.get(EXPORTS, headers=wrong.headers), 401, MISSING_SECRET)
    assert client.get(EXPORTS, headers=creds.headers).status_code == 200
    with transaction(runtime.sessions) as session:
        upgraded = session.scalar(select(App.secret_hash).where(App.app_id == creds.app_id))
    assert upgraded == runtime.secrets.hash(creds.app_id, creds.secret)
    assert client.get(EXPORTS, headers=creds.headers).status_code == 200


def test_rotating_the_secret_stops_the_old_one_at_once(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    assert client.get(EXPORTS, headers=creds.headers).status_code == 200
    with transaction(runtime.sessions) as session:
        new_secret = rotate_secret(session, runtime.secrets, creds.app_id)
    assert new_secret != creds.secret

    assert_error(client.get(EXPORTS, headers=creds.headers), 401, MISSING_SECRET)
    rotated = Credentials(creds.app_id, new_secret)
    assert client.get(EXPORTS, headers=rotated.headers).status_code == 200
    assert create_export(client, rotated.headers, type="users")["status"] == "started"


# --- tenant isolation -------------------------------------------------------------------


def fill_app(rt: Runtime, app_id: str, label: str) -> dict[str, list[str]]:
    """Users, rooms and comments whose emails and unique ids are the same in every app;
    only the names and messages (which carry ``label``) tell the apps apart."""
    pk = app_pk(rt, app_id)
    base = datetime.now(UTC) - timedelta(hours=2)
    with transaction(rt.sessions) as session:
        alice = add_user(session, pk, "alice@example.com", base, name=f"Alice {label}")
        bob = add_user(session, pk, "bob@example.com", base + timedelta(seconds=1))
        own = add_user(session, pk, f"only-{label}@example.com", base + timedelta(seconds=2))
        room = add_room(session, pk, "room-1", alice, [alice, bob, own], base, name=label)
        first = add_comment(
            session, pk, "msg-1", room, alice, base + timedelta(minutes=1), f"hi from {label}"
        )
        add_comment(
            session,
            pk,
            "msg-2",
            room,
            own,
            base + timedelta(minutes=2),
            f"reply in {label}",
            type="reply",
            payload=orjson.dumps({"text": f"reply in {label}", "replied_comment_id": 1}).decode(),
            parent=first,
        )
    return {
        "users": ["alice@example.com", "bob@example.com", f"only-{label}@example.com"],
        "rooms": ["room-1"],
        "comments": ["msg-1", "msg-2"],
    }


def test_another_apps_export_is_invisible(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    a = new_app("A")
    b = new_app("B")
    fill_app(runtime, a.app_id, "A")
    record = export_and_wait(client, a.headers, type="users")
    own_b = create_export(client, b.headers, type="rooms", end_date="2017-01-01")
    unique_id = record["unique_id"]

    get_other = client.get(f"{EXPORTS}/{unique_id}", headers=b.headers)
    get_unknown = client.get(f"{EXPORTS}/{uuid.uuid4()}", headers=b.headers)
    other_message = assert_error(get_other, 404)
    unknown_message = assert_error(get_unknown, 404)
    # The same sentence as for an id that does not exist at all.
    assert other_message.replace(unique_id, "ID") == unknown_message.replace(
        get_unknown.url.path.rsplit("/", 1)[1], "ID"
    )
    assert_error(client.delete(f"{EXPORTS}/{unique_id}", headers=b.headers), 404)

    listed_b = client.get(f"{EXPORTS}?limit=100", headers=b.headers).json()["results"]
    assert [r["unique_id"] for r in listed_b["backup_histories"]] == [own_b["unique_id"]]
    listed_a = client.get(EXPORTS, headers=a.headers).json()["results"]
    assert [r["unique_id"] for r in listed_a["backup_histories"]] == [unique_id]

    # B's DELETE attempt changed nothing for A.
    again = client.get(f"{EXPORTS}/{unique_id}", headers=a.headers)
    assert again.status_code == 200
    assert again.json()["results"]["backup_history"]["status"] == "finished"
    assert client.get(again.json()["results"]["backup_history"]["download_url"]).status_code == 200


def test_an_export_holds_only_its_own_apps_rows(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    a = new_app("A")
    b = new_app("B")
    expected = fill_app(runtime, a.app_id, "A")
    fill_app(runtime, b.app_id, "B")

    users = download_json(client, export_and_wait(client, a.headers, type="users"))
    assert [u["Email"] for u in users] == expected["users"]
    assert users[0]["Name"] == "Alice A"

    rooms = download_json(client, export_and_wait(client, a.headers, type="rooms"))
    assert [r["UniqueId"] for r in rooms] == expected["rooms"]
    assert rooms[0]["Name"] == "A"
    assert rooms[0]["ParticipantEmails"] == expected["users"]

    comments = download_json(client, export_and_wait(client, a.headers, type="comments"))
    assert [c["UniqueId"] for c in comments] == expected["comments"]
    assert [c["Message"] for c in comments] == ["hi from A", "reply in A"]
    assert comments[1]["ParentCommentUniqueId"] == "msg-1"
    assert comments[1]["Payload"]["text"] == "reply in A"

    # The row limit counts the app's own rows only.
    record = export_and_wait(client, b.headers, type="users")
    assert record["total_rows"] == 3
