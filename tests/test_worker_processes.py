"""Scale-out and crash recovery with real processes: serve --no-worker, worker, SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from chatferry.db.engine import transaction
from chatferry.db.models import Export, Job
from chatferry.exports.service import storage_key_for
from helpers_proc import (
    create_export,
    get_export,
    seed_comments,
    show_process_logs,  # noqa: F401
    stored_files,
    wait_for_status,
)

from conftest import cli_command, wait_for

# Slow exports down so a job can be caught mid-run: 20 rows a batch, 0.3 s after each.
SLOW = {"CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.3", "CHATFERRY_EXPORT_BATCH_SIZE": "20"}


def _recent_moments(count: int) -> list[datetime]:
    now = datetime.now(UTC).replace(microsecond=0)
    return [now - timedelta(hours=1, seconds=17 * i) for i in range(count)]


def _start_worker(
    settings_env: dict[str, str], tmp_path: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log_path = tmp_path / f"worker-{time.monotonic_ns()}.log"
    return subprocess.Popen(
        cli_command("worker"),
        env={**os.environ, **settings_env, **(extra_env or {})},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def _download_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.get(record["download_url"], timeout=10)
    assert response.status_code == 200, response.text
    assert len(response.content) == record["size"]
    rows: list[dict[str, Any]] = response.json()
    return rows


def _job_rows(runtime, export_unique_id: str) -> list[Job]:  # type: ignore[no-untyped-def]
    with transaction(runtime.sessions) as session:
        export_id = session.scalar(select(Export.id).where(Export.unique_id == export_unique_id))
        return list(
            session.scalars(select(Job).where(Job.kind == "export", Job.target_id == export_id))
        )


def test_no_worker_server_leaves_jobs_to_a_worker_process(
    settings_env: dict[str, str], runtime, make_app, start_server, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    creds = make_app()
    expected = seed_comments(runtime, creds.app_id, _recent_moments(30))
    server = start_server(None, "--no-worker")
    base = server.base_url

    record = create_export(base, creds.app_id, creds.secret, {"type": "comments"})
    assert record["status"] == "started"
    # Many poll intervals (0.1 s) later, nothing in the API process has touched it.
    time.sleep(1.5)
    waiting = get_export(base, creds.app_id, creds.secret, record["unique_id"])
    assert (waiting["status"], waiting["percentage"], waiting["download_url"]) == ("started", 0, "")
    [job] = _job_rows(runtime, record["unique_id"])
    assert (job.status, job.attempts, job.lease_owner) == ("queued", 0, None)

    worker = _start_worker(settings_env, tmp_path)
    try:
        done = wait_for_status(base, creds.app_id, creds.secret, record["unique_id"], timeout=30)
        assert done["total_rows"] == 30
        assert _download_rows(done) == expected
        [job] = _job_rows(runtime, record["unique_id"])
        assert (job.status, job.attempts) == ("done", 1)
        assert str(worker.pid) in (job.lease_owner or str(worker.pid))

        # A second export is picked up by the same, still idle, worker.
        again = create_export(base, creds.app_id, creds.secret, {"type": "users"})
        users = wait_for_status(base, creds.app_id, creds.secret, again["unique_id"], timeout=30)
        assert users["total_rows"] == 2

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0
    finally:
        _stop(worker)


def test_sigterm_lets_the_worker_finish_its_running_job_then_exit_0(
    settings_env: dict[str, str], runtime, make_app, start_server, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    creds = make_app()
    expected = seed_comments(runtime, creds.app_id, _recent_moments(160))
    server = start_server(None, "--no-worker")
    base = server.base_url
    record = create_export(base, creds.app_id, creds.secret, {"type": "comments"})
    unique_id = record["unique_id"]

    worker = _start_worker(settings_env, tmp_path, SLOW)
    try:
        wait_for(
            lambda: get_export(base, creds.app_id, creds.secret, unique_id)["percentage"] > 0,
            timeout=30,
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        _stop(worker)
    # "Running jobs are finished first": the export completed before the worker left.
    done = get_export(base, creds.app_id, creds.secret, unique_id)
    assert done["status"] == "finished", done
    assert done["total_rows"] == 160
    assert _download_rows(done) == expected


def test_export_survives_a_server_killed_mid_job(
    settings_env: dict[str, str], runtime, make_app, start_server
) -> None:  # type: ignore[no-untyped-def]
    creds = make_app()
    count = 200  # 10 batches of 20 rows, 0.3 s apart: about 3 s of work
    expected = seed_comments(runtime, creds.app_id, _recent_moments(count))
    first = start_server(SLOW)
    record = create_export(first.base_url, creds.app_id, creds.secret, {"type": "comments"})
    unique_id = record["unique_id"]

    def running() -> dict[str, Any] | None:
        current = get_export(first.base_url, creds.app_id, creds.secret, unique_id)
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

    second = start_server(SLOW)
    done = wait_for_status(second.base_url, creds.app_id, creds.secret, unique_id, timeout=60)
    assert done["total_rows"] == count
    assert done["percentage"] == 100
    assert done["error_message"] == ""
    rows = _download_rows(done)
    assert len({row["UniqueId"] for row in rows}) == len(rows) == count
    assert rows == expected

    [job] = _job_rows(runtime, unique_id)
    assert (job.status, job.attempts) == ("done", 2)
    assert str(second.process.pid) in (job.lease_owner or str(second.process.pid))

    # Exactly one file for this export: the finished one, nothing left from the killed run.
    files = [p for p in stored_files(settings_env) if unique_id in str(p)]
    root = Path(settings_env["CHATFERRY_DATA_DIR"]) / "files"
    assert files == [root / storage_key_for(creds.app_id, unique_id)], (
        f"stray files from the killed run stay in storage forever: {files}"
    )
    assert files[0].stat().st_size == done["size"]


def _hold_write_lock(database_url: str, seconds: float) -> None:
    """Another process's write transaction on the same database, held for ``seconds``."""
    if database_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        time.sleep(seconds)
        conn.execute("ROLLBACK")
        conn.close()
        return
    import psycopg

    with psycopg.connect(database_url) as conn:
        conn.execute("LOCK TABLE exports, jobs IN EXCLUSIVE MODE")
        time.sleep(seconds)
        conn.rollback()


def test_requests_wait_for_another_processes_write_transaction(
    settings_env: dict[str, str], database_url: str, runtime, make_app, start_server
) -> None:  # type: ignore[no-untyped-def]
    """Writers (other API processes, workers, the CLI) share the database: a request that
    meets a short write transaction elsewhere waits for it, it does not fail with a 500."""
    import threading

    creds = make_app()
    seed_comments(runtime, creds.app_id, _recent_moments(3))
    server = start_server(None, "--no-worker")
    base = server.base_url
    existing = create_export(base, creds.app_id, creds.secret, {"type": "comments"})

    for method, path, body in (
        ("POST", "/exports", {"type": "comments"}),
        ("DELETE", f"/exports/{existing['unique_id']}", None),
    ):
        holder = threading.Thread(target=_hold_write_lock, args=(database_url, 1.0))
        holder.start()
        time.sleep(0.3)  # the other transaction now holds the write lock
        started = time.monotonic()
        response = httpx.request(
            method,
            f"{base}/api/v2.1/rest{path}",
            json=body,
            headers={"QISCUS-SDK-APP-ID": creds.app_id, "QISCUS-SDK-SECRET": creds.secret},
            timeout=30,
        )
        holder.join()
        assert response.status_code == 200, (method, path, response.text)
        assert time.monotonic() - started < 20
