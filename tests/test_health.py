"""/healthz and /readyz, and what a tenant reads when the storage goes wrong: in process
(a storage directory made unusable) and against a real server over moto's S3 server
(stopped and started again; a bucket deleted under a running server)."""

from __future__ import annotations

import logging
import re
import shutil
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from chatferry.api.health import READY_CACHE_SECONDS
from chatferry.runtime import Runtime
from chatferry.settings import Settings
from support.apps import NewApp
from support.exports import create_export, wait_done
from support.logs import events_of, read_log
from support.rows import add_users
from support.s3 import S3Bucket
from support.servers import StartServer
from support.waiting import wait_for

REFERENCE = re.compile(r"\(reference (E[0-9A-Z]+)\)")


def test_healthz_answers_and_readyz_checks_database_and_storage(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"results": {"status": "ready"}, "status": 200}


def test_readyz_says_which_part_failed_and_logs_the_details_under_a_reference(
    client: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # The storage directory replaced by a file: nothing can be written there.
    files = settings.data_dir / "files"
    shutil.rmtree(files)
    files.write_text("in the way")
    with caplog.at_level(logging.WARNING, logger="chatferry.api.health"):
        response = client.get("/readyz")
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert message.startswith("the file storage is not reachable (reference E")
    assert message.endswith("): see the server's log")
    assert str(files) not in message and "directory" not in message
    match = REFERENCE.search(message)
    assert match is not None
    [logged] = [r for r in caplog.records if r.getMessage() == "not ready"]
    fields = logged.chatferry_fields  # type: ignore[attr-defined]
    assert (fields["part"], fields["reference"]) == ("file storage", match[1])
    assert fields["error"] == (
        f"cannot open the file storage at {files.as_uri()}: OSError: File exists (os error 17)"
    )
    # /healthz only says the process answers: still ok.
    assert client.get("/healthz").status_code == 200


@pytest.fixture
def s3_env(settings_env: dict[str, str], s3_bucket: S3Bucket) -> dict[str, str]:
    return {
        "CHATFERRY_STORAGE_URL": s3_bucket.storage_url,
        "CHATFERRY_STORAGE_MAX_RETRIES": "0",
        "CHATFERRY_STORAGE_CONNECT_TIMEOUT_SECONDS": "2",
    }


def _status(http: httpx.Client) -> int:
    return http.get("/readyz").status_code


@pytest.mark.slow
def test_readyz_follows_the_storage_down_and_up_again(
    start_server: StartServer, s3_bucket: S3Bucket, s3_env: dict[str, str]
) -> None:
    server = start_server(s3_env, "--no-worker")
    assert _status(server.http) == 200
    s3_bucket.server.stop()
    # Within the cache's few seconds, the outage shows, with the reason.
    wait_for(lambda: _status(server.http) == 503, timeout=READY_CACHE_SECONDS + 10)
    message = server.http.get("/readyz").json()["error"]["message"]
    assert message.startswith("the file storage is not reachable (reference E")
    match = REFERENCE.search(message)
    assert match is not None
    s3_bucket.server.start()
    s3_bucket.server.create_bucket(s3_bucket.name)  # moto starts empty
    wait_for(lambda: _status(server.http) == 200, timeout=READY_CACHE_SECONDS + 10)

    lines = read_log(server.log_path, "text")
    [down] = events_of(lines, message="not ready", reference=match[1])
    assert down.get("part") == "file storage"
    assert "nothing answers at the endpoint" in down.get("error")
    assert events_of(lines, message="ready again")


@pytest.mark.slow
def test_an_export_on_a_deleted_bucket_tells_the_tenant_little_and_the_log_all(
    runtime: Runtime,
    new_app: NewApp,
    start_server: StartServer,
    s3_bucket: S3Bucket,
    s3_env: dict[str, str],
) -> None:
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(hours=1)])
    server = start_server(s3_env)  # its preflight wrote to the bucket and deleted again
    s3_bucket.server.delete_bucket(s3_bucket.name)

    uid = create_export(server.http, creds.headers, type="users")["unique_id"]
    final = wait_done(server.http, creds.headers, uid)
    assert final["status"] == "failed"
    message = final["error_message"]
    match = REFERENCE.search(message)
    assert match is not None, message
    assert message == (
        f"the export failed: the file storage refused it; the operator must check the file "
        f"storage (reference {match[1]}), then create the export again"
    )
    for leak in ("http", s3_bucket.name, "exports/", "NoSuchBucket", "Debug", "\n", "Error"):
        assert leak not in message, leak
    assert final["download_url"] == ""

    lines = read_log(server.log_path, "text")
    [failed] = events_of(lines, message="job failed", unique_id=uid, reference=match[1])
    details = "\n".join(failed.details)
    assert "NoSuchBucket" in details and s3_bucket.name in details
