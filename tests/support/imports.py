"""Imports through the API: upload a file, wait for the import's final record, rows.

Everything goes through the real app, worker, database and file store; nothing is mocked.
Test users carry a ``PasswordHash`` made once (``apps.TEST_PASSWORD_HASH``): a plain
``Password`` costs an Argon2id hash at OWASP parameters per user, which only the tests
about hashing should pay (``user_with_password``).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from chatferry.db.engine import transaction
from chatferry.db.models import App, Comment, Room, User
from chatferry.runtime import Runtime
from support.apps import TEST_PASSWORD, TEST_PASSWORD_HASH, Credentials
from support.exports import download, export_and_wait
from support.http import IMPORTS
from support.waiting import read_record, wait_final

SPEC_IMPORT_KEYS = {
    "created_at",
    "errors",
    "original_filename",
    "resource_name",
    "size",
    "status",
    "total_rows",
    "unique_id",
}

SPEC_USERS: list[dict[str, Any]] = [
    {
        "Email": "mymail@mymail.com",
        "Name": "Nama",
        "AvatarUrl": "https://placehold.it/20x20",
        "AuthenticationToken": "randomstring",
        "Password": "password",
        "CreateAt": "2017-05-10T11:46:30Z",
    }
]

SPEC_ROOMS: list[dict[str, Any]] = [
    {
        "Name": "demo1@linkdokter.com 4992614d-9d32-4cc4-ae8e-310a7a0fdbb9",
        "Type": "single",
        "Options": "",
        "CreatorEmail": "user@mymail.com",
        "CreatedAt": "2017-05-11T06:35:27Z",
        "AvatarUrl": "",
        "UniqueId": "f82e5262-e9c4-4b7b-867a-ea890ba64f43",
        "ParticipantEmails": ["user@mymail.com", "mymail@mymail.com"],
    },
    {
        "Name": "Qiscus Family Super",
        "Type": "group",
        "Options": "",
        "CreatorEmail": "user@mymail.com",
        "CreatedAt": "2017-05-11T06:35:27Z",
        "AvatarUrl": "",
        "UniqueId": "f82e5262-e9c4-4b7b-867a-ea890ba64f43",
        "ParticipantEmails": ["user@mymail.com", "mymail@mymail.com", "newuser@mymail.com"],
    },
]

SPEC_COMMENTS: list[dict[str, Any]] = [
    {
        "Message": "Halo doc",
        "DisableLinkPreview": False,
        "Type": "text",
        "UniqueId": "android_14945300625232b81ffc0520f961",
        "CreatorEmail": "userid_844_6285868233422@kiwari-stag.com",
        "RoomUniqueId": "4e6c208b-3436-46a0-a6d7-add9b90dfc77",
        "CreatedAt": "2017-05-11T19:14:24Z",
        "Payload": None,
        "ParentCommentUniqueId": "",
    },
    {
        "Message": "Maaf mau tanya..",
        "DisableLinkPreview": False,
        "Type": "reply",
        "UniqueId": "android_14945300625232b81ffc0520f962",
        "CreatorEmail": "userid_844_6285868233422@kiwari-stag.com",
        "RoomUniqueId": "4e6c208b-3436-46a0-a6d7-add9b90dfc77",
        "CreatedAt": "2017-05-11T19:14:24Z",
        "Payload": {"text": "Maaf mau tanya..", "replied_comment_id": 1},
        "ParentCommentUniqueId": "android_14945300625232b81ffc0520f961",
    },
]


def upload(
    client: httpx.Client,
    creds: Credentials,
    resource: str | None,
    content: Any,
    filename: str = "rows.json",
    validate_only: str | None = None,
) -> Any:
    """POSTs the rows (a list is JSON-encoded; bytes are sent as they are)."""
    body = content if isinstance(content, bytes) else orjson.dumps(content)
    data: dict[str, str] = {}
    if resource is not None:
        data["type"] = resource
    if validate_only is not None:
        data["validate_only"] = validate_only
    return client.post(
        IMPORTS,
        data=data,
        files={"file": (filename, body, "application/json")},
        headers=creds.headers,
    )


def get_import(client: TestClient, creds: Credentials, unique_id: str) -> dict[str, Any]:
    return read_record(client, "imports", unique_id, creds.headers)


def wait_import(client: TestClient, creds: Credentials, unique_id: str) -> dict[str, Any]:
    """The import's final record (finished or failed)."""
    return wait_final(client, "imports", unique_id, creds.headers, timeout=60)


