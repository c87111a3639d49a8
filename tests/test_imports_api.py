"""The import endpoints: uploads, their errors and limits, records, listing, content checks."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from chatferry.api.app import create_api
from chatferry.db.models import App
from chatferry.imports.service import storage_key_for
from chatferry.runtime import Runtime
from support.apps import NewApp
from support.http import IMPORTS
from support.imports import (
    SPEC_IMPORT_KEYS,
    assert_finished,
    counts,
    problems,
    run_import,
    upload,
    user,
    wait_import,
)


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    message: str = body["error"]["message"]
    return message


def _set_limit(runtime: Runtime, app_id: str, limit: int) -> None:
    # One UPDATE statement: no read-then-write upgrade for SQLite to refuse under load.
    with runtime.engine.begin() as conn:
        conn.execute(update(App).where(App.app_id == app_id).values(import_max_bytes=limit))


# --- accepted uploads ----------------------------------------------------------------


def test_accepted_upload_returns_the_spec_record_and_imports(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app(timezone="Asia/Jakarta")
    body = orjson.dumps([user("a@example.com")])
    response = upload(client, creds, "users", body, filename="users_backup.json")
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["status"] == 200
    record = payload["results"]["backup_history"]
    assert set(record) >= SPEC_IMPORT_KEYS
    assert record["errors"] == {"Message": "", "Data": None}
    assert record["original_filename"] == "users_backup.json"
    assert record["resource_name"] == "users"
    assert record["size"] == len(body)
    assert record["status"] == "started"
    assert record["total_rows"] == 0
    assert record["created_at"].endswith("+07:00")
    assert record["dry_run"] is False
    final = wait_import(client, creds, record["unique_id"])
    assert_finished(final, 1)
    assert counts(runtime, creds.app_id)["users"] == 1
    # The upload was stored for the job (it imported the row), and is gone once it ended:
    # checked after the end only, since an in-process worker may finish it at once.
    assert not runtime.store.exists(storage_key_for(creds.app_id, record["unique_id"]))


def test_list_is_newest_first_paged_and_scoped_to_the_app(
    client: TestClient, new_app: NewApp
) -> None:
    creds, other = new_app(), new_app()
    ids = []
    for n in range(3):
        response = upload(client, creds, "users", [user(f"u{n}@example.com")])
        ids.append(response.json()["results"]["backup_history"]["unique_id"])
    for unique_id in ids:
        wait_import(client, creds, unique_id)
    listed = client.get(IMPORTS, headers=creds.headers).json()["results"]
    assert [r["unique_id"] for r in listed["backup_histories"]] == ids[::-1]
    assert listed["meta"]["total"] == 3
    page2 = client.get(f"{IMPORTS}?page=2&limit=2", headers=creds.headers).json()["results"]
    assert [r["unique_id"] for r in page2["backup_histories"]] == [ids[0]]
    assert client.get(IMPORTS, headers=other.headers).json()["results"]["backup_histories"] == []
    message = _error(client.get(f"{IMPORTS}/{ids[0]}", headers=other.headers), 404)
    assert ids[0] in message
    _error(client.get(f"{IMPORTS}/nope", headers=creds.headers), 404)
    _error(client.get(f"{IMPORTS}?page=0", headers=creds.headers), 400)


def test_dry_run_checks_everything_and_writes_nothing(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    good = run_import(client, creds, "users", [user("a@x.com"), user("b@x.com")], "true")
    assert_finished(good, 2)
    assert good["dry_run"] is True
    bad = run_import(client, creds, "users", [user("a@x.com"), user("a@x.com")], "true")
    assert problems(bad) == [(2, "a@x.com", "Email")]
    assert bad["dry_run"] is True
    assert bad["total_rows"] == 2  # how many rows were checked, not 0
    assert bad["errors"]["Message"] == (
        "the file has 1 problem in 1 of 2 rows; nothing was imported: correct those rows "
        "and upload the file again"
    )
    assert bad["errors"]["Data"][0]["message"] == "Email 'a@x.com' is also used by row 1"
    assert counts(runtime, creds.app_id)["users"] == 0
    real = run_import(client, creds, "users", [user("a@x.com")], "false")
    assert_finished(real, 1)
    assert real["dry_run"] is False
    assert counts(runtime, creds.app_id)["users"] == 1


# --- refused uploads -----------------------------------------------------------------


def test_upload_errors_say_what_is_wrong(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    rows = orjson.dumps([user("a@example.com")])
    assert "type is required" in _error(upload(client, creds, None, rows), 400)
    assert "'messages' is not valid" in _error(upload(client, creds, "messages", rows), 400)
    no_file = client.post(IMPORTS, data={"type": "users"}, headers=creds.headers)
    assert "multipart/form-data" in _error(no_file, 400)
    no_file = client.post(
        IMPORTS, data={"type": "users"}, files={"other": ("x", b"1")}, headers=creds.headers
    )
    assert "field file is required" in _error(no_file, 400)
    as_text = client.post(
        IMPORTS,
        content=b'--b\r\nContent-Disposition: form-data; name="type"\r\n\r\nusers\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n[]\r\n--b--\r\n',
        headers={**creds.headers, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert "file must be a file part" in _error(as_text, 400)
    as_json = client.post(IMPORTS, json={"type": "users"}, headers=creds.headers)
    assert "multipart/form-data" in _error(as_json, 400)
    no_boundary = client.post(
        IMPORTS, content=b"x", headers={**creds.headers, "Content-Type": "multipart/form-data"}
    )
    assert "multipart" in _error(no_boundary, 400)
    bad_flag = upload(client, creds, "users", rows, validate_only="maybe")
    assert "validate_only" in _error(bad_flag, 400)
    unauthenticated = client.post(IMPORTS, data={"type": "users"}, files={"file": ("f", rows)})
    _error(unauthenticated, 401)
    assert client.get(IMPORTS, headers=creds.headers).json()["results"]["backup_histories"] == []


def test_file_over_the_app_limit_is_refused_with_413(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    _set_limit(runtime, creds.app_id, 1000)
    at_limit = b"[" + b" " * 998 + b"]"
    assert upload(client, creds, "users", at_limit).status_code == 200
    over = upload(client, creds, "users", at_limit + b" ")
    message = _error(over, 413)
    assert "1001 bytes" in message and "1000 bytes" in message
    assert over.json()["error"]["code"] == "import_too_large"
    assert over.json()["error"]["limit_bytes"] == 1000
    assert "CHATFERRY_IMPORT_MAX_BYTES" in message
    # A declared body far over the limit is refused from its Content-Length alone.
    _error(upload(client, creds, "users", b" " * 200_000), 413)
    listed = client.get(IMPORTS, headers=creds.headers).json()["results"]["backup_histories"]
    assert len(listed) == 1


def _multipart_stream(
    total: int, chunk: int, sent: list[int], boundary: str
) -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\nusers\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="big.json"\r\nContent-Type: application/json\r\n\r\n'
        ).encode()
        sent[0] += len(head)
        yield head
        block = b"x" * chunk
        while sent[0] < total:
            sent[0] += len(block)
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    return body()


def test_a_50_mb_upload_is_refused_after_reading_little_more_than_the_limit(
    runtime: Runtime, new_app: NewApp
) -> None:
    """Streams 50 MB with no Content-Length; the server stops reading near 4 MB."""
    creds = new_app()
    limit = runtime.settings.import_max_bytes
    chunk = 64 * 1024
    sent = [0]

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_api(runtime, run_worker=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.post(
                IMPORTS,
                content=_multipart_stream(50 * 1024 * 1024, chunk, sent, "bnd"),
                headers={**creds.headers, "Content-Type": "multipart/form-data; boundary=bnd"},
            )

    tracemalloc.start()
    try:
        response = asyncio.run(go())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = _error(response, 413)
    assert "import limit of 4 MB" in message
    assert sent[0] <= limit + 64 * 1024 + 3 * chunk
    assert peak < 8 * 1024 * 1024, f"peak traced memory {peak} bytes"


# --- content checks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfe[]", "not valid UTF-8"),
        (b"[{]", "not valid JSON"),
        (b"", "not valid JSON: it is empty"),
        (b'{"Email": "a@b.c"}', "must be a JSON array of objects, but it is an object"),
        (b'"users"', "must be a JSON array of objects, but it is a string"),
        (b"[]", "empty JSON array"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
    ],
    ids=["utf8", "json", "empty-file", "object", "string", "empty-array", "deep-nesting"],
)
def test_content_checks(client: TestClient, new_app: NewApp, content: bytes, expected: str) -> None:
    creds = new_app()
    record = run_import(client, creds, "users", content)
    assert record["status"] == "failed"
    assert expected in record["errors"]["Message"]
    assert record["errors"]["Data"] is None


def test_elements_that_are_not_objects_are_each_listed(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    record = run_import(client, creds, "users", b'[{"Email": "a@b.co"}, 1, "x", [], null]')
    assert "every element of the array must be a JSON object" in record["errors"]["Message"]
    assert "4 of 5" in record["errors"]["Message"]
    data = record["errors"]["Data"]
    # The file's first object is row 1: the number is its second object, row 2.
    assert [(p["row"], p["field"]) for p in data] == [(2, ""), (3, ""), (4, ""), (5, "")]
    assert data[0]["message"] == "row 2 is a number, not a JSON object"
    assert data[3]["message"] == "row 5 is null, not a JSON object"
