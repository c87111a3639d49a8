"""Crashes are not the user's problem: an export whose `chatferry worker` is SIGKILLed
mid-write again and again is retried under its own crash budget. With
CHATFERRY_JOB_MAX_CRASHES=2 it ends failed with a message saying its worker kept
stopping, and leaves no file and no staging file; with the default budget, three kills
still end in a finished export."""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from chatferry.db.engine import transaction
from chatferry.db.models import Export, Job
from chatferry.runtime import Runtime
from chatferry.settings import Settings
from support.apps import Credentials, NewApp
from support.exports import create_export, download_json, stored_files
from support.logs import LogLine, events_of, read_log
from support.rows import seed_comments
from support.servers import ServerProcess, StartServer, StartWorker, WorkerProcess
from support.waiting import wait_final, wait_for

pytestmark = pytest.mark.slow

ROWS = 300
# 15 batches of 20 rows, 0.2 s after each: a run takes 3 s, so it is killed mid-write; a
# lease of 2 s and a backoff of at most 0.2 s keep the cycles short (each waits for the
# killed worker's lease to run out). Only one worker runs at a time (the server runs
# none), so a short lease cannot get a live worker's job reaped.
SLOW = {
    "CHATFERRY_EXPORT_BATCH_SIZE": "20",
    "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.2",
    "CHATFERRY_JOB_LEASE_SECONDS": "2",
    "CHATFERRY_JOB_RETRY_MAX_BACKOFF_SECONDS": "0.2",
}
# The worker that finishes the export is not killed: it need not be slow.
LAST = {**SLOW, "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0"}


def started(worker: WorkerProcess, uid: str, attempt: int) -> LogLine | None:
    """The worker's "job started" line for this attempt of the export, once logged."""
    lines = read_log(worker.log_path, "text")
    found = events_of(lines, message="job started", unique_id=uid, attempt=str(attempt))
    return found[0] if found else None


def staging_file_since(settings: Settings, uid: str, since: float) -> Path | None:
    """The export's staging file (``<id>.json#<n>``) if this run created it."""
    for path in stored_files(settings):
        try:
            created = path.stat().st_ctime
        except FileNotFoundError:
            continue
        if path.name.startswith(f"{uid}.json#") and created >= since:
            return path
    return None


def kill_mid_write(
    worker: WorkerProcess,
    settings: Settings,
    uid: str,
    attempt: int,
    start_next: Callable[[], WorkerProcess],
) -> WorkerProcess:
    """Waits until the worker runs this attempt and has begun writing the file,
    SIGKILLs it, then starts the next worker (it boots while the killed worker's lease
    runs out; no worker runs beside a live one, so none can reap a job that still
    runs). Returns the next worker."""
    line = wait_for(lambda: started(worker, uid, attempt), timeout=30)
    since = datetime.fromisoformat(line.ts.replace("Z", "+00:00")).timestamp() - 0.002
    wait_for(lambda: staging_file_since(settings, uid, since), timeout=15)
    worker.send_signal(signal.SIGKILL)
    assert worker.wait(10) == -signal.SIGKILL
    return start_next()


def slow_worker(start_worker: StartWorker, attempt: int) -> Callable[[], WorkerProcess]:
    return lambda: start_worker(SLOW, name=f"worker-{attempt}", ready=False)


def job_of(runtime: Runtime, uid: str) -> Job:
    with transaction(runtime.sessions) as session:
        export_id = session.scalar(select(Export.id).where(Export.unique_id == uid))
        job = session.scalar(select(Job).where(Job.kind == "export", Job.target_id == export_id))
        assert job is not None
        return job


def slow_export(
    runtime: Runtime, new_app: NewApp, start_server: StartServer, extra: dict[str, str]
) -> tuple[ServerProcess, Credentials, str]:
    creds = new_app()
    now = datetime.now(UTC).replace(microsecond=0)
    seed_comments(runtime, creds.app_id, [now - timedelta(hours=1, seconds=i) for i in range(ROWS)])
    server = start_server({**SLOW, **extra}, "--no-worker")
    uid = create_export(server.http, creds.headers, type="comments")["unique_id"]
    return server, creds, uid


def leftovers(settings: Settings, uid: str) -> list[str]:
    return [p.name for p in stored_files(settings) if uid in p.name]


def test_an_export_that_keeps_killing_its_workers_fails_and_leaves_nothing(
    runtime: Runtime,
    settings: Settings,
    new_app: NewApp,
    start_server: StartServer,
    start_worker: StartWorker,
) -> None:
    budget = {"CHATFERRY_JOB_MAX_CRASHES": "2"}
    server, creds, uid = slow_export(runtime, new_app, start_server, budget)
    worker = start_worker(SLOW, name="worker-1")
    worker = kill_mid_write(worker, settings, uid, 1, slow_worker(start_worker, 2))
    # After the second kill, a worker's reaper finds the lease run out and gives up.
    reaper = kill_mid_write(
        worker,
        settings,
        uid,
        2,
        lambda: start_worker({**SLOW, **budget}, name="reaper", ready=False),
    )
    assert [n for n in leftovers(settings, uid) if "#" in n]  # the last kill left one
    final = wait_final(server.http, "exports", uid, creds.headers, timeout=60, expect="failed")
    assert final["error_message"] == (
        "the worker running this export stopped 2 times before it could finish (it crashed "
        "or was shut down each time); create the export again, and if this repeats ask the "
        "operator to check the workers' logs and memory"
    )
    assert (final["download_url"], final["size"], final["total_rows"]) == ("", 0, 0)
    assert leftovers(settings, uid) == []  # no file, no staging file

    job = job_of(runtime, uid)
    assert (job.status, job.attempts, job.crashes, job.errors) == ("failed", 2, 2, 0)
    [gave_up] = events_of(read_log(reaper.log_path, "text"), message="job failed", unique_id=uid)
    assert (gave_up.level, gave_up.get("crashes"), gave_up.get("type")) == (
        "ERROR",
        "2",
        "comments",
    )


def test_with_the_default_budget_three_kills_still_finish_the_export(
    runtime: Runtime,
    settings: Settings,
    new_app: NewApp,
    start_server: StartServer,
    start_worker: StartWorker,
) -> None:
    server, creds, uid = slow_export(runtime, new_app, start_server, {})
    worker = start_worker(SLOW, name="worker-1")
    for attempt in (1, 2):
        worker = kill_mid_write(
            worker, settings, uid, attempt, slow_worker(start_worker, attempt + 1)
        )
    last = kill_mid_write(
        worker, settings, uid, 3, lambda: start_worker(LAST, name="worker-last", ready=False)
    )
    final = wait_final(server.http, "exports", uid, creds.headers, timeout=90, expect="finished")
    assert (final["total_rows"], final["error_message"]) == (ROWS, "")
    assert len(download_json(server.http, final)) == ROWS
    assert leftovers(settings, uid) == [f"{uid}.json"]  # the file, and no staging file

    job = job_of(runtime, uid)
    assert (job.status, job.attempts, job.crashes, job.errors) == ("done", 4, 3, 0)

    # The worker logs the run just after the record says finished: wait for the line.
    def finished_line() -> list[LogLine]:
        lines = read_log(last.log_path, "text")
        return events_of(lines, message="job finished", unique_id=uid)

    [done] = wait_for(finished_line, timeout=10)
    reaped = events_of(read_log(last.log_path, "text"), message="job reaped", unique_id=uid)
    assert [line.get("crashes") for line in reaped] == ["3"]
    assert (done.get("attempt"), done.get("rows")) == ("4", str(ROWS))