def run_import(
    client: TestClient,
    creds: Credentials,
    resource: str,
    content: Any,
    validate_only: str | None = None,
) -> dict[str, Any]:
    """Uploads and waits for the import to end; returns the final record."""
    response = upload(client, creds, resource, content, validate_only=validate_only)
    assert response.status_code == 200, response.text
    return wait_import(client, creds, response.json()["results"]["backup_history"]["unique_id"])


def assert_finished(record: dict[str, Any], rows: int) -> None:
    assert record["status"] == "finished", record["errors"]
    assert record["errors"] == {"Message": "", "Data": None}
    assert record["total_rows"] == rows
    assert record["percentage"] == 100


def problems(record: dict[str, Any]) -> list[tuple[int | None, str | None, str]]:
    """(row, key, field) of every problem of a failed import."""
    assert record["status"] == "failed", record
    return [(p["row"], p["key"], p["field"]) for p in record["errors"]["Data"]]


def messages(record: dict[str, Any], row: int, field: str) -> list[str]:
    return [
        p["message"] for p in record["errors"]["Data"] if p["row"] == row and p["field"] == field
    ]


def counts(rt: Runtime, app_id: str) -> dict[str, int]:
    with transaction(rt.sessions) as session:
        pk = session.scalar(select(App.id).where(App.app_id == app_id))
        return {
            name: int(
                session.scalar(select(func.count()).select_from(model).where(model.app_pk == pk))
                or 0
            )
            for name, model in (("users", User), ("rooms", Room), ("comments", Comment))
        }


def export_file(client: TestClient, creds: Credentials, resource: str) -> bytes:
    """The file of a finished export of all of ``resource`` (the last 30 days)."""
    return download(client, export_and_wait(client, creds.headers, type=resource))


def user(email: str, **extra: Any) -> dict[str, Any]:
    """A user row whose password is already hashed (``TEST_PASSWORD``)."""
    name = email.split("@")[0]
    return {"Email": email, "Name": name, "PasswordHash": TEST_PASSWORD_HASH, **extra}


def user_with_password(email: str, **extra: Any) -> dict[str, Any]:
    """A user row with a plain ``Password``, which the import hashes (slow by design)."""
    return {"Email": email, "Name": email.split("@")[0], "Password": TEST_PASSWORD, **extra}


def room(
    unique_id: str, creator: str, participants: list[str], kind: str = "group", **extra: Any
) -> dict[str, Any]:
    return {
        "Name": f"room {unique_id}",
        "Type": kind,
        "Options": "",
        "CreatorEmail": creator,
        "CreatedAt": "2024-01-02T03:04:05Z",
        "AvatarUrl": "",
        "UniqueId": unique_id,
        "ParticipantEmails": participants,
        **extra,
    }


def comment(
    unique_id: str, room_id: str, creator: str, kind: str = "text", **extra: Any
) -> dict[str, Any]:
    return {
        "Message": f"message {unique_id}",
        "DisableLinkPreview": False,
        "Type": kind,
        "UniqueId": unique_id,
        "CreatorEmail": creator,
        "RoomUniqueId": room_id,
        "CreatedAt": "2024-01-02T03:04:05Z",
        "Payload": None,
        "ParentCommentUniqueId": "",
        **extra,
    }
