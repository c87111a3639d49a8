"""Apps whose rows point at a local file server, for the attachment tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from client_helpers import run_client_json


def moment(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def users(avatars: dict[int, str], when: str) -> list[dict[str, Any]]:
    return [
        {"Email": f"u{n}@files.example", "Name": f"U {n}", "AvatarUrl": avatars.get(n, ""),
         "Password": "not-a-real-password-1", "AuthenticationToken": f"tok-{n}", "CreateAt": when}
        for n in (1, 2, 3)
    ]  # fmt: skip


def rooms(count: int, when: str, avatar: str = "") -> list[dict[str, Any]]:
    emails = [f"u{n}@files.example" for n in (1, 2, 3)]
    return [
        {"Name": f"Room {n}", "Type": "group", "Options": "", "CreatorEmail": emails[0],
         "CreatedAt": when, "AvatarUrl": avatar if n == 1 else "", "UniqueId": f"room-{n}",
         "ParticipantEmails": emails}
        for n in range(1, count + 1)
    ]  # fmt: skip


def file_comment(unique_id: str, url: str, when: str, room: int = 1) -> dict[str, Any]:
    return {
        "Message": f"a file {unique_id}", "DisableLinkPreview": False, "Type": "file_attachment",
        "UniqueId": unique_id, "CreatorEmail": "u2@files.example", "RoomUniqueId": f"room-{room}",
        "CreatedAt": when, "Payload": {"url": url, "caption": unique_id},
        "ParentCommentUniqueId": "",
    }  # fmt: skip


def text_comment(unique_id: str, when: str, room: int = 1, card: str = "") -> dict[str, Any]:
    payload = {"type": "card", "content": {"image": card}} if card else None
    return {
        "Message": f"text {unique_id}", "DisableLinkPreview": False,
        "Type": "custom" if card else "text", "UniqueId": unique_id,
        "CreatorEmail": "u3@files.example", "RoomUniqueId": f"room-{room}", "CreatedAt": when,
        "Payload": payload, "ParentCommentUniqueId": "",
    }  # fmt: skip


def import_rows(env: dict[str, str], directory: Path, resource: str, rows: list[Any]) -> None:
    path = directory / f"{resource}-{len(list(directory.iterdir()))}.json"
    path.write_text(json.dumps(rows))
    done = run_client_json(env, "import", str(path), "--type", resource, "--wait")
    assert done["status"] == "finished", done
