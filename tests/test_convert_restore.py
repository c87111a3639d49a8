"""Converted exports restored into empty apps on a real ``chatferry serve``, exported back
with ``chatferry backup`` and compared with the conversion: every user, room and message
the report counts, threads as replies, files as attachments. Then the export grows, the
conversion runs again into the same directory, and a second restore imports only the new
rows (a row imported twice would fail the import: its UniqueId exists)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from client_helpers import backup_rows, client_env, run_client, run_client_json
from convert_exports import DAY, T0, mattermost_lines, mm_post, write_mattermost, write_slack
from support import warm
from support.servers import ServerProcess, _answers, free_port, start_process
from support.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    directory = tmp_path_factory.mktemp("convert-server")
    settings = {
        "CHATFERRY_DATA_DIR": str(directory / "data"),
        "CHATFERRY_DATABASE_URL": f"sqlite:///{directory / 'chatferry.db'}",
        "CHATFERRY_JOB_POLL_SECONDS": "0.1",
        "CHATFERRY_JOB_LEASE_SECONDS": "3",
    }
    port = free_port()
    args = ("serve", "--host", "127.0.0.1", "--port", str(port))
    process = start_process(args, {**os.environ, **settings}, directory / "serve.log")
    running = ServerProcess(process, f"http://127.0.0.1:{port}", directory / "serve.log")
    wait_for(lambda: _answers(running), timeout=30)
    yield running, settings
    running.stop()


def _new_app(server: tuple[ServerProcess, dict[str, str]], name: str) -> dict[str, str]:
    running, settings = server
    done = warm.run(("apps", "create", "--name", name), {**os.environ, **settings}, timeout=120)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    return client_env(dict(os.environ), running.base_url, created["app_id"], created["secret"])


def _convert(kind: str, export: Path, out: Path) -> dict[str, Any]:
    done = run_client(dict(os.environ), "convert", kind, str(export), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _restore(env: dict[str, str], out: Path) -> dict[str, Any]:
    summary: dict[str, Any] = run_client_json(env, "restore", str(out), timeout=300)
    return summary


def _export_back(env: dict[str, str], back: Path) -> Path:
    args = ("backup", "--out", str(back), "--since", "2023-12-01", "--until", "2024-06-30",
            "--no-attachments")  # fmt: skip
    done = run_client(env, *args, timeout=300)
    assert done.returncode == 0, done.stderr
    return back


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _comparable(resource: str, row: dict[str, Any]) -> tuple[Any, ...]:
    if resource == "users":
        return row["Email"], row["Name"], row["AvatarUrl"], row["AuthenticationToken"]
    if resource == "rooms":
        people = tuple(sorted(row["ParticipantEmails"]))
        return row["UniqueId"], row["Name"], row["Type"], row["CreatorEmail"], people
    payload = row["Payload"]
    if isinstance(payload, dict):
        payload = {k: v for k, v in payload.items() if k != "replied_comment_id"}
    return (row["UniqueId"], row["Type"], row["Message"], row["CreatorEmail"],
            row["RoomUniqueId"], row["ParentCommentUniqueId"] or "", json.dumps(payload),
            _moment(row["CreatedAt"]))  # fmt: skip


def _assert_same(converted: Path, back: Path, report: dict[str, Any]) -> None:
    for resource in ("users", "rooms", "comments"):
        mine = sorted(_comparable(resource, r) for r in backup_rows(converted, resource))
        theirs = sorted(_comparable(resource, r) for r in backup_rows(back, resource))
        assert len(mine) == report["written"][resource], resource
        assert mine == theirs, resource


def test_a_mattermost_conversion_restores_and_grows(
    server: tuple[ServerProcess, dict[str, str]], tmp_path: Path
) -> None:
    lines = mattermost_lines()
    export, out = write_mattermost(tmp_path / "mm", lines), tmp_path / "converted"
    report = _convert("mattermost", export, out)
    env = _new_app(server, "From Mattermost")
    summary = _restore(env, out)
    assert summary["rows"] == report["written"]
    _assert_same(out, _export_back(env, tmp_path / "back"), report)
    replies = [r for r in backup_rows(tmp_path / "back", "comments") if r["Type"] == "reply"]
    assert len(replies) == 4 and all(r["ParentCommentUniqueId"] for r in replies)
    files = [
        r for r in backup_rows(tmp_path / "back", "comments") if r["Type"] == "file_attachment"
    ]
    assert {f["Payload"]["url"] for f in files} >= set(
        json.loads((out / "manifest.json").read_text())["attachments"]
    )

    lines.insert(-6, mm_post("eng", "general", "carol", "late in an old window", T0 + 3 * DAY))
    lines.insert(-6, mm_post("ops", "general", "bob", "a new window", T0 + 90 * DAY))
    write_mattermost(export, lines)
    grown = _convert("mattermost", export, out)
    assert grown["new_rows"] == {"users": 0, "rooms": 0, "comments": 2}
    again = _restore(env, out)
    assert again["imported_now"] == 1 and again["rows"]["comments"] == grown["written"]["comments"]
    _assert_same(out, _export_back(env, tmp_path / "back2"), grown)


def test_a_slack_conversion_restores_into_an_empty_app(
    server: tuple[ServerProcess, dict[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "converted"
    report = _convert("slack", write_slack(tmp_path / "slack"), out)
    env = _new_app(server, "From Slack")
    assert _restore(env, out)["rows"] == report["written"]
    back = _export_back(env, tmp_path / "back")
    _assert_same(out, back, report)
    rooms = {r["UniqueId"]: r for r in backup_rows(back, "rooms")}
    assert rooms["slack:D1"]["Type"] == "single"
    assert rooms["slack:D1"]["Name"] == "ada@example.com bo@example.com"
