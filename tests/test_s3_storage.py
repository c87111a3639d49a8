"""Export and import files on S3-compatible storage (moto's server on loopback)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from chatferry.db.engine import transaction
from chatferry.db.models import User
from chatferry.runtime import Runtime
from chatferry.storage.store import FileStore, content_disposition
from support.apps import NewApp
from support.exports import (
    barrier_export,
    create_export,
    export_and_wait,
    get_record,
    stored_files,
)
from support.http import EXPORTS
from support.imports import assert_finished, counts, run_import, user
from support.rows import add_user, add_users, app_pk
from support.s3 import S3Bucket

TTL = 3600


@pytest.fixture
def settings_env(settings_env: dict[str, str], s3_bucket: S3Bucket) -> dict[str, str]:
    return {
        **settings_env,
        "CHATFERRY_STORAGE_URL": s3_bucket.storage_url,
        "CHATFERRY_DOWNLOAD_URL_TTL_SECONDS": str(TTL),
        "CHATFERRY_WORKER_CONCURRENCY": "1",  # jobs run in order: see barrier_export
    }


def object_key(bucket: S3Bucket, app_id: str, unique_id: str) -> str:
    return f"{bucket.prefix}/exports/{app_id}/{unique_id}.json"


@pytest.mark.slow
def test_an_export_is_uploaded_to_the_bucket_and_served_by_a_presigned_url(
    client: TestClient, runtime: Runtime, s3_bucket: S3Bucket, new_app: NewApp
) -> None:
    creds = new_app("s3", "Asia/Jakarta")
    now = datetime.now(UTC)
    emails = add_users(runtime, creds.app_id, [now - timedelta(minutes=m) for m in range(1, 8)])
    record = export_and_wait(client, creds.headers, type="users")

    # The object is in the bucket under the prefix, with the rows the database holds.
    key = object_key(s3_bucket, creds.app_id, record["unique_id"])
    assert list(s3_bucket.object_keys()) == [key]
    content = s3_bucket.read(key)
    rows = orjson.loads(content)
    with transaction(runtime.sessions) as session:
        pk = app_pk(runtime, creds.app_id)
        db_emails = set(session.scalars(select(User.email).where(User.app_pk == pk)))
    assert {row["Email"] for row in rows} == db_emails == set(emails)
    assert record["size"] == len(content)
    assert record["total_rows"] == 7
    assert stored_files(runtime) == []  # nothing written to local disk

    # download_url is a presigned GET of the object: no app headers, no API involved.
    url = record["download_url"]
    parts = urlsplit(url)
    assert url.startswith(f"{s3_bucket.server.endpoint}/{s3_bucket.name}/{key}?")
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == [str(TTL)]
    assert "X-Amz-Signature" in query
    response = httpx.get(url)
    assert response.status_code == 200, response.text
    assert response.content == content
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{record["original_filename"]}"'
    )


@pytest.mark.slow
def test_a_file_route_link_redirects_to_the_object(
    client: TestClient, runtime: Runtime, s3_bucket: S3Bucket, new_app: NewApp
) -> None:
    """A signed /file link (made before the switch to S3, or by hand) still works."""
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=1)])
    record = export_and_wait(client, creds.headers, type="users")
    expires = int(time.time()) + 60
    signature = runtime.signer.signature(record["unique_id"], expires)
    path = f"{EXPORTS}/{record['unique_id']}/file?expires={expires}&signature={signature}"
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"].startswith(s3_bucket.server.endpoint)
    assert httpx.get(response.headers["location"]).content == s3_bucket.read(
        object_key(s3_bucket, creds.app_id, record["unique_id"])
    )


@pytest.mark.slow
def test_a_large_export_is_a_multipart_upload(
    client: TestClient, runtime: Runtime, s3_bucket: S3Bucket, new_app: NewApp
) -> None:
    """Over 5 MB: several parts, streamed as the batches are read (never whole)."""
    creds = new_app()
    pk = app_pk(runtime, creds.app_id)
    moment = datetime.now(UTC) - timedelta(minutes=5)
    with transaction(runtime.sessions) as session:
        for i in range(900):
            add_user(session, pk, f"big{i}@example.com", moment, name=f"{i}-" + "n" * 8000)
    record = export_and_wait(client, creds.headers, type="users")
    assert record["size"] > 6 * 1024 * 1024
    key = object_key(s3_bucket, creds.app_id, record["unique_id"])
    etag = s3_bucket.object_keys()[key]
    assert etag.endswith("-2"), etag  # two parts of at most 5 MB
    rows = orjson.loads(httpx.get(record["download_url"]).content)
    assert len(rows) == 900
    assert {row["Email"] for row in rows} == {f"big{i}@example.com" for i in range(900)}


@pytest.mark.slow
def test_delete_removes_the_object(
    client: TestClient, runtime: Runtime, s3_bucket: S3Bucket, new_app: NewApp
) -> None:
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=1)])
    kept = export_and_wait(client, creds.headers, type="users")
    gone = export_and_wait(client, creds.headers, type="users")
    assert len(s3_bucket.object_keys()) == 2
    response = client.delete(f"{EXPORTS}/{gone['unique_id']}", headers=creds.headers)
    assert response.status_code == 200, response.text
    assert list(s3_bucket.object_keys()) == [object_key(s3_bucket, creds.app_id, kept["unique_id"])]
    assert httpx.get(gone["download_url"]).status_code == 404
    assert get_record(client, creds.headers, kept["unique_id"])["status"] == "finished"


@pytest.mark.slow
def test_a_running_export_that_is_deleted_leaves_no_object(
    client: TestClient, runtime: Runtime, s3_bucket: S3Bucket, new_app: NewApp
) -> None:
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=1)])
    record = create_export(client, creds.headers, type="users")
    client.delete(f"{EXPORTS}/{record['unique_id']}", headers=creds.headers)
    # Whatever the job got to, no object survives (once a later export ran on the one
    # worker thread, the deleted export's job is over).
    barrier_export(client, creds.headers)
    assert object_key(s3_bucket, creds.app_id, record["unique_id"]) not in s3_bucket.object_keys()


@pytest.mark.slow
def test_an_upload_is_stored_in_the_bucket_and_imported_from_it(
    client: TestClient, runtime: Runtime, s3_bucket: S3Bucket, new_app: NewApp
) -> None:
    creds = new_app()
    rows = [user(f"imported{i}@example.com") for i in range(3)]
    record = run_import(client, creds, "users", rows)
    assert_finished(record, 3)
    assert counts(runtime, creds.app_id)["users"] == 3
    # Read from the bucket by the job (nothing on local disk), then deleted with its end.
    key = f"{s3_bucket.prefix}/imports/{creds.app_id}/{record['unique_id']}.json"
    log = s3_bucket.server.log_path.read_text(errors="replace")
    assert f"GET /{s3_bucket.name}/{key}" in log
    assert [k for k in s3_bucket.object_keys() if "/exports/" not in k] == []
    assert stored_files(runtime) == []


def test_local_storage_has_no_presigned_urls(tmp_path: Path) -> None:
    store = FileStore((tmp_path / "files").as_uri())
    store.put_stream("a/b.json", iter([b"[]"]), filename="x.json")
    assert store.presigned_url("a/b.json", 60) is None
    assert store.read_bytes("a/b.json") == b"[]"


def test_content_disposition_keeps_any_file_name() -> None:
    assert content_disposition("2024-01-02T03:04:05+07:00_exported_users.json") == (
        'attachment; filename="2024-01-02T03:04:05+07:00_exported_users.json"'
    )
    assert content_disposition('résumé "x".json') == (
        "attachment; filename=\"r?sum? _x_.json\"; filename*=utf-8''r%C3%A9sum%C3%A9%20%22x%22.json"
    )
