"""Scale-out and crash recovery with real processes: serve --no-worker, worker, SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select

from chatferry.db.engine import transaction
from chatferry.db.models import Export, Job
from chatferry.exports.service import storage_key_for
from chatferry.runtime import Runtime
from chatferry.settings import Settings
from support.apps import NewApp
from support.exports import create_export, get_record, stored_files, wait_finished
from support.http import EXPORTS
from support.rows import seed_comments
from support.servers import StartServer, StartWorker
from support.waiting import wait_for

pytestmark = pytest.mark.slow  # every test starts chatferry processes

# Slow exports down so a job can be caught mid-run: 20 rows a batch, 0.3 s after each.
SLOW = {"CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.3", "CHATFERRY_EXPORT_BATCH_SIZE": "20"}


def _recent_moments(count: int) -> list[datetime]:
    now = datetime.now(UTC).replace(microsecond=0)
    return [now - timedelta(hours=1, seconds=17 * i) for i in range(count)]


def _download_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.get(record["download_url"], timeout=10)
    assert response.status_code == 200, response.text
    assert len(response.content) == record["size"]
    rows: list[dict[str, Any]] = response.json()
    return rows


def _job_rows(runtime: Runtime, export_unique_id: str) -> list[Job]:
    with transaction(runtime.sessions) as session:
        export_id = session.scalar(select(Export.id).where(Export.unique_id == export_unique_id))
        return list(
            session.scalars(select(Job).where(Job.kind == "export", Job.target_id == export_id))
        )


def _finished_job(runtime: Runtime, export_unique_id: str) -> Job:
    """The export's job once its worker has recorded it done (just after the export)."""

    def done() -> Job | None:
        [job] = _job_rows(runtime, export_unique_id)
        return job if job.status == "done" else None

    return wait_for(done, timeout=10)


def test_no_worker_server_leaves_jobs_to_a_worker_process(
    runtime: Runtime, new_app: NewApp, start_server: StartServer, start_worker: StartWorker
) -> None:
    creds = new_app()
    expected = seed_comments(runtime, creds.app_id, _recent_moments(30))
    server = start_server(None, "--no-worker")
    http = server.http

    record = create_export(http, creds.headers, type="comments")
    assert record["status"] == "started"
    [job] = _job_rows(runtime, record["unique_id"])
    assert (job.status, job.attempts, job.lease_owner) == ("queued", 0, None)

    worker = start_worker()
    done = wait_finished(http, creds.headers, record["unique_id"])
    assert done["total_rows"] == 30
    assert _download_rows(done) == expected
    # Claimed once, by the worker process: the API process never touched the job (its
    # threads would have claimed it within a poll interval, long before the worker
    # process had started).
    job = _finished_job(runtime, record["unique_id"])
    assert job.attempts == 1
    assert job.lease_owner and f":{worker.pid}:" in job.lease_owner, job.lease_owner

    # A second export is picked up by the same, still idle, worker.
    again = create_export(http, creds.headers, type="users")
    assert wait_finished(http, creds.headers, again["unique_id"])["total_rows"] == 2

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0


def test_sigterm_lets_the_worker_finish_its_running_job_then_exit_0(
    runtime: Runtime, new_app: NewApp, start_server: StartServer, start_worker: StartWorker
) -> None:
    creds = new_app()
    expected = seed_comments(runtime, creds.app_id, _recent_moments(160))
    server = start_server(None, "--no-worker")
    http = server.http
    unique_id = create_export(http, creds.headers, type="comments")["unique_id"]

    worker = start_worker(SLOW)
    wait_for(lambda: get_record(http, creds.headers, unique_id)["percentage"] > 0, timeout=30)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    # "Running jobs are finished first": the export completed before the worker left.
    done = get_record(http, creds.headers, unique_id)
    assert done["status"] == "finished", done
    assert done["total_rows"] == 160
    assert _download_rows(done) == expected


def test_export_survives_a_server_killed_mid_job(
    settings: Settings, runtime: Runtime, new_app: NewApp, start_server: StartServer
) -> None:
    creds = new_app()
    count = 200  # 10 batches of 20 rows, 0.3 s apart: about 3 s of work
    expected = seed_comments(runtime, creds.app_id, _recent_moments(count))
    first = start_server(SLOW)
    record = create_export(first.http, creds.headers, type="comments")
    unique_id = record["unique_id"]

    def running() -> dict[str, Any] | None:
        current = get_record(first.http, creds.headers, unique_id)
        assert current["status"] == "started", current
        return current if current["percentage"] > 0 else None

    progress = wait_for(running, timeout=30, interval=0.05)["percentage"]
    first.process.send_signal(signal.SIGKILL)
    assert first.process.wait(10) == -signal.SIGKILL
    assert progress < 100

    with transaction(runtime.sessions) as session:
        export = session.scalar(select(Export).where(Export.unique_id == unique_id))
        assert export is not None
        assert (export.status, export.total_rows, export.storage_key) == ("started", 0, "")
    [job] = _job_rows(runtime, unique_id)
    assert (job.status, job.attempts) == ("running", 1)
    assert job.lease_owner and str(first.process.pid) in job.lease_owner

    second = start_server()  # not killed: it need not be slow
    done = wait_finished(second.http, creds.headers, unique_id, timeout=60)
    assert done["total_rows"] == count
    assert done["percentage"] == 100
    assert done["error_message"] == ""
    rows = _download_rows(done)
    assert len({row["UniqueId"] for row in rows}) == len(rows) == count
    assert rows == expected

    job = _finished_job(runtime, unique_id)
    assert job.attempts == 2
    assert job.lease_owner and f":{second.process.pid}:" in job.lease_owner, job.lease_owner

    # Exactly one file for this export: the finished one, nothing left from the killed run.
    files = [p for p in stored_files(settings) if unique_id in str(p)]
    root = settings.data_dir / "files"
    assert files == [root / storage_key_for(creds.app_id, unique_id)], (
        f"stray files from the killed run stay in storage forever: {files}"
    )
    assert files[0].stat().st_size == done["size"]


def _hold_write_lock(database_url: str, held: threading.Event, seconds: float) -> None:
    """Another process's write transaction on the same database, held for ``seconds``
    (the request under test must wait that long); sets ``held`` once it has the lock."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
        conn.close()
        return
    with psycopg.connect(database_url) as pg:
        pg.execute("LOCK TABLE exports, jobs IN EXCLUSIVE MODE")
        held.set()
        time.sleep(seconds)
        pg.rollback()


def test_requests_wait_for_another_processes_write_transaction(
    database_url: str, runtime: Runtime, new_app: NewApp, start_server: StartServer
) -> None:
    """Writers (other API processes, workers, the CLI) share the database: a request that
    meets a short write transaction elsewhere waits for it, it does not fail with a 500."""
    creds = new_app()
    seed_comments(runtime, creds.app_id, _recent_moments(3))
    server = start_server(None, "--no-worker")
    existing = create_export(server.http, creds.headers, type="comments")

    for method, path, body in (
        ("POST", EXPORTS, {"type": "comments"}),
        ("DELETE", f"{EXPORTS}/{existing['unique_id']}", None),
    ):
        held = threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(database_url, held, 0.5))
        holder.start()
        assert held.wait(10), "the other transaction never got the write lock"
        started = time.monotonic()
        response = server.http.request(method, path, json=body, headers=creds.headers, timeout=30)
        waited = time.monotonic() - started
        holder.join()
        assert response.status_code == 200, (method, path, response.text)
        assert waited < 20
