"""``backup --until now``: the day in progress as provisional parts that the next run
replaces, and restores of the growing backup into an app on PostgreSQL that import every
row once (a SQLite source, real ``chatferry serve`` processes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from attachment_helpers import import_rows, moment, rooms, text_comment, users
from client_helpers import backup_rows, run_client, run_client_json
from test_client_processes import Deployment, postgres_url, start_deployment  # noqa: F401

pytestmark = pytest.mark.slow

APP, SECRET = "today-app", "today-secret-123"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("today-source")
    deployment = start_deployment(directory)
    deployment.cli("apps", "create", "--name", "Today", "--app-id", APP, "--secret", SECRET)
    yield deployment
    deployment.server.stop()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Deployment]:  # noqa: F811
    directory = tmp_path_factory.mktemp("today-target")
    deployment = start_deployment(directory, postgres_url)
    yield deployment
    deployment.server.stop()


def _since() -> str:
    return (datetime.now(UTC) - timedelta(days=5)).date().isoformat()


def _backup_now(env: dict[str, str], out: Path) -> dict[str, Any]:
    args = ("backup", "--out", str(out), "--since", _since(), "--until", "now")
    return dict(run_client_json(env, *args, "--no-attachments"))


def _reply(unique_id: str, parent: str, when: str) -> dict[str, Any]:
    return {**text_comment(unique_id, when), "Type": "reply", "ParentCommentUniqueId": parent,
            "Payload": {"text": "re", "replied_comment_id": 1}}  # fmt: skip


def _keys(directory: Path, resource: str) -> list[str]:
    field = "Email" if resource == "users" else "UniqueId"
    return sorted(str(row[field]) for row in backup_rows(directory, resource))


def test_the_day_in_progress_is_backed_up_and_restored_without_duplicates(
    source: Deployment, target: Deployment, tmp_path: Path
) -> None:
    env = source.client(APP, SECRET)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    earlier, today = moment(3), moment(0.0002)
    import_rows(env, uploads, "users", users({}, earlier))
    import_rows(env, uploads, "rooms", rooms(1, earlier))
    import_rows(env, uploads, "comments", [text_comment("old-1", earlier),
                text_comment("now-1", today), text_comment("now-2", today)])  # fmt: skip
    out = tmp_path / "backup"
    first = _backup_now(env, out)["manifest"]
    provisional = [p for p in first["parts"] if p.get("provisional")]
    assert sorted(p["type"] for p in provisional) == ["comments", "rooms", "users"]
    day = datetime.now(UTC).date().isoformat()
    assert all(p["start_date"] == p["end_date"] == day for p in provisional)
    assert next(p for p in provisional if p["type"] == "comments")["rows"] == 2
    assert first["until"] < day
    assert run_client(env, "verify", str(out)).returncode == 0

    restored = source.cli("apps", "create", "--name", "unused")  # keep ids apart
    created = target.cli("apps", "create", "--name", "Restored today")
    target_env = target.client(created["app_id"], created["secret"])
    assert restored["app_id"] != created["app_id"]
    summary = run_client_json(target_env, "restore", str(out))
    assert summary["rows"]["comments"] == 3

    more_users = [{**users({}, today)[0], "Email": "late@files.example",
                   "AuthenticationToken": "tok-late"}]  # fmt: skip
    import_rows(env, uploads, "users", more_users)
    import_rows(env, uploads, "rooms", [{**rooms(1, today)[0], "UniqueId": "room-today"}])
    import_rows(env, uploads, "comments", [text_comment("now-3", today),
                _reply("now-4", "now-1", today)])  # fmt: skip
    second = _backup_now(env, out)["manifest"]
    comments_today = [
        p for p in second["parts"] if p["type"] == "comments" and p["start_date"] == day
    ]
    assert len(comments_today) == 1 and comments_today[0]["rows"] == 4
    assert comments_today[0]["provisional"] is True

    again = run_client_json(target_env, "restore", str(out))
    assert again["imported_now"] >= 1
    copy = tmp_path / "copy"
    _backup_now(target_env, copy)
    for resource in ("users", "rooms", "comments"):
        keys = _keys(copy, resource)
        assert keys == _keys(out, resource), resource
        assert len(keys) == len(set(keys))
    assert _keys(copy, "comments") == ["now-1", "now-2", "now-3", "now-4", "old-1"]
    imports = run_client_json(target_env, "import", "list", "--all")
    assert all(r["status"] == "finished" for r in imports), [r["errors"] for r in imports]
    third = run_client_json(target_env, "restore", str(out))
    assert third["imported_now"] == 0
    assert json.loads((out / "manifest.json").read_text())["pending"] == []


def _noon(days_ago: int) -> str:
    day = datetime.now(UTC).date() - timedelta(days=days_ago)
    return f"{day.isoformat()}T12:00:00Z"


def _day(days_ago: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=days_ago)).isoformat()


def _scope_source(source: Deployment, directory: Path) -> dict[str, str]:
    created = source.cli("apps", "create", "--name", "Scoped")
    env = source.client(created["app_id"], created["secret"])
    directory.mkdir()
    import_rows(env, directory, "users", users({}, _noon(30)))
    import_rows(env, directory, "rooms", rooms(3, _noon(30)))
    comments = [
        text_comment(f"r{room}-d{days:02d}", _noon(days), room)
        for days in range(19, 0, -1)
        for room in (1, 2, 3)
    ]
    comments.append({**_reply("reply-1", "r1-d15", _noon(5)), "RoomUniqueId": "room-1"})
    import_rows(env, directory, "comments", comments)
    return env


def test_a_scoped_restore_brings_back_two_rooms_and_one_week(
    source: Deployment, target: Deployment, tmp_path: Path
) -> None:
    env = _scope_source(source, tmp_path / "uploads")
    out = tmp_path / "backup"
    run_client_json(env, "backup", "--out", str(out), "--since", _day(35), "--no-attachments")
    created = target.cli("apps", "create", "--name", "Scoped target")
    target_env = target.client(created["app_id"], created["secret"])
    scope = ("--rooms", "room-1,room-2", "--since", _day(10), "--until", _day(4))
    planned = run_client_json(target_env, "restore", str(out), *scope, "--dry-run")
    assert planned["diff"]["counts"] == {
        "users": {"new": 3, "present": 0, "conflict": 0},
        "rooms": {"new": 2, "present": 0, "conflict": 0},
        "comments": {"new": 16, "present": 0, "conflict": 0},
    }
    assert run_client_json(target_env, "import", "list") == []

    restored = run_client_json(target_env, "restore", str(out), *scope)
    assert restored["rows"] == {"users": 3, "rooms": 2, "comments": 16}
    copy = tmp_path / "copy"
    run_client_json(target_env, "backup", "--out", str(copy), "--since", _day(40),
                    "--no-attachments")  # fmt: skip
    week = {f"r{room}-d{days:02d}" for room in (1, 2) for days in range(4, 11)}
    assert set(_keys(copy, "comments")) == week | {"reply-1", "r1-d15"}
    assert _keys(copy, "rooms") == ["room-1", "room-2"]
    again = run_client_json(target_env, "restore", str(out), *scope)
    assert again["rows"]["comments"] == 0 and again["diff"]["counts"]["comments"]["present"] == 16

    changed = {**text_comment("r1-d01", _noon(1), 1), "Message": "not what was said"}
    import_rows(target_env, tmp_path / "uploads", "comments", [changed])
    whole = run_client_json(target_env, "restore", str(out), "--dry-run")
    assert whole["diff"]["counts"]["comments"] == {"new": 41, "present": 16, "conflict": 1}
    assert whole["diff"]["counts"]["rooms"] == {"new": 1, "present": 2, "conflict": 0}
    assert whole["diff"]["conflicts"] == [
        {"type": "comments", "key": "r1-d01", "fields": ["Message"]}
    ]
