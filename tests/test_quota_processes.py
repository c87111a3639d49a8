"""Quotas with real processes (issue 21): two API processes on PostgreSQL racing for an
app's last slot, `chatferry apps set-limits`, and a backup that waits out a quota."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from chatferry.db.engine import transaction
from chatferry.db.models import Export
from chatferry.runtime import Runtime
from client_helpers import client_env, run_client
from support.apps import NewApp
from support.http import EXPORTS, assert_error
from support.servers import StartServer, run_cli, run_cli_json

pytestmark = pytest.mark.slow

LATER = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
SENDERS_PER_SERVER = 12


def race(urls: list[str], headers: dict[str, str]) -> list[int]:
    """Every sender POSTs one export at the same moment; their statuses."""
    start = threading.Barrier(len(urls) * SENDERS_PER_SERVER)
    statuses: list[int] = []

    def send(url: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            http.get("/healthz")  # connected before the start
            start.wait()
            body = {"type": "users", "run_at": LATER}
            statuses.append(http.post(EXPORTS, json=body, headers=headers).status_code)

    threads = [
        threading.Thread(target=send, args=(url,))
        for url in urls
        for _ in range(SENDERS_PER_SERVER)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("quota", ["exports_per_hour", "active_jobs"])
def test_two_api_processes_never_both_take_the_last_slot(
    start_server: StartServer, new_app: NewApp, runtime: Runtime, quota: str
) -> None:
    limit = 5
    env = {f"CHATFERRY_QUOTA_{quota.upper()}": str(limit)}
    servers = [start_server(env, "--no-worker") for _ in range(2)]
    app = new_app()
    statuses = race([s.base_url for s in servers], app.headers)
    assert sorted(statuses) == [200] * limit + [429] * (2 * SENDERS_PER_SERVER - limit)
    with transaction(runtime.sessions) as session:
        assert len(session.query(Export).all()) == limit


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_set_limits_overrides_a_quota_for_one_app_and_clear_restores_it(
    start_server: StartServer, new_app: NewApp, settings_env: dict[str, str]
) -> None:
    server = start_server()
    app, other = new_app(), new_app()
    shown = run_cli_json(
        settings_env, "apps", "set-limits", app.app_id, "--exports-per-hour", "1",
        "--stored-bytes", "0",
    )  # fmt: skip
    assert shown["quotas"]["exports_per_hour"] == 1 and shown["quotas"]["stored_bytes"] == 0
    assert shown["quota_overrides"] == {"exports_per_hour": 1, "stored_bytes": 0}
    listed = {a["app_id"]: a for a in run_cli_json(settings_env, "apps", "list", "--json")}
    assert listed[app.app_id]["quota_overrides"] == {"exports_per_hour": 1, "stored_bytes": 0}
    assert listed[other.app_id]["quotas"]["exports_per_hour"] == 1000
    table = run_cli(settings_env, "apps", "list").stdout
    assert "1* 1000 100 0*" in table and "1000 1000 100 21474836480" in table
    body = {"type": "users"}
    assert server.http.post(EXPORTS, json=body, headers=app.headers).status_code == 200
    refused = server.http.post(EXPORTS, json=body, headers=app.headers)
    assert_error(refused, 429, "exports_per_hour of 1", f"set-limits {app.app_id}")
    assert server.http.post(EXPORTS, json=body, headers=other.headers).status_code == 200
    cleared = run_cli_json(
        settings_env, "apps", "set-limits", app.app_id, "--clear", "exports-per-hour"
    )
    assert cleared["quota_overrides"] == {"stored_bytes": 0}
    assert server.http.post(EXPORTS, json=body, headers=app.headers).status_code == 200
    bad = run_cli(settings_env, "apps", "set-limits", app.app_id, "--clear", "disk")
    assert bad.returncode != 0 and "--clear 'disk' names no quota" in bad.stderr
    negative = run_cli(settings_env, "apps", "set-limits", app.app_id, "--active-jobs", "-1")
    assert negative.returncode != 0
    everything = run_cli_json(settings_env, "apps", "set-limits", app.app_id, "--clear", "all")
    assert everything["quota_overrides"] == {}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_backup_waits_out_the_active_jobs_quota_and_finishes(
    start_server: StartServer, settings_env: dict[str, str], tmp_path: Path
) -> None:
    server = start_server({"CHATFERRY_QUOTA_ACTIVE_JOBS": "1"})
    created = run_cli_json(settings_env, "apps", "create", "--name", "Quota backup")
    run_cli_json(
        settings_env, "demo-data", "--app-id", created["app_id"], "--users", "20",
        "--rooms", "5", "--comments", "200", "--days", "20", "--seed", "3",
    )  # fmt: skip
    env = client_env(dict(os.environ), server.base_url, created["app_id"], created["secret"])
    out = tmp_path / "backup"
    # --until now: demo-data's newest rows may fall on today, which a backup up to
    # yesterday leaves out (the test ran into that after midnight).
    done = run_client(env, "backup", "--out", str(out), "--until", "now", timeout=300)
    assert done.returncode == 0, done.stderr
    assert "waiting 2 s for the app's quota" in done.stderr  # told, then went on
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pending"] == []
    assert {p["type"] for p in manifest["parts"]} == {"users", "rooms", "comments"}
    assert sum(p["rows"] for p in manifest["parts"] if p["type"] == "comments") == 200
