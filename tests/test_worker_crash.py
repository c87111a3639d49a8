"""A `chatferry worker` process SIGKILLed in the middle of an export, behind an API-only
`chatferry serve --no-worker`: the next worker's reaper re-queues the job when its lease
runs out, runs it again, and the export ends with one complete, correct file."""

from __future__ import annotations

import hashlib
import json
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from chatferry.db.engine import transaction
from chatferry.db.models import App, Comment, Export, Job
from chatferry.exports.service import storage_key_for
from chatferry.runtime import Runtime
from chatferry.settings import Settings
from support.apps import NewApp
from support.exports import create_export, download, get_record, stored_files, wait_finished
from support.rows import seed_comments
from support.servers import StartServer, StartWorker
from support.waiting import wait_for

LEASE_SECONDS = 2
ROWS = 300
# 15 batches of 20 rows, 0.3 s after each: about 4.5 s of work per run of the export,
# killed within its first lease.
SLOW = {
    "CHATFERRY_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
    "CHATFERRY_EXPORT_BATCH_SIZE": "20",
    "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.3",
}
# The worker that finishes the export is not killed: it need not be slow.
FAST = {**SLOW, "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0"}


def _job(runtime: Runtime, unique_id: str) -> Job:
    with transaction(runtime.sessions) as session:
        export_id = session.scalar(select(Export.id).where(Export.unique_id == unique_id))
        [job] = session.scalars(select(Job).where(Job.kind == "export", Job.target_id == export_id))
        return job


@pytest.mark.slow
def test_worker_killed_mid_export_the_next_worker_finishes_it_once(
    settings: Settings,
    runtime: Runtime,
    new_app: NewApp,
    start_server: StartServer,
    start_worker: StartWorker,
) -> None:
    creds = new_app()
    now = datetime.now(UTC).replace(microsecond=0)
    moments = [now - timedelta(hours=1, seconds=11 * i) for i in range(ROWS)]
    expected = seed_comments(runtime, creds.app_id, moments, tag="crash")
    server = start_server(SLOW, "--no-worker")
    http = server.http

    record = create_export(http, creds.headers, type="comments")
    unique_id = record["unique_id"]
    assert record["status"] == "started"

    first = start_worker(SLOW, name="worker-first")

    def running() -> dict[str, Any] | None:
        current = get_record(http, creds.headers, unique_id)
        assert current["status"] == "started", current
        return current if current["percentage"] > 0 else None

    progress = wait_for(running, timeout=30, interval=0.05)["percentage"]
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    assert 0 < progress < 100

    # The killed run left the export running and its job leased to the dead process.
    killed = _job(runtime, unique_id)
    assert (killed.status, killed.attempts) == ("running", 1)
    assert str(first.pid) in (killed.lease_owner or "")
    with transaction(runtime.sessions) as session:
        export = session.scalar(select(Export).where(Export.unique_id == unique_id))
        assert export is not None
        assert (export.status, export.total_rows, export.storage_key) == ("started", 0, "")

    # obstore's local store stages the upload as `<key>#<n>`: the kill left one behind.
    staged = [p.name for p in stored_files(settings)]
    assert [n for n in staged if n.startswith(f"{unique_id}.json#")], staged
    second = start_worker(FAST, name="worker-second", ready=False)
    started = time.monotonic()
    done = wait_finished(http, creds.headers, unique_id, timeout=60)
    recovered_in = time.monotonic() - started
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0
    # Recovered within the lease plus a whole run (and some slack for a busy machine).
    assert recovered_in < LEASE_SECONDS + 30, recovered_in

    assert (done["status"], done["percentage"], done["error_message"]) == ("finished", 100, "")
    assert done["total_rows"] == ROWS

    # The file: downloaded through the API's signed link, complete and correct.
    content = download(http, done)
    assert len(content) == done["size"]
    assert hashlib.sha256(content).hexdigest() == done["sha256"]
    rows: list[dict[str, Any]] = json.loads(content)
    assert len(rows) == ROWS
    assert len({row["UniqueId"] for row in rows}) == ROWS
    assert rows == expected
    with transaction(runtime.sessions) as session:
        pk = session.scalar(select(App.id).where(App.app_id == creds.app_id))
        in_db = set(session.scalars(select(Comment.unique_id).where(Comment.app_pk == pk)))
    assert {row["UniqueId"] for row in rows} == in_db

    # Exactly one file for the export in storage, no staging leftover of the killed run.
    root = settings.data_dir / "files"
    files = [p for p in stored_files(settings) if unique_id in str(p)]
    assert files == [root / storage_key_for(creds.app_id, unique_id)], files
    assert not [p for p in stored_files(settings) if "#" in p.name]
    assert files[0].read_bytes() == content

    # The job ran twice: the killed attempt and the one that finished.
    job = _job(runtime, unique_id)
    assert (job.status, job.attempts) == ("done", 2)
    assert str(second.pid) in (job.lease_owner or "")
