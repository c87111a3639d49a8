"""Schedulers in real processes: `serve --no-worker` fires nothing, and three `chatferry
worker` processes racing over the same due schedules fire each run exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, update

from chatferry.db.engine import transaction
from chatferry.db.models import Export, ExportSchedule, table_of
from chatferry.runtime import Runtime
from helpers_proc import api_headers, show_process_logs  # noqa: F401

from conftest import cli_command, wait_for

SCHEDULES = "/api/v2.1/rest/export_schedules"


def _exports_of(runtime: Runtime, schedule_uid: str) -> list[Export]:
    with transaction(runtime.sessions) as session:
        query = (
            select(Export)
            .join(ExportSchedule, Export.schedule_id == ExportSchedule.id)
            .where(ExportSchedule.unique_id == schedule_uid)
        )
        return list(session.scalars(query))


def test_three_worker_processes_fire_each_due_run_once(
    settings_env: dict[str, str], runtime: Runtime, make_app: Any, start_server: Any, tmp_path: Path
) -> None:
    creds = make_app()
    server = start_server(None, "--no-worker")
    headers = api_headers(creds.app_id, creds.secret)
    uids = []
    for _ in range(4):
        response = httpx.post(
            f"{server.base_url}{SCHEDULES}",
            json={"type": "users", "cron": "@daily", "window_days": 1, "keep_last": 2},
            headers=headers,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        uids.append(response.json()["results"]["export_schedule"]["unique_id"])
    schedules = table_of(ExportSchedule)
    with runtime.engine.begin() as conn:  # all due now
        conn.execute(
            update(schedules)
            .where(schedules.c.unique_id.in_(uids))
            .values(next_run_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    time.sleep(1.0)
    assert [_exports_of(runtime, uid) for uid in uids] == [[]] * 4  # no scheduler in serve

    workers = []
    for index in range(3):
        log = (tmp_path / f"worker-{index}.log").open("wb")
        workers.append(
            subprocess.Popen(
                cli_command("worker"),
                env={**os.environ, **settings_env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:

        def all_finished() -> bool:
            runs = [_exports_of(runtime, uid) for uid in uids]
            return all(len(r) == 1 and r[0].status == "finished" for r in runs)

        wait_for(all_finished, timeout=60)
        time.sleep(1.0)  # several more scheduler passes in every process
        assert [len(_exports_of(runtime, uid)) for uid in uids] == [1, 1, 1, 1]
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            assert worker.wait(45) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
