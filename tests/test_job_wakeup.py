"""PostgreSQL LISTEN/NOTIFY: an idle worker starts a new job at once, in any process.

Polling is set to 30 s here (and the heartbeat, which also wakes workers, to 20 s),
so a job started within a couple of seconds can only have been woken by NOTIFY.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from chatferry.api.app import create_api
from chatferry.composition import job_handlers
from chatferry.db.engine import transaction
from chatferry.jobs import notify
from chatferry.jobs.queue import JobSpec, enqueue
from chatferry.jobs.worker import Worker
from chatferry.runtime import Runtime, build_runtime
from chatferry.settings import Settings
from helpers_api import add_users, create_export, get_record, quick_app

from conftest import cli_command, wait_for

SLOW_POLL = {
    "CHATFERRY_JOB_POLL_SECONDS": "30",
    "CHATFERRY_JOB_LISTEN_POLL_SECONDS": "30",
    "CHATFERRY_JOB_LEASE_SECONDS": "60",
}
PICKUP_SECONDS = 2.5


@pytest.fixture
def settings_env(settings_env: dict[str, str], database_url: str) -> dict[str, str]:
    if database_url.startswith("sqlite"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite workers poll")
    return {**settings_env, **SLOW_POLL}


@pytest.fixture
def api(runtime: Runtime) -> Iterator[TestClient]:
    """The API alone (no worker in this runtime): jobs must be run by someone else."""
    with TestClient(create_api(runtime, run_worker=False)) as test_client:
        yield test_client


@pytest.fixture
def worker(settings: Settings, runtime: Runtime) -> Iterator[Worker]:
    """A worker on its own runtime (own engine, own wakeup event), as in another process."""
    rt = build_runtime(settings, migrate=False)
    running = Worker(rt, 1, job_handlers(rt.settings))
    running.start()
    assert running.listener is not None
    wait_for(running.listener.connected.is_set, timeout=10)
    yield running
    running.stop()
    rt.close()


def time_to_finish(api: TestClient, headers: dict[str, str]) -> float:
    started = time.monotonic()
    record = create_export(api, headers, type="users")

    def finished() -> bool:
        status = get_record(api, headers, record["unique_id"])["status"]
        assert status in ("started", "finished"), status
        return bool(status == "finished")

    wait_for(finished, timeout=40, interval=0.02)
    return time.monotonic() - started


def idle(seconds: float = 1.0) -> None:
    """Lets the worker settle into its (30 s) idle wait."""
    time.sleep(seconds)


def test_an_idle_worker_in_another_runtime_is_woken_by_notify(
    api: TestClient, runtime: Runtime, worker: Worker
) -> None:
    creds = quick_app(runtime)
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=1)])
    for _ in range(3):
        idle()
        assert time_to_finish(api, creds.headers) < PICKUP_SECONDS


def test_the_listener_reconnects_after_losing_its_connection(
    api: TestClient, runtime: Runtime, worker: Worker
) -> None:
    creds = quick_app(runtime)
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=1)])
    listener = worker.listener
    assert listener is not None and listener.backend_pid is not None
    old_pid = listener.backend_pid
    with runtime.engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({old_pid})")
    wait_for(lambda: listener.connected.is_set() and listener.backend_pid != old_pid, timeout=15)
    idle()
    assert time_to_finish(api, creds.headers) < PICKUP_SECONDS


def test_notify_is_sent_on_commit_only(runtime: Runtime, database_url: str) -> None:
    conninfo = notify.conninfo_of(runtime.engine)
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {notify.CHANNEL}")

        # The channel is per database: other schemas' workers (other tests) use it too.
        def received() -> list[str]:
            found = listener.notifies(timeout=0.5)
            return [n.payload for n in found if n.channel == notify.CHANNEL]

        with runtime.sessions() as session, session.begin():
            rolled_back = enqueue(session, JobSpec("nothing", 1, 1, "r1", "a", 1, 1)).id
            session.rollback()
        with transaction(runtime.sessions) as session:
            committed = enqueue(session, JobSpec("nothing", 2, 1, "r2", "a", 1, 1)).id
            assert f"nothing:{committed}" not in received()  # not before the commit
        payloads = received()
        assert f"nothing:{committed}" in payloads
        assert f"nothing:{rolled_back}" not in payloads


def test_a_worker_process_is_woken_by_an_export_created_elsewhere(
    api: TestClient, runtime: Runtime, settings_env: dict[str, str], tmp_path: Path
) -> None:
    creds = quick_app(runtime)
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=1)])
    log_path = tmp_path / "worker.log"
    process = subprocess.Popen(
        cli_command("worker", "--concurrency", "2"),
        env={**os.environ, **settings_env},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        # The first export may wait for the process to start; later ones find it idle.
        create_export(api, creds.headers, type="users")
        first = time_to_finish(api, creds.headers)
        assert first < 30, log_path.read_text()
        for _ in range(2):
            idle()
            elapsed = time_to_finish(api, creds.headers)
            assert elapsed < PICKUP_SECONDS, (elapsed, log_path.read_text())
    finally:
        process.terminate()
        process.wait(15)
