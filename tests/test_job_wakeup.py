"""PostgreSQL LISTEN/NOTIFY: an idle worker starts a new job at once, in any process.

Polling is set to 30 s here (and the heartbeat, which also wakes workers, to 20 s),
so a job started within a couple of seconds can only have been woken by NOTIFY.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

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
from support.apps import NewApp
from support.db import waking_listeners
from support.exports import create_export, wait_finished
from support.rows import add_users
from support.servers import StartWorker
from support.waiting import wait_for

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
    with waking_listeners(rt):
        running.stop()
    rt.close()


def time_to_finish(api: TestClient, headers: dict[str, str]) -> float:
    started = time.monotonic()
    record = create_export(api, headers, type="users")
    wait_finished(api, headers, record["unique_id"], timeout=40)
    return time.monotonic() - started


def idle(seconds: float = 0.5) -> None:
    """Lets the worker settle into its (30 s) idle wait.

    Kept as a sleep: an idle wait has no visible start, and the worker needs a few
    milliseconds to get there after its last job. Were it not idle yet, the pickup
    would only look faster: a busy machine can weaken the test, never fail it.
    """
    time.sleep(seconds)


def test_an_idle_worker_in_another_runtime_is_woken_by_notify(
    api: TestClient, runtime: Runtime, worker: Worker, new_app: NewApp
) -> None:
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=1)])
    for _ in range(3):
        idle()
        assert time_to_finish(api, creds.headers) < PICKUP_SECONDS


def test_the_listener_reconnects_after_losing_its_connection(
    api: TestClient, runtime: Runtime, worker: Worker, new_app: NewApp
) -> None:
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=1)])
    listener = worker.listener
    assert listener is not None and listener.backend_pid is not None
    old_pid = listener.backend_pid
    with runtime.engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({old_pid})")
    wait_for(lambda: listener.connected.is_set() and listener.backend_pid != old_pid, timeout=15)
    idle()
    assert time_to_finish(api, creds.headers) < PICKUP_SECONDS


def test_notify_is_sent_on_commit_only(runtime: Runtime) -> None:
    # The channel is per database: other schemas' workers (other tests) use it too.
    kind = f"nothing-{uuid.uuid4().hex[:8]}"
    conninfo = notify.conninfo_of(runtime.engine)
    with (
        psycopg.connect(conninfo, autocommit=True) as listener,
        psycopg.connect(conninfo, autocommit=True) as other,
    ):
        listener.execute(f"LISTEN {notify.CHANNEL}")

        def received() -> list[str]:
            """The payloads that arrive before a marker NOTIFY sent now by another
            session: PostgreSQL delivers in commit order, so everything committed
            before the marker has arrived by then."""
            marker = f"marker-{uuid.uuid4().hex}"
            other.execute("SELECT pg_notify(%s, %s)", (notify.CHANNEL, marker))
            payloads = []
            for note in listener.notifies(timeout=10):
                if note.payload == marker:
                    return payloads
                payloads.append(note.payload)
            raise AssertionError("the marker notification never arrived")

        with runtime.sessions() as session, session.begin():
            rolled_back = enqueue(session, JobSpec(kind, 1, 1, "r1", "a", 1, 1)).id
            session.rollback()
        with transaction(runtime.sessions) as session:
            committed = enqueue(session, JobSpec(kind, 2, 1, "r2", "a", 1, 1)).id
            assert f"{kind}:{committed}" not in received()  # not before the commit
        payloads = received()
        assert f"{kind}:{committed}" in payloads
        assert f"{kind}:{rolled_back}" not in payloads


@pytest.mark.slow
def test_a_worker_process_is_woken_by_an_export_created_elsewhere(
    api: TestClient, runtime: Runtime, new_app: NewApp, start_worker: StartWorker
) -> None:
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=1)])
    process = start_worker(None, "--concurrency", "2")
    # The first export may wait for the process to start; later ones find it idle.
    create_export(api, creds.headers, type="users")
    assert time_to_finish(api, creds.headers) < 30
    for _ in range(2):
        idle()
        elapsed = time_to_finish(api, creds.headers)
        assert elapsed < PICKUP_SECONDS, elapsed
    process.terminate()
    assert process.wait(15) == 0
