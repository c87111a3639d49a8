"""Retention: export files are deleted N days after the export finished; records stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from chatferry.clock import rfc3339_in_zone
from chatferry.composition import periodic_tasks
from chatferry.db.engine import transaction
from chatferry.db.models import Export
from chatferry.exports.retention import sweep_expired_exports
from chatferry.jobs.periodic import PeriodicRunner
from chatferry.runtime import Runtime
from support.apps import NewApp
from support.exports import export_and_wait, get_record, stored_files
from support.http import EXPORTS
from support.rows import add_users
from support.waiting import wait_for


@pytest.fixture
def retention_days() -> str:
    return "7"


@pytest.fixture
def settings_env(settings_env: dict[str, str], retention_days: str) -> dict[str, str]:
    return {**settings_env, "CHATFERRY_EXPORT_RETENTION_DAYS": retention_days}


def finished_at(rt: Runtime, unique_id: str) -> datetime:
    with transaction(rt.sessions) as session:
        moment = session.scalar(select(Export.finished_at).where(Export.unique_id == unique_id))
    assert moment is not None
    return moment


def two_exports(
    client: TestClient, runtime: Runtime, new_app: NewApp
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    creds = new_app("retention", "Asia/Jakarta")
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=2)])
    old = export_and_wait(client, creds.headers, type="users")
    new = export_and_wait(client, creds.headers, type="users")
    return creds, old, new


def test_files_older_than_the_retention_are_deleted_and_records_kept(
    client: TestClient, runtime: Runtime, new_app: NewApp
) -> None:
    creds, old, new = two_exports(client, runtime, new_app)
    # The old export finished 10 days ago; the new one just now.
    with transaction(runtime.sessions) as session:
        session.execute(
            update(Export)
            .where(Export.unique_id == old["unique_id"])
            .values(finished_at=finished_at(runtime, old["unique_id"]) - timedelta(days=10))
        )
    assert len(stored_files(runtime)) == 2
    now = datetime.now(UTC)

    assert sweep_expired_exports(runtime, now=now) == 1
    assert len(stored_files(runtime)) == 1
    expired = get_record(client, creds.headers, old["unique_id"])
    assert expired["status"] == "finished"
    assert expired["download_url"] == ""
    assert expired["expired_at"] == rfc3339_in_zone(now, "Asia/Jakarta")
    assert expired["size"] == old["size"] and expired["sha256"] == old["sha256"]
    kept = get_record(client, creds.headers, new["unique_id"])
    assert kept["download_url"] and kept["expired_at"] == ""
    assert client.get(kept["download_url"]).status_code == 200
    # The old link stops working: the file is gone.
    assert client.get(old["download_url"]).status_code == 404

    # Nothing more to do until the new export is 7 days old, to the second.
    assert sweep_expired_exports(runtime, now=now) == 0
    limit = finished_at(runtime, new["unique_id"]) + timedelta(days=7)
    assert sweep_expired_exports(runtime, now=limit) == 0
    assert sweep_expired_exports(runtime, now=limit + timedelta(seconds=1)) == 1
    assert stored_files(runtime) == []
    assert get_record(client, creds.headers, new["unique_id"])["expired_at"]

    # An expired export can still be deleted; its record goes, nothing else happens.
    response = client.delete(f"{EXPORTS}/{old['unique_id']}", headers=creds.headers)
    assert response.status_code == 200, response.text
    assert response.json()["results"]["backup_history"]["expired_at"]


@pytest.mark.parametrize("retention_days", ["0"])
def test_zero_keeps_files_forever(client: TestClient, runtime: Runtime, new_app: NewApp) -> None:
    _, old, _ = two_exports(client, runtime, new_app)
    far = finished_at(runtime, old["unique_id"]) + timedelta(days=3650)
    assert sweep_expired_exports(runtime, now=far) == 0
    assert len(stored_files(runtime)) == 2


def test_unfinished_exports_are_left_alone(
    client: TestClient, runtime: Runtime, new_app: NewApp
) -> None:
    creds, old, _ = two_exports(client, runtime, new_app)
    with transaction(runtime.sessions) as session:
        session.execute(
            update(Export).where(Export.unique_id == old["unique_id"]).values(status="failed")
        )
    far = datetime.now(UTC) + timedelta(days=30)
    assert sweep_expired_exports(runtime, now=far) == 1  # only the finished one
    assert get_record(client, creds.headers, old["unique_id"])["expired_at"] == ""


@pytest.mark.parametrize("retention_days", ["1"])
def test_the_retention_task_sweeps(client: TestClient, runtime: Runtime, new_app: NewApp) -> None:
    creds, old, new = two_exports(client, runtime, new_app)
    with transaction(runtime.sessions) as session:
        session.execute(
            update(Export)
            .where(Export.unique_id == old["unique_id"])
            .values(finished_at=datetime.now(UTC) - timedelta(days=2))
        )
    # Every worker process runs retention as a periodic task: at once, then once a minute.
    tasks = PeriodicRunner([t for t in periodic_tasks(runtime) if t.name == "retention"])
    tasks.start()
    try:
        wait_for(lambda: get_record(client, creds.headers, old["unique_id"])["expired_at"], 10)
    finally:
        tasks.stop()
    assert len(stored_files(runtime)) == 1
    assert get_record(client, creds.headers, new["unique_id"])["download_url"]
