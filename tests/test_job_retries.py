"""Transient failures (storage or database unreachable) are retried with backoff.

The failure is real: the S3 server (moto on loopback) is stopped while jobs run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from obstore.exceptions import NotFoundError
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError

from chatferry.db.engine import transaction
from chatferry.db.models import Export, Job
from chatferry.exports.job import ExportFailed
from chatferry.jobs.failures import backoff_seconds, is_transient, short_error
from chatferry.runtime import Runtime
from chatferry.storage.store import FileStore, StorageError
from support.apps import NewApp
from support.exports import create_export, export_and_wait, get_record, wait_done
from support.rows import add_users
from support.s3 import S3Bucket
from support.servers import free_port
from support.waiting import wait_for

BACKOFF_CAP_SECONDS = 3


@pytest.fixture
def settings_env(
    settings_env: dict[str, str], s3_bucket: S3Bucket, extra_env: dict[str, str]
) -> dict[str, str]:
    return {
        **settings_env,
        "CHATFERRY_STORAGE_URL": s3_bucket.storage_url,
        # No quick retries inside obstore: each job attempt fails at once.
        "CHATFERRY_STORAGE_MAX_RETRIES": "0",
        "CHATFERRY_STORAGE_CONNECT_TIMEOUT_SECONDS": "2",
        "CHATFERRY_JOB_MAX_ATTEMPTS": "3",
        # Backoff doubles from 2 s: 2 s, then 4 s capped to 3 s.
        "CHATFERRY_JOB_RETRY_MAX_BACKOFF_SECONDS": str(BACKOFF_CAP_SECONDS),
        **extra_env,
    }


def job_of(rt: Runtime, unique_id: str) -> dict[str, Any]:
    with transaction(rt.sessions) as session:
        export_id = session.scalar(select(Export.id).where(Export.unique_id == unique_id))
        job = session.scalar(select(Job).where(Job.target_id == export_id, Job.kind == "export"))
        assert job is not None
        return {
            "status": job.status,
            "attempts": job.attempts,
            "run_after": job.run_after,
            "updated_at": job.updated_at,
            "last_error": job.last_error,
            "lease_owner": job.lease_owner,
        }


@pytest.mark.slow
def test_an_export_is_retried_while_storage_is_down_then_fails_with_a_message(
    client: TestClient, runtime: Runtime, s3_bucket: S3Bucket, new_app: NewApp
) -> None:
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=1)])
    s3_bucket.server.stop()

    record = create_export(client, creds.headers, type="users")
    unique_id = record["unique_id"]
    for attempt in (1, 2):

        def requeued(attempt: int = attempt) -> dict[str, Any] | None:
            job = job_of(runtime, unique_id)
            done = job["status"] == "queued" and job["attempts"] == attempt
            return job if done else None

        job = wait_for(requeued, timeout=30, interval=0.02)
        assert job["lease_owner"] is None
        delay = (job["run_after"] - job["updated_at"]).total_seconds()
        assert delay == pytest.approx(min(2**attempt, BACKOFF_CAP_SECONDS), abs=0.2)
        assert job["run_after"] > datetime.now(UTC) - timedelta(seconds=0.5)
        # The jobs table (for operators) names the storage client's error, on one line.
        assert "GenericError" in job["last_error"] and "\n" not in job["last_error"]
        # Meanwhile the export is still running, with a short note on the retry.
        waiting = get_record(client, creds.headers, unique_id)
        assert waiting["status"] == "started"
        assert "retried automatically" in waiting["error_message"]
        assert "file storage" in waiting["error_message"]

    final = wait_done(client, creds.headers, unique_id, timeout=30)
    assert final["status"] == "failed"
    message = final["error_message"]
    assert "the file storage could not be reached in 3 tries" in message
    assert "the operator must check the file storage (reference E" in message
    # A short sentence: none of the storage client's debug output, URL, bucket or keys.
    assert len(message) < 250, message
    for leak in ("Traceback", "\n", "http", s3_bucket.name, "exports/", "GenericError"):
        assert leak not in message, (leak, message)
    assert final["download_url"] == ""
    job = job_of(runtime, unique_id)
    assert (job["status"], job["attempts"]) == ("failed", 3)

    # With the server back (empty: moto keeps nothing), new exports work again.
    s3_bucket.server.start()
    s3_bucket.server.create_bucket(s3_bucket.name)
    again = export_and_wait(client, creds.headers, type="users")
    assert again["total_rows"] == 1
    key = f"{s3_bucket.prefix}/exports/{creds.app_id}/{again['unique_id']}.json"
    assert list(s3_bucket.object_keys()) == [key]


@pytest.mark.slow
# Six tries (2 + 3 + 3 + 3 + 3 s apart): room for moto's restart on a loaded machine.
@pytest.mark.parametrize("extra_env", [{"CHATFERRY_JOB_MAX_ATTEMPTS": "6"}], ids=["6-tries"])
def test_an_export_succeeds_when_storage_comes_back_before_the_last_attempt(
    client: TestClient, runtime: Runtime, s3_bucket: S3Bucket, new_app: NewApp
) -> None:
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=1)])
    s3_bucket.server.stop()
    unique_id = create_export(client, creds.headers, type="users")["unique_id"]
    wait_for(lambda: job_of(runtime, unique_id)["attempts"] == 1, timeout=30)
    s3_bucket.server.start()
    s3_bucket.server.create_bucket(s3_bucket.name)
    final = wait_done(client, creds.headers, unique_id, timeout=30)
    assert final["status"] == "finished", final
    assert job_of(runtime, unique_id)["attempts"] >= 2  # more if moto took over 2 s to start
    assert final["error_message"] == ""  # the retry's note is gone once it finished


def test_transient_errors_are_told_apart_from_the_rest(tmp_path: Path) -> None:
    # A database that does not answer: a real connection error.
    engine = create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    with pytest.raises(OperationalError) as refused:
        engine.connect()
    assert is_transient(refused.value)
    assert is_transient(ConnectionResetError("peer went away"))
    assert is_transient(TimeoutError())
    try:
        try:
            raise ConnectionRefusedError("down")
        except ConnectionRefusedError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert is_transient(wrapped)

    # A missing file, a bug, or a problem the user must fix: retrying cannot help.
    store = FileStore((tmp_path / "files").as_uri())
    with pytest.raises(StorageError) as missing:
        store.read_bytes("nothing/here.json")
    assert isinstance(missing.value.__cause__, NotFoundError | FileNotFoundError)
    assert not is_transient(missing.value)
    assert not is_transient(ValueError("bad"))
    assert not is_transient(ExportFailed("over the row limit"))


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_seconds(n, 300) for n in (1, 2, 3, 8, 9, 50)] == [2, 4, 8, 256, 300, 300]
    assert short_error(RuntimeError("first line\nsecond line")) == "RuntimeError: first line"
    assert len(short_error(RuntimeError("x" * 1000))) == 300
