"""Hostile input through the API (issue 7's reproductions): every bad value is a 4xx in
our envelope or a problem on its row, never a 500, and what a tenant reads never holds
SQL, parameters or internals. Runs on SQLite and PostgreSQL (where NUL bytes used to
reach the database)."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from chatferry.runtime import Runtime
from support.apps import NewApp
from support.exports import stored_files, wait_finished
from support.http import EXPORTS, IMPORTS, SCHEDULES, assert_error
from support.imports import run_import, user, wait_import

LEAKS = ("select ", "insert ", "[sql", "parameters", "traceback", "psycopg", "sqlalchemy")
DEEP = "[" * 1000 + "]" * 1000


def assert_no_internals(text: str) -> None:
    lowered = text.lower()
    for leak in LEAKS:
        assert leak not in lowered, text


# --- dates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"start_date": "9999-12-31"}, "the first day (start_date), 9999-12-31, is out of range"),
        ({"end_date": "9999-12-31"}, "the last day (end_date), 9999-12-31, is out of range"),
        ({"start_date": "0001-01-01"}, "the first day (start_date), 0001-01-01, is out of range"),
        ({"end_date": "0001-01-01"}, "the last day (end_date), 0001-01-01, is out of range"),
        ({"run_at": "9999-12-31T23:59:59-23:59"}, "not a valid date and time"),
        ({"run_at": "0001-01-01T00:00:00+23:59"}, "not a valid date and time"),
    ],
)
def test_dates_at_the_ends_of_the_calendar_get_400_east_of_utc(
    client: TestClient, new_app: NewApp, body: dict[str, str], fragment: str
) -> None:
    creds = new_app("East", "Asia/Tokyo")
    response = client.post(EXPORTS, json={"type": "users", **body}, headers=creds.headers)
    assert_error(response, 400, fragment)


@pytest.mark.parametrize("timezone", ["Asia/Tokyo", "Pacific/Pago_Pago"])
@pytest.mark.parametrize(
    "window",
    [
        {"end_date": "0001-01-10"},  # the default start (30 days before) is before year 1
        {"start_date": "0001-01-02", "end_date": "0001-01-02"},
        {"start_date": "9999-12-30", "end_date": "9999-12-30"},
    ],
)
def test_the_first_and_last_days_export_in_any_timezone(
    client: TestClient, new_app: NewApp, timezone: str, window: dict[str, str]
) -> None:
    creds = new_app("Edge", timezone)
    response = client.post(EXPORTS, json={"type": "users", **window}, headers=creds.headers)
    assert response.status_code == 200, response.text
    record = wait_finished(client, creds.headers, response.json()["results"]["unique_id"])
    assert record["total_rows"] == 0
    assert record["start_date"] == window.get("start_date", "0001-01-02")


# --- nesting, NUL bytes, nulls ---------------------------------------------------------


def _deep_body(field: str, extra: str = "") -> bytes:
    return f'{{"{field}": {DEEP}{extra}}}'.encode()


@pytest.mark.parametrize("field", ["type", "start_date", "end_date", "run_at"])
def test_1000_deep_nesting_in_an_export_field_gets_400(
    client: TestClient, new_app: NewApp, field: str
) -> None:
    creds = new_app()
    body = _deep_body(field, ', "type": "users"' if field != "type" else "")
    response = client.post(EXPORTS, content=body, headers=creds.headers)
    message = assert_error(response, 400, field, "(an array)")
    assert len(message) < 300


def test_nesting_past_the_json_readers_limit_gets_400(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    body = b'{"type": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert_error(client.post(EXPORTS, content=body, headers=creds.headers), 400, "not valid JSON")


@pytest.mark.parametrize("field", ["name", "cron", "window_days", "keep_last", "paused"])
def test_1000_deep_nesting_in_a_schedule_field_gets_400(
    client: TestClient, new_app: NewApp, field: str
) -> None:
    creds = new_app()
    base = {"type": "users", "cron": "@daily", "window_days": 1, "keep_last": 3}
    created = client.post(SCHEDULES, json=base, headers=creds.headers).json()["results"]
    path = f"{SCHEDULES}/{created['export_schedule']['unique_id']}"
    body = orjson.dumps({**base, field: "X"}).replace(b'"X"', DEEP.encode())
    assert_error(client.post(SCHEDULES, content=body, headers=creds.headers), 400, field)
    assert_error(client.patch(path, content=_deep_body(field), headers=creds.headers), 400, field)


@pytest.mark.parametrize("field", ["paused", "name", "cron", "window_days", "keep_last"])
def test_null_in_a_schedule_change_gets_400_and_changes_nothing(
    client: TestClient, new_app: NewApp, field: str
) -> None:
    """Found by the fuzzer: ``{"paused": null}`` reached the database as NULL (a 500)."""
    creds = new_app()
    body = {"type": "users", "cron": "@daily", "window_days": 1, "keep_last": 3}
    created = client.post(SCHEDULES, json=body, headers=creds.headers).json()["results"]
    path = f"{SCHEDULES}/{created['export_schedule']['unique_id']}"
    response = client.patch(path, json={"name": "kept", field: None}, headers=creds.headers)
    assert_error(response, 400, f"{field} must not be null")
    after = client.get(path, headers=creds.headers).json()["results"]
    assert after == created


@pytest.mark.parametrize("kind", ["exports", "imports", "export_schedules"])
@pytest.mark.parametrize("raw_id", ["%00", "abc%00def", "%00" * 40])
def test_a_nul_in_a_record_id_is_not_found(
    client: TestClient, new_app: NewApp, kind: str, raw_id: str
) -> None:
    creds = new_app()
    response = client.get(f"/api/v2.1/rest/{kind}/{raw_id}", headers=creds.headers)
    assert_no_internals(assert_error(response, 404))


def _multipart_with_raw_filename(filename: bytes, content: bytes) -> tuple[bytes, str]:
    """A multipart body whose file part names ``filename`` byte for byte (httpx would
    percent-encode a NUL)."""
    boundary = "chatferry-test-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\nusers\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="'
    ).encode()
    body += filename + b'"\r\nContent-Type: application/json\r\n\r\n' + content
    body += f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize(
    ("filename", "stored"),
    [(b"us\x00ers.json", "users.json"), (b"dir/\x00\x01", "import.json")],
)
def test_a_nul_in_the_upload_filename_is_stored_cleanly(
    client: TestClient, new_app: NewApp, filename: bytes, stored: str
) -> None:
    creds = new_app()
    body, content_type = _multipart_with_raw_filename(filename, orjson.dumps([user("a@x.com")]))
    headers = {**creds.headers, "Content-Type": content_type}
    response = client.post(IMPORTS, content=body, headers=headers)
    assert response.status_code == 200, response.text
    record = wait_import(client, creds, response.json()["results"]["backup_history"]["unique_id"])
    assert record["status"] == "finished", record["errors"]
    assert record["original_filename"] == stored
    listed = client.get(IMPORTS, headers=creds.headers).json()["results"]["backup_histories"]
    assert [r["original_filename"] for r in listed] == [stored]


def test_a_nul_inside_a_string_of_an_import_file_is_a_row_problem(
    client: TestClient, new_app: NewApp
) -> None:
    creds = new_app()
    rows = [user("ok@x.com"), user("bad@x.com", Name="Na\x00me")]
    record = run_import(client, creds, "users", rows)
    assert record["status"] == "failed"
    assert [(p["row"], p["field"]) for p in record["errors"]["Data"]] == [(2, "Name")]
    assert "NUL" in record["errors"]["Data"][0]["message"]
    assert_no_internals(orjson.dumps(record).decode())


# --- bounded work ---------------------------------------------------------------------


def test_a_4_mb_file_of_empty_objects_is_refused_by_the_row_cap(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    content = b"[" + b"{}," * 1_398_100 + b"{}]"
    assert len(content) <= runtime.settings.import_max_bytes
    record = run_import(client, creds, "users", content)
    assert record["status"] == "failed"
    assert record["errors"] == {
        "Message": "the file has 1,398,101 rows, over the limit of 100,000 rows per import "
        "file (the CHATFERRY_IMPORT_MAX_ROWS setting): split it into smaller files",
        "Data": None,
    }
    assert stored_files(runtime) == []  # the upload is gone too
