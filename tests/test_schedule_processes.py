"""Schedulers in real processes: `serve --no-worker` fires nothing, and three `chatferry
worker` processes racing over the same due schedules fire each run exactly once."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from chatferry.db.engine import transaction
from chatferry.db.models import Export, ExportSchedule, table_of
from chatferry.runtime import Runtime
from support.apps import Credentials, NewApp
from support.http import SCHEDULES
from support.servers import StartServer, StartWorker
from support.waiting import wait_for


def _exports_of(runtime: Runtime, schedule_uid: str) -> list[Export]:
    with transaction(runtime.sessions) as session:
        query = (
            select(Export)
            .join(ExportSchedule, Export.schedule_id == ExportSchedule.id)
            .where(ExportSchedule.unique_id == schedule_uid)
        )
        return list(session.scalars(query))


@pytest.mark.slow
def test_three_worker_processes_fire_each_due_run_once(
    runtime: Runtime, new_app: NewApp, start_server: StartServer, start_worker: StartWorker
) -> None:
    creds = new_app()
    server = start_server(None, "--no-worker")
    uids = [create_schedule(server.http, creds)["unique_id"] for _ in range(4)]
    make_due(runtime, uids)
    # Kept as a sleep: an absence in another process (serve --no-worker runs no scheduler)
    # has no event to wait for; its scheduler would have made ten passes by now.
    time.sleep(1.0)
    assert [_exports_of(runtime, uid) for uid in uids] == [[]] * 4

    workers = [start_worker(name=f"worker-{index}", ready=False) for index in range(3)]
    for worker in workers:
        worker.wait_started()

    def all_finished() -> bool:
        runs = [_exports_of(runtime, uid) for uid in uids]
        return all(len(r) == 1 and r[0].status == "finished" for r in runs)

    wait_for(all_finished, timeout=60)
    # A witness made due now fires in a later pass, which sees the four fired already.
    witness = create_schedule(server.http, creds)["unique_id"]
    make_due(runtime, [witness])
    wait_for(lambda: _exports_of(runtime, witness), timeout=30)
    # No pass can run once the workers have stopped: then count.
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait(45) == 0
    assert [len(_exports_of(runtime, uid)) for uid in uids] == [1, 1, 1, 1]


def create_schedule(http: httpx.Client, creds: Credentials) -> dict[str, Any]:
    body = {"type": "users", "cron": "@daily", "window_days": 1, "keep_last": 2}
    response = http.post(SCHEDULES, json=body, headers=creds.headers)
    assert response.status_code == 200, response.text
    schedule: dict[str, Any] = response.json()["results"]["export_schedule"]
    return schedule


def make_due(runtime: Runtime, uids: list[str]) -> None:
    schedules = table_of(ExportSchedule)
    with runtime.engine.begin() as conn:
        conn.execute(
            update(schedules)
            .where(schedules.c.unique_id.in_(uids))
            .values(next_run_at=datetime.now(UTC) - timedelta(minutes=1))
        )
