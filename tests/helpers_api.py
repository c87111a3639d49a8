"""Helpers for the export API tests: hand-made rows, export polling and error checks.

Everything here goes through the real app, database and file store; nothing is mocked.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import orjson
from fastapi.testclient import TestClient
from sqlalchemy import select

from chatferry.clock import utcnow
from chatferry.db.engine import transaction
from chatferry.db.models import App, Comment, Room, RoomParticipant, User
from chatferry.runtime import Runtime

from conftest import Credentials, wait_for

API = "/api/v2.1/rest"
EXPORTS = f"{API}/exports"

SPEC_KEYS = {
    "created_at",
    "download_url",
    "error_message",
    "original_filename",
    "percentage",
    "resource_name",
    "size",
    "status",
    "total_rows",
    "unique_id",
}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
TERMINAL = ("finished", "failed", "cancelled")


# The design's file format, keys in order (stated here, not taken from the code).
USER_KEYS = ["Email", "Name", "AvatarUrl", "AuthenticationToken", "PasswordHash", "CreateAt"]
ROOM_KEYS = [
    "Name",
    "Type",
    "Options",
    "CreatorEmail",
    "CreatedAt",
    "AvatarUrl",
    "UniqueId",
    "ParticipantEmails",
]
COMMENT_KEYS = [
    "Message",
    "DisableLinkPreview",
    "Type",
    "UniqueId",
    "CreatorEmail",
    "RoomUniqueId",
    "CreatedAt",
    "Payload",
    "ParentCommentUniqueId",
]


def quick_app(rt: Runtime, name: str = "Test app", timezone: str = "UTC") -> Credentials:
    """An app made straight in the database (no CLI, no API)."""
    app_id = f"app-{uuid.uuid4().hex[:10]}"
    secret = secrets.token_hex(16)
    with transaction(rt.sessions) as session:
        session.add(
            App(
                app_id=app_id,
                name=name,
                secret_hash=rt.secrets.hash(app_id, secret),
                timezone=timezone,
                created_at=utcnow(),
            )
        )
    return Credentials(app_id, secret)


def app_pk(rt: Runtime, app_id: str) -> int:
    with transaction(rt.sessions) as session:
        pk = session.scalar(select(App.id).where(App.app_id == app_id))
    assert pk is not None
    return pk


def add_user(
    session: Any,
    pk: int,
    email: str,
    created_at: datetime,
    name: str = "",
    avatar_url: str = "",
    token: str | None = None,
    password_hash: str = "",
) -> User:
    user = User(
        app_pk=pk,
        email=email,
        name=name or email.split("@")[0],
        avatar_url=avatar_url,
        authentication_token=token or secrets.token_hex(8),
        password_hash=password_hash,
        created_at=created_at,
    )
    session.add(user)
    session.flush()
    return user


def add_room(
    session: Any,
    pk: int,
    unique_id: str,
    creator: User,
    participants: list[User],
    created_at: datetime,
    type: str = "group",
    name: str = "",
    options: str = "",
    avatar_url: str = "",
) -> Room:
    room = Room(
        app_pk=pk,
        unique_id=unique_id,
        name=name or unique_id,
        type=type,
        options=options,
        creator_id=creator.id,
        avatar_url=avatar_url,
        created_at=created_at,
    )
    session.add(room)
    session.flush()
    for position, user in enumerate(participants):
        session.add(RoomParticipant(room_id=room.id, position=position, user_id=user.id))
    session.flush()
    return room


def add_comment(
    session: Any,
    pk: int,
    unique_id: str,
    room: Room,
    user: User,
    created_at: datetime,
    message: str = "hello",
    type: str = "text",
    payload: str | None = None,
    parent: Comment | None = None,
    disable_link_preview: bool = False,
) -> Comment:
    comment = Comment(
        app_pk=pk,
        unique_id=unique_id,
        room_id=room.id,
        user_id=user.id,
        type=type,
        message=message,
        payload=payload,
        disable_link_preview=disable_link_preview,
        parent_id=parent.id if parent else None,
        created_at=created_at,
    )
    session.add(comment)
    session.flush()
    return comment


def add_users(rt: Runtime, app_id: str, moments: list[datetime], prefix: str = "u") -> list[str]:
    """Adds one user per instant; returns their emails in the same order."""
    pk = app_pk(rt, app_id)
    emails = [f"{prefix}{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(len(moments))]
    with transaction(rt.sessions) as session:
        for email, moment in zip(emails, moments, strict=True):
            add_user(session, pk, email, moment)
    return emails


def create_export(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(EXPORTS, json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == 200
    record: dict[str, Any] = response.json()["results"]
    return record


def get_record(client: TestClient, headers: dict[str, str], unique_id: str) -> dict[str, Any]:
    response = client.get(f"{EXPORTS}/{unique_id}", headers=headers)
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()["results"]["backup_history"]
    return record


def wait_done(
    client: TestClient, headers: dict[str, str], unique_id: str, timeout: float = 20.0
) -> dict[str, Any]:
    """Polls the export until it leaves "started"; returns the final record."""

    def done() -> dict[str, Any] | None:
        record = get_record(client, headers, unique_id)
        return record if record["status"] in TERMINAL else None

    result: dict[str, Any] = wait_for(done, timeout=timeout)
    return result


def wait_finished(client: TestClient, headers: dict[str, str], unique_id: str) -> dict[str, Any]:
    record = wait_done(client, headers, unique_id)
    assert record["status"] == "finished", record
    return record


def export_and_wait(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    return wait_finished(client, headers, create_export(client, headers, **body)["unique_id"])


def relative(url: str) -> str:
    """The path and query of an absolute link, for the in-process TestClient."""
    parsed = httpx.URL(url)
    return parsed.raw_path.decode()


def download(client: TestClient, record: dict[str, Any]) -> bytes:
    response = client.get(record["download_url"])
    assert response.status_code == 200, response.text
    return response.content


def download_json(client: TestClient, record: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = orjson.loads(download(client, record))
    return rows


def assert_error(response: httpx.Response, status: int, *fragments: str) -> str:
    """The response is the error envelope with this status; returns its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"status", "error"}, body
    assert body["status"] == status
    # The spec's key first; extension keys (code, limit, ...) only next to it.
    assert next(iter(body["error"])) == "message"
    assert set(body["error"]) <= {
        "message",
        "code",
        "resource",
        "rows",
        "limit",
        "setting",
        "days",
        "max_days",
        "limit_bytes",
    }, body
    message: str = body["error"]["message"]
    assert isinstance(message, str) and message.strip()
    assert "Traceback" not in message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), (fragment, message)
    return message


def stored_files(rt: Runtime) -> list[Path]:
    """Every file in the local file store (export files and any leftovers)."""
    root = Path(unquote(urlparse(rt.settings.resolved_storage_url()).path))
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file())
