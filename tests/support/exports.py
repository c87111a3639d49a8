"""Exports through the API: create one, wait for its final record, read its file.

``http`` is the in-process ``TestClient`` or a real server's ``ServerProcess.http``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import orjson

from chatferry.runtime import Runtime
from chatferry.settings import Settings
from support.http import EXPORTS
from support.waiting import read_record, wait_final

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


def create_export(http: httpx.Client, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """``POST /exports`` with ``body``; it must be accepted. Returns the new record."""
    response = http.post(EXPORTS, json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == 200
    record: dict[str, Any] = response.json()["results"]
    return record


def get_record(http: httpx.Client, headers: dict[str, str], unique_id: str) -> dict[str, Any]:
    return read_record(http, "exports", unique_id, headers)


def wait_done(
    http: httpx.Client, headers: dict[str, str], unique_id: str, timeout: float = 30.0
) -> dict[str, Any]:
    """The export's final record (finished, failed or cancelled)."""
    return wait_final(http, "exports", unique_id, headers, timeout)


def wait_finished(
    http: httpx.Client, headers: dict[str, str], unique_id: str, timeout: float = 30.0
) -> dict[str, Any]:
    """The export's final record, which must say ``finished``."""
    return wait_final(http, "exports", unique_id, headers, timeout, expect="finished")


def export_and_wait(http: httpx.Client, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """Creates an export and returns its finished record."""
    return wait_finished(http, headers, create_export(http, headers, **body)["unique_id"])


def download(http: httpx.Client, record: dict[str, Any]) -> bytes:
    response = http.get(record["download_url"])
    assert response.status_code == 200, response.text
    return response.content


def download_json(http: httpx.Client, record: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = orjson.loads(download(http, record))
    return rows


def stored_files(where: Runtime | Settings) -> list[Path]:
    """Every file in the local file store (export files, uploads and any leftovers)."""
    settings = where.settings if isinstance(where, Runtime) else where
    root = Path(unquote(urlparse(settings.resolved_storage_url()).path))
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file())


def barrier_export(http: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    """Runs one more (empty) export to the end and returns its record.

    With one worker thread (``CHATFERRY_WORKER_CONCURRENCY=1``) jobs run one after
    another, so once this export has finished, every job queued before it has been run
    to its end or dropped: the observable event that replaces "sleep and hope".
    """
    return export_and_wait(http, headers, type="rooms", end_date="2017-01-01")
