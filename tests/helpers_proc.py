"""Helpers for tests that drive chatferry as real processes (CLI, server, worker, curl)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from conftest import cli_command, wait_for

API = "/api/v2.1/rest"
SPEC_HOST = "https://api.qiscus.com"
RFC3339_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")


@pytest.fixture(autouse=True)
def show_process_logs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """After each test, prints the logs of the processes it started (shown on failure)."""
    yield
    for log in sorted(tmp_path.glob("*.log")):
        print(f"----- {log.name} -----\n{log.read_text(errors='replace')[-20000:]}")


def run_cli(
    settings_env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m chatferry ARGS`` with the test's CHATFERRY_* settings."""
    return subprocess.run(
        cli_command(*args),
        env={**os.environ, **settings_env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_cli_json(settings_env: dict[str, str], *args: str) -> Any:
    """Runs a CLI command that must succeed and print JSON; returns the parsed JSON."""
    done = run_cli(settings_env, *args)
    assert done.returncode == 0, f"{args} exited {done.returncode}: {done.stdout}{done.stderr}"
    return json.loads(done.stdout)


@dataclass(frozen=True)
class CurlResult:
    status: int
    headers: dict[str, str]  # lower-cased names, last value wins
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def spec_curl_args(
    example: str, base_url: str, replacements: dict[str, str] | None = None
) -> list[str]:
    """A curl example as the spec prints it, split like a shell would, host replaced."""
    text = example.strip().replace(SPEC_HOST, base_url)
    for old, new in (replacements or {}).items():
        text = text.replace(old, new)
    args = shlex.split(text.replace("\\\n", " "))
    assert args[0] == "curl", args
    return args


def run_curl(args: list[str], tmp_dir: Path) -> CurlResult:
    """Runs the real ``curl`` with ``args`` (a full command line starting with ``curl``).

    Only output options are added: the request itself is exactly what ``args`` says.
    """
    assert args[0] == "curl"
    tag = uuid.uuid4().hex
    head_path, body_path = tmp_dir / f"curl-{tag}.head", tmp_dir / f"curl-{tag}.body"
    done = subprocess.run(
        [
            *args,
            "--silent",
            "--show-error",
            "--max-time",
            "20",
            "--dump-header",
            str(head_path),
            "--output",
            str(body_path),
            "--write-out",
            "%{http_code}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, f"curl failed ({done.returncode}): {done.stderr}"
    headers: dict[str, str] = {}
    for line in head_path.read_text("latin-1").splitlines()[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return CurlResult(int(done.stdout.strip()), headers, body_path.read_bytes())


def content_disposition_filename(value: str) -> str:
    """The file name of a Content-Disposition header (RFC 6266 / 5987 ``filename*``)."""
    parts = [p.strip() for p in value.split(";")]
    assert parts[0].lower() == "attachment", value
    params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    if "filename*" in params:
        charset, _lang, encoded = params["filename*"].split("'", 2)
        assert charset.lower() == "utf-8", value
        return unquote(encoded, encoding="utf-8")
    return params["filename"].strip('"')


def api_headers(app_id: str, secret: str) -> dict[str, str]:
    return {"QISCUS-SDK-APP-ID": app_id, "QISCUS-SDK-SECRET": secret}


def api_get(base_url: str, path: str, app_id: str, secret: str) -> httpx.Response:
    return httpx.get(f"{base_url}{API}{path}", headers=api_headers(app_id, secret), timeout=10)


def create_export(base_url: str, app_id: str, secret: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{base_url}{API}/exports", json=body, headers=api_headers(app_id, secret), timeout=10
    )
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()["results"]
    return record


def get_export(base_url: str, app_id: str, secret: str, unique_id: str) -> dict[str, Any]:
    response = api_get(base_url, f"/exports/{unique_id}", app_id, secret)
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()["results"]["backup_history"]
    return record


def wait_for_status(
    base_url: str,
    app_id: str,
    secret: str,
    unique_id: str,
    wanted: str = "finished",
    timeout: float = 30,
) -> dict[str, Any]:
    """Polls the export until it has status ``wanted``; fails early on failed/cancelled."""

    def check() -> dict[str, Any] | None:
        record = get_export(base_url, app_id, secret, unique_id)
        if record["status"] != wanted and record["status"] in ("failed", "cancelled"):
            raise AssertionError(f"export ended {record['status']}: {record}")
        return record if record["status"] == wanted else None

    result: dict[str, Any] = wait_for(check, timeout=timeout, interval=0.1)
    return result


def stored_files(settings_env: dict[str, str]) -> list[Path]:
    """Every file under the local file store (including any staging leftovers)."""
    root = Path(settings_env["CHATFERRY_DATA_DIR"]) / "files"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def naive_utc(moment: datetime) -> str:
    """How export files spell a UTC moment: ``2017-01-02T03:04:05Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


MESSAGES = [
    "Halo doc",
    "Maaf mau tanya..",
    "Line one\nLine two\n\nLine four",
    "Emoji 👩‍👩‍👧‍👦 and flags 🇮🇩 — ok?",
    'Quotes "double" and \\backslash\\ and tab\there',
    "Привет, 明日は雨です ☔",
]


def seed_comments(
    rt: Any, app_id: str, moments: list[datetime], tag: str = "seed"
) -> list[dict[str, Any]]:
    """Adds two users, a single room between them and one comment per (aware) moment.

    Every third comment is a reply to the comment before it. Returns the rows an export of
    all of them must contain, in export order (created_at, then insertion order).
    """
    from sqlalchemy import select

    from chatferry.db.engine import transaction
    from chatferry.db.models import App, Comment, Room, RoomParticipant, User

    with transaction(rt.sessions) as session:
        app_pk = session.scalar(select(App.id).where(App.app_id == app_id))
        assert app_pk is not None, f"no app {app_id}"
        first = min(moments)
        users = [
            User(
                app_pk=app_pk,
                email=f"{name}.{tag}@example.com",
                name=name.title(),
                avatar_url="",
                authentication_token=f"token-{name}-{tag}",
                password_hash="",
                created_at=first,
            )
            for name in ("alice", "budi")
        ]
        session.add_all(users)
        session.flush()
        room = Room(
            app_pk=app_pk,
            unique_id=f"room-{tag}",
            name=f"{users[0].email} {users[1].email}",
            type="single",
            options="",
            creator_id=users[0].id,
            avatar_url="",
            created_at=first,
        )
        session.add(room)
        session.flush()
        session.add_all(
            [
                RoomParticipant(room_id=room.id, position=i, user_id=u.id)
                for i, u in enumerate(users)
            ]
        )
        comments: list[Comment] = []
        for index, moment in enumerate(moments):
            message = MESSAGES[index % len(MESSAGES)]
            parent = comments[-1] if index % 3 == 2 else None
            comment = Comment(
                app_pk=app_pk,
                unique_id=f"msg-{tag}-{index}",
                room_id=room.id,
                user_id=users[index % 2].id,
                type="reply" if parent else "text",
                message=message,
                payload=(
                    json.dumps({"text": message, "replied_comment_id": parent.id})
                    if parent
                    else None
                ),
                disable_link_preview=index % 5 == 0,
                parent_id=parent.id if parent else None,
                created_at=moment,
            )
            session.add(comment)
            session.flush()
            comments.append(comment)
        expected = [
            (
                c.created_at,
                c.id,
                {
                    "Message": c.message,
                    "DisableLinkPreview": c.disable_link_preview,
                    "Type": c.type,
                    "UniqueId": c.unique_id,
                    "CreatorEmail": users[i % 2].email,
                    "RoomUniqueId": room.unique_id,
                    "CreatedAt": naive_utc(c.created_at),
                    "Payload": json.loads(c.payload) if c.payload else None,
                    "ParentCommentUniqueId": comments[i - 1].unique_id if c.parent_id else "",
                },
            )
            for i, c in enumerate(comments)
        ]
    return [row for _, _, row in sorted(expected, key=lambda item: (item[0], item[1]))]
