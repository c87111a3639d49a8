"""Quotas per app (issue 21): exports and imports an hour, exports and imports queued or
running, bytes of export files stored; through the real app on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from chatferry.db.engine import transaction
from chatferry.db.models import Export, Import, Job
from chatferry.runtime import Runtime
from support.apps import Credentials, NewApp
from support.exports import create_export, export_and_wait, stored_files
from support.http import EXPORTS, assert_error
from support.imports import upload

API = "/api/v2.1/rest"
LATER = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()


def quota_env(**quotas: int) -> dict[str, str]:
    return {f"CHATFERRY_QUOTA_{name.upper()}": str(value) for name, value in quotas.items()}


def post_export(client: TestClient, app: Credentials, **body: Any) -> httpx.Response:
    return client.post(EXPORTS, json={"type": "users", **body}, headers=app.headers)


def quota_report(client: TestClient, app: Credentials) -> dict[str, dict[str, Any]]:
    response = client.get(f"{API}/quotas", headers=app.headers)
    assert response.status_code == 200, response.text
    return {q["name"]: q for q in response.json()["results"]["quotas"]}


def rows(rt: Runtime, model: type[Export] | type[Import] | type[Job]) -> int:
    with transaction(rt.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def assert_quota_refusal(response: httpx.Response, status: int, quota: str, limit: int) -> None:
    setting = f"CHATFERRY_QUOTA_{quota.upper()}"
    assert_error(response, status, quota, f"of {limit}", setting, "chatferry apps set-limits")
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert (error["quota"], error["limit"], error["setting"]) == (quota, limit, setting)


@pytest.mark.parametrize("extra_env", [quota_env(exports_per_hour=3)])
def test_exports_an_hour_over_the_quota_get_429_and_a_neighbour_never_notices(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    busy, neighbour = new_app("Busy"), new_app("Neighbour")
    accepted = [create_export(client, busy.headers, type="users") for _ in range(3)]
    refused = post_export(client, busy)
    assert refused.status_code == 429
    assert_quota_refusal(refused, 429, "exports_per_hour", 3)
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
    assert rows(runtime, Export) == 3  # nothing of the refused one is kept
    # Deleting an export does not give its slot back: the hour counts creations.
    client.delete(f"{EXPORTS}/{accepted[0]['unique_id']}", headers=busy.headers)
    assert post_export(client, busy).status_code == 429
    # The neighbour's quota is its own.
    for _ in range(3):
        create_export(client, neighbour.headers, type="users")
    assert quota_report(client, neighbour)["exports_per_hour"]["used"] == 3
    assert quota_report(client, busy)["exports_per_hour"] | {"description": ""} == {
        "name": "exports_per_hour",
        "description": "",
        "limit": 3,
        "used": 3,
        "unit": "exports",
        "setting": "CHATFERRY_QUOTA_EXPORTS_PER_HOUR",
        "overridden": False,
    }


@pytest.mark.parametrize("extra_env", [quota_env(active_jobs=2)])
def test_jobs_queued_or_running_over_the_quota_get_429_until_one_ends(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    app = new_app()
    waiting = [create_export(client, app.headers, type="users", run_at=LATER) for _ in range(2)]
    refused = post_export(client, app)
    assert_quota_refusal(refused, 429, "active_jobs", 2)
    assert refused.headers["Retry-After"] == "2"
    # Imports count as jobs too; the refused upload leaves no file behind.
    files_before = stored_files(runtime)
    refused_import = upload(client, app, "users", [])
    assert_quota_refusal(refused_import, 429, "active_jobs", 2)
    assert stored_files(runtime) == files_before
    assert rows(runtime, Import) == 0
    # A job that ends frees its slot.
    client.delete(f"{EXPORTS}/{waiting[0]['unique_id']}", headers=app.headers)
    assert post_export(client, app).status_code == 200


@pytest.mark.parametrize("extra_env", [quota_env(imports_per_hour=1)])
def test_imports_an_hour_over_the_quota_get_429_and_leave_no_file(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    app = new_app()
    assert upload(client, app, "users", []).status_code == 200
    files_before = stored_files(runtime)
    refused = upload(client, app, "users", [])
    assert_quota_refusal(refused, 429, "imports_per_hour", 1)
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
    # No file of the refused upload (the first's may be gone: an import removes it).
    assert set(stored_files(runtime)) <= set(files_before)
    assert rows(runtime, Import) == 1
    assert post_export(client, app).status_code == 200  # exports have their own quota


@pytest.mark.parametrize("extra_env", [quota_env(stored_bytes=1)])
def test_stored_bytes_over_the_quota_refuse_new_exports_with_409_until_deleted(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    app = new_app()
    finished = export_and_wait(client, app.headers, type="users")
    assert finished["status"] == "finished" and finished["size"] >= 2
    refused = post_export(client, app)
    message = assert_error(refused, 409, "delete exports")
    assert_quota_refusal(refused, 409, "stored_bytes", 1)
    assert "Retry-After" not in refused.headers  # waiting does not help
    assert f"take {finished['size']} bytes" in message
    assert rows(runtime, Export) == 1
    assert quota_report(client, app)["stored_bytes"]["used"] == finished["size"]
    client.delete(f"{EXPORTS}/{finished['unique_id']}", headers=app.headers)
    assert post_export(client, app).status_code == 200


def test_the_defaults_are_generous_and_usage_is_in_metrics(
    client: TestClient, new_app: NewApp
) -> None:
    app = new_app()
    report = quota_report(client, app)
    assert {name: q["limit"] for name, q in report.items()} == {
        "exports_per_hour": 1000,
        "imports_per_hour": 1000,
        "active_jobs": 100,
        "stored_bytes": 20 * 1024**3,
    }
    for _ in range(2):
        create_export(client, app.headers, type="users", run_at=LATER)
    text = client.get("/metrics").text
    label = f'app="{app.app_id}",quota='
    assert f'chatferry_app_quota_used{{{label}"exports_per_hour"}} 2.0' in text
    assert f'chatferry_app_quota_used{{{label}"active_jobs"}} 2.0' in text
    assert f'chatferry_app_quota_limit{{{label}"active_jobs"}} 100.0' in text


@pytest.mark.parametrize("extra_env", [quota_env(exports_per_hour=2)])
def test_running_a_schedule_now_counts_its_exports_and_is_refused_over_the_quota(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    app = new_app()
    body = {"type": "users", "cron": "0 2 * * *", "window_days": 3, "keep_last": 7}
    created = client.post(f"{API}/export_schedules", json=body, headers=app.headers)
    assert created.status_code == 200, created.text
    run = f"{API}/export_schedules/{created.json()['results']['export_schedule']['unique_id']}/run"
    create_export(client, app.headers, type="users")
    create_export(client, app.headers, type="users")
    refused = client.post(run, headers=app.headers)
    assert_quota_refusal(refused, 429, "exports_per_hour", 2)
    assert rows(runtime, Export) == 2  # none of the run's exports is kept
