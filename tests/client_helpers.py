"""Helpers for the client's tests: synthetic backups, client processes, row comparisons."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from support import warm

HEAVY_MODULES = (
    "sqlalchemy",
    "fastapi",
    "starlette",
    "uvicorn",
    "alembic",
    "obstore",
    "argon2",
    "psycopg",
    "pydantic_settings",  # the server's settings (Typer itself uses pydantic to parse options)
)


def user(n: int) -> dict[str, Any]:
    return {
        "Email": f"user{n}@example.com",
        "Name": f"User {n}",
        "AvatarUrl": "",
        "AuthenticationToken": f"token-{n}",
        "PasswordHash": "",
        "CreateAt": "2024-01-01T00:00:00Z",
    }


def room(n: int, creator: int, others: list[int]) -> dict[str, Any]:
    emails = [f"user{i}@example.com" for i in [creator, *others]]
    return {
        "Name": f"Group {n}",
        "Type": "group",
        "Options": "",
        "CreatorEmail": emails[0],
        "CreatedAt": "2024-01-02T00:00:00Z",
        "AvatarUrl": "",
        "UniqueId": f"room-{n}",
        "ParticipantEmails": emails,
    }


def comment(n: int, room_n: int, creator: int, parent: int | None = None) -> dict[str, Any]:
    return {
        "Message": f"message {n}",
        "DisableLinkPreview": False,
        "Type": "reply" if parent is not None else "text",
        "UniqueId": f"c-{n}",
        "CreatorEmail": f"user{creator}@example.com",
        "RoomUniqueId": f"room-{room_n}",
        "CreatedAt": "2024-01-03T00:00:00Z",
        "Payload": (
            {"text": f"message {n}", "replied_comment_id": 1} if parent is not None else None
        ),
        "ParentCommentUniqueId": f"c-{parent}" if parent is not None else "",
    }


def encode_rows(rows: list[dict[str, Any]]) -> bytes:
    """Rows as an export writes them: a JSON array, one object a line."""
    if not rows:
        return b"[]\n"
    lines = ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
    return f"[\n{lines}\n]\n".encode()


def part_entry(
    directory: Path, resource: str, start: date, end: date, data: bytes
) -> dict[str, Any]:
    relative = f"{resource}/{start.isoformat()}_{end.isoformat()}.json"
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {
        "type": resource,
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "rows": len(json.loads(data)),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "file": relative,
    }


def write_backup(
    directory: Path,
    parts: dict[str, list[list[dict[str, Any]]]],
    first_day: date = date(2024, 1, 1),
    days_per_part: int = 10,
) -> dict[str, Any]:
    """A backup directory whose parts of each type cover consecutive windows."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for resource, chunks in parts.items():
        for i, rows in enumerate(chunks):
            start = first_day + timedelta(days=i * days_per_part)
            end = start + timedelta(days=days_per_part - 1)
            entries.append(part_entry(directory, resource, start, end, encode_rows(rows)))
    manifest = {
        "server": "http://127.0.0.1:1",
        "app_id": "synthetic",
        "client_version": "test",
        "created_at": "2024-02-01T00:00:00Z",
        "backup_id": "synthetic-backup",
        "parts": entries,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def client_env(base: dict[str, str], server: str, app_id: str, secret: str) -> dict[str, str]:
    """An environment for a client process: the connection, and a private config dir."""
    env = {k: v for k, v in base.items() if not k.startswith(("CHATFERRY_", "QISCUS_"))}
    return {
        **env,
        "CHATFERRY_SERVER": server,
        "QISCUS_SDK_APP_ID": app_id,
        "QISCUS_SDK_SECRET": secret,
    }


def run_client(
    env: dict[str, str], *args: str, timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m chatferry ARGS``: a real process, forked from a warm interpreter."""
    return warm.run(args, env, timeout=timeout, input=stdin)


def run_client_json(env: dict[str, str], *args: str, timeout: float = 120) -> Any:
    done = run_client(env, *args, "--json", timeout=timeout)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def assert_one_line_error(
    done: subprocess.CompletedProcess[str], code: int, *fragments: str
) -> str:
    """The command failed with ``code`` and one ``error:`` line naming each fragment."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def backup_rows(directory: Path, resource: str) -> list[dict[str, Any]]:
    """Every row of ``resource`` in a backup directory, in the order of its parts."""
    manifest = json.loads((directory / "manifest.json").read_text())
    parts = sorted(
        (p for p in manifest["parts"] if p["type"] == resource), key=lambda p: p["start_date"]
    )
    rows: list[dict[str, Any]] = []
    for part in parts:
        rows.extend(json.loads((directory / part["file"]).read_bytes()))
    return rows


def comparable(resource: str, row: dict[str, Any]) -> dict[str, Any]:
    """A row without what differs between apps by design (a reply payload's parent id)."""
    if resource != "comments" or not isinstance(row.get("Payload"), dict):
        return row
    payload = {k: v for k, v in row["Payload"].items() if k != "replied_comment_id"}
    return {**row, "Payload": payload}


def subprocess_env() -> dict[str, str]:
    return dict(os.environ)
