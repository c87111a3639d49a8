"""POST/GET/DELETE /exports through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from chatferry.apps.service import update_app
from chatferry.db.engine import transaction
from chatferry.db.models import Export, Job, table_of
from chatferry.runtime import Runtime
from support.apps import NewApp
from support.db import lock_waiters
from support.exports import (
    SPEC_KEYS,
    barrier_export,
    create_export,
    download_json,
    export_and_wait,
    get_record,
    stored_files,
    wait_done,
    wait_finished,
)
from support.http import EXPORTS, RFC3339_RE, UUID_RE, assert_error
from support.rows import add_users, app_pk
from support.waiting import wait_for


def wait_until_blocked(database_url: str) -> None:
    """Waits until a request waits for this test's open write transaction.

    On PostgreSQL the wait is visible (a connection waiting for a lock); SQLite's busy
    handler has no visible state, so there the request gets a fixed head start.
    """
    if database_url.startswith("postgresql"):
        wait_for(lambda: lock_waiters(database_url) > 0, timeout=10)
    else:
        time.sleep(0.4)


def export_count(rt: Runtime) -> int:
    with transaction(rt.sessions) as session:
        return len(session.scalars(select(Export.id)).all())


def today_in(zone: str) -> date:
    return datetime.now(ZoneInfo(zone)).date()


# --- POST /exports: the record ---------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "zone", "offset"),
    [
        ("comments", "Asia/Jakarta", "+07:00"),
        ("users", "Asia/Kathmandu", "+05:45"),
        ("rooms", "UTC", "+00:00"),
    ],
)
def test_create_returns_the_spec_record_in_the_envelope(
    client: TestClient, new_app: NewApp, resource: str, zone: str, offset: str
) -> None:
    creds = new_app(timezone=zone)
    before = datetime.now(UTC).replace(microsecond=0)
    response = client.post(
        EXPORTS,
        json={"type": resource, "start_date": "2017-01-01", "end_date": "2017-01-05"},
        headers=creds.headers,
    )
    after = datetime.now(UTC)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"results", "status"}
    assert body["status"] == 200
    record = body["results"]
    assert set(record) >= SPEC_KEYS, SPEC_KEYS - set(record)

    created_at = record["created_at"]
    assert RFC3339_RE.match(created_at), created_at
    assert created_at.endswith(offset)
    moment = datetime.fromisoformat(created_at)
    assert before <= moment <= after
    assert record["download_url"] == ""
    assert record["error_message"] == ""
    assert record["original_filename"] == f"{created_at}_exported_{resource}.json"
    assert record["percentage"] == 0
    assert record["resource_name"] == resource
    assert record["size"] == 0
    assert record["status"] == "started"
    assert record["total_rows"] == 0
    assert UUID_RE.match(record["unique_id"]), record["unique_id"]
    assert record["start_date"] == "2017-01-01"
    assert record["end_date"] == "2017-01-05"
    for key in ("percentage", "size", "total_rows"):
        assert type(record[key]) is int

    fetched = get_record(client, creds.headers, record["unique_id"])
    assert fetched["created_at"] == created_at
    assert fetched["original_filename"] == record["original_filename"]


def test_each_export_gets_its_own_unique_id(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    ids = {create_export(client, creds.headers, type="users")["unique_id"] for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Jakarta"])
def test_missing_dates_default_to_the_last_30_days_in_the_app_timezone(
    client: TestClient, new_app: NewApp, zone: str
) -> None:
    creds = new_app(timezone=zone)
    first = today_in(zone)
    record = create_export(client, creds.headers, type="users")
    last = today_in(zone)
    end = date.fromisoformat(record["end_date"])
    assert end in {first, last}
    assert date.fromisoformat(record["start_date"]) == end - timedelta(days=30)


def test_the_default_end_date_follows_the_app_timezone_not_utc(
    client: TestClient, new_app: NewApp
) -> None:
    # UTC+14 and UTC-11 are always on different calendar days.
    east = new_app("east", timezone="Pacific/Kiritimati")
    west = new_app("west", timezone="Pacific/Pago_Pago")
    east_end = create_export(client, east.headers, type="rooms")["end_date"]
    west_end = create_export(client, west.headers, type="rooms")["end_date"]
    assert date.fromisoformat(east_end) > date.fromisoformat(west_end)


def test_one_missing_date_is_derived_from_the_other(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    only_end = create_export(client, creds.headers, type="users", end_date="2020-03-01")
    assert (only_end["start_date"], only_end["end_date"]) == ("2020-01-31", "2020-03-01")

    start = today_in("UTC") - timedelta(days=10)
    only_start = create_export(client, creds.headers, type="users", start_date=start.isoformat())
    assert only_start["start_date"] == start.isoformat()
    assert date.fromisoformat(only_start["end_date"]) >= today_in("UTC") - timedelta(days=1)

    for empty in (None, ""):
        record = create_export(
            client, creds.headers, type="users", start_date=empty, end_date="2020-03-01"
        )
        assert record["start_date"] == "2020-01-31"


def test_a_range_of_exactly_30_days_and_a_single_day_are_accepted(
    client: TestClient, new_app: NewApp
) -> None:
    creds = new_app()
    record = create_export(
        client, creds.headers, type="comments", start_date="2017-01-01", end_date="2017-01-31"
    )
    assert (record["start_date"], record["end_date"]) == ("2017-01-01", "2017-01-31")
    one_day = create_export(
        client, creds.headers, type="comments", start_date="2024-02-29", end_date="2024-02-29"
    )
    assert one_day["start_date"] == one_day["end_date"] == "2024-02-29"


# --- POST /exports: refused requests -----------------------------------------------------

BAD_BODIES: list[tuple[str, Any, tuple[str, ...]]] = [
    ("unknown type", {"type": "messages"}, ("messages", "users", "rooms", "comments")),
    ("missing type", {"start_date": "2017-01-01"}, ("type", "required")),
    ("empty type", {"type": ""}, ("type",)),
    ("null type", {"type": None}, ("type",)),
    ("type a number", {"type": 5}, ("type",)),
    ("type a list", {"type": ["users"]}, ("type",)),
    ("type a object", {"type": {"users": 1}}, ("type",)),
    ("type wrong case", {"type": "Users"}, ("type", "Users")),
    ("short date", {"type": "users", "start_date": "2017-1-5"}, ("start_date", "2017-1-5")),
    ("month 13", {"type": "users", "start_date": "2017-13-01"}, ("start_date", "2017-13-01")),
    ("30 february", {"type": "users", "end_date": "2017-02-30"}, ("end_date", "2017-02-30")),
    ("date as int", {"type": "users", "start_date": 20170105}, ("start_date", "string")),
    ("iso week date", {"type": "users", "end_date": "2017-W01-1"}, ("end_date", "YYYY-MM-DD")),
    ("with time", {"type": "users", "end_date": "2017-01-05T00:00"}, ("end_date",)),
    ("slashes", {"type": "users", "end_date": "2017/01/05"}, ("end_date", "YYYY-MM-DD")),
    (
        "start after end",
        {"type": "users", "start_date": "2017-01-05", "end_date": "2017-01-01"},
        ("start_date", "after", "end_date"),
    ),
    (
        "31 days",
        {"type": "users", "start_date": "2017-01-01", "end_date": "2017-02-01"},
        ("31", "30"),
    ),
    (
        "a year",
        {"type": "users", "start_date": "2016-01-01", "end_date": "2017-01-01"},
        ("366", "30"),
    ),
    ("json array", [{"type": "users"}], ("object",)),
    ("json string", "users", ("object",)),
    ("json null", None, ("object",)),
]


def test_bad_request_bodies_get_400_envelopes_that_say_what_is_wrong(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    problems = []
    for name, body, fragments in BAD_BODIES:
        response = client.post(EXPORTS, json=body, headers=creds.headers)
        try:
            assert_error(response, 400, *fragments)
        except AssertionError as exc:
            problems.append(f"{name}: {exc}")
    assert not problems, "\n".join(problems)
    assert export_count(runtime) == 0


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"type=users&start_date=2017-01-01", "JSON"),
        (b'{"type": "users",', "JSON"),
        (b"{'type': 'users'}", "JSON"),
        (b"", "empty"),
        (b"  \n\t ", "empty"),
        (b"\xff\xfe{}", "JSON"),
    ],
    ids=["form", "truncated", "single-quotes", "empty", "whitespace", "not-utf8"],
)
def test_bodies_that_are_not_json_get_400(
    client: TestClient, new_app: NewApp, runtime: Runtime, content: bytes, fragment: str
) -> None:
    creds = new_app()
    headers = {**creds.headers, "Content-Type": "application/json"}
    response = client.post(EXPORTS, content=content, headers=headers)
    assert_error(response, 400, fragment)
    assert export_count(runtime) == 0


def test_json_is_read_whatever_the_content_type(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    response = client.post(
        EXPORTS,
        content=b'{"type": "rooms"}',
        headers={**creds.headers, "Content-Type": "text/plain"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"]["resource_name"] == "rooms"


def test_a_body_over_64_kb_gets_413(client: TestClient, new_app: NewApp, runtime: Runtime) -> None:
    creds = new_app()
    big = {"type": "users", "padding": "x" * (64 * 1024)}
    assert_error(client.post(EXPORTS, json=big, headers=creds.headers), 413, "64 KB")

    def chunks() -> Any:  # no Content-Length: the limit must hold on the stream too
        yield b'{"type": "users", "padding": "'
        for _ in range(100):
            yield b"y" * 1024
        yield b'"}'

    response = client.post(EXPORTS, content=chunks(), headers=creds.headers)
    assert_error(response, 413, "64 KB")
    assert export_count(runtime) == 0

    just_under = {"type": "users", "padding": "z" * (60 * 1024)}
    assert client.post(EXPORTS, json=just_under, headers=creds.headers).status_code == 200


# --- dates are whole days in the app's timezone ------------------------------------------


def test_the_window_is_whole_local_days_around_midnight(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app(timezone="Asia/Jakarta")  # UTC+7, no DST
    # 2024-03-10 in Jakarta is [2024-03-09T17:00Z, 2024-03-10T17:00Z).
    moments = {
        "before_start": datetime(2024, 3, 9, 16, 59, 59, 999999, tzinfo=UTC),
        "at_start": datetime(2024, 3, 9, 17, 0, 0, tzinfo=UTC),
        "utc_midnight": datetime(2024, 3, 10, 0, 0, 0, tzinfo=UTC),
        "last_moment": datetime(2024, 3, 10, 16, 59, 59, 999999, tzinfo=UTC),
        "at_end": datetime(2024, 3, 10, 17, 0, 0, tzinfo=UTC),
        "utc_day_end": datetime(2024, 3, 10, 23, 59, 59, tzinfo=UTC),
    }
    names = list(moments)
    emails = dict(zip(names, add_users(runtime, creds.app_id, list(moments.values())), strict=True))
    by_email = {email: name for name, email in emails.items()}

    record = export_and_wait(
        client, creds.headers, type="users", start_date="2024-03-10", end_date="2024-03-10"
    )
    rows = download_json(client, record)
    assert [by_email[r["Email"]] for r in rows] == ["at_start", "utc_midnight", "last_moment"]
    assert record["total_rows"] == 3
    last = next(r for r in rows if r["Email"] == emails["last_moment"])
    assert datetime.fromisoformat(last["CreateAt"]) == moments["last_moment"]

    # The same day for the same rows, once the app lives in UTC.
    with transaction(runtime.sessions) as session:
        update_app(session, creds.app_id, timezone="UTC")
    record = export_and_wait(
        client, creds.headers, type="users", start_date="2024-03-10", end_date="2024-03-10"
    )
    rows = download_json(client, record)
    assert [by_email[r["Email"]] for r in rows] == [
        "utc_midnight",
        "last_moment",
        "at_end",
        "utc_day_end",
    ]


def test_a_multi_day_window_includes_both_end_days_whole(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app(timezone="America/New_York")  # DST starts 2024-03-10 02:00 local
    instants = [
        datetime(2024, 3, 8, 4, 59, 59, tzinfo=UTC),  # 03-07 23:59:59 EST: out
        datetime(2024, 3, 8, 5, 0, 0, tzinfo=UTC),  # 03-08 00:00 EST: in
        datetime(2024, 3, 11, 3, 59, 59, tzinfo=UTC),  # 03-10 23:59:59 EDT: in
        datetime(2024, 3, 11, 4, 0, 0, tzinfo=UTC),  # 03-11 00:00 EDT: out
    ]
    emails = add_users(runtime, creds.app_id, instants)
    record = export_and_wait(
        client, creds.headers, type="users", start_date="2024-03-08", end_date="2024-03-10"
    )
    assert [r["Email"] for r in download_json(client, record)] == emails[1:3]


# --- row limits ------------------------------------------------------------------------


@pytest.mark.parametrize("extra_env", [{"CHATFERRY_EXPORT_MAX_USERS": "2"}], ids=["max2"])
def test_the_deployment_row_limit_refuses_the_request_with_a_helpful_message(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    now = datetime.now(UTC)
    add_users(runtime, creds.app_id, [now - timedelta(days=d, minutes=1) for d in (0, 1, 2)])

    response = client.post(EXPORTS, json={"type": "users"}, headers=creds.headers)
    message = assert_error(response, 400, "3", "2", "CHATFERRY_EXPORT_MAX_USERS", "start_date")
    assert "limit" in message.lower()
    assert export_count(runtime) == 0
    # Extension keys next to the message, for clients that split the window.
    assert response.json()["error"] == {
        "message": message,
        "code": "export_row_limit",
        "resource": "users",
        "rows": 3,
        "limit": 2,
        "setting": "CHATFERRY_EXPORT_MAX_USERS",
    }
    too_long = client.post(
        EXPORTS,
        json={"type": "users", "start_date": "2017-01-01", "end_date": "2017-02-01"},
        headers=creds.headers,
    ).json()["error"]
    assert (too_long["code"], too_long["days"], too_long["max_days"]) == (
        "export_range_limit",
        31,
        30,
    )

    # The limit counts the rows in the requested window only.
    today = today_in("UTC")
    record = export_and_wait(
        client,
        creds.headers,
        type="users",
        start_date=(today - timedelta(days=1)).isoformat(),
        end_date=today.isoformat(),
    )
    assert record["total_rows"] == 2
    assert len(download_json(client, record)) == 2
    # Other resources keep their own (default) limits.
    assert create_export(client, creds.headers, type="rooms")["status"] == "started"


def test_a_per_app_limit_applies_to_that_app_only(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    limited = new_app("limited")
    other = new_app("other")
    now = datetime.now(UTC)
    moments = [now - timedelta(minutes=m) for m in (1, 2, 3)]
    add_users(runtime, limited.app_id, moments)
    add_users(runtime, other.app_id, moments)
    with transaction(runtime.sessions) as session:
        update_app(session, limited.app_id, limits={"export_max_users": 2})

    response = client.post(EXPORTS, json={"type": "users"}, headers=limited.headers)
    assert_error(response, 400, "3 users", "2", f"apps update {limited.app_id}", "max-users")
    assert export_and_wait(client, other.headers, type="users")["total_rows"] == 3

    # Raising it again (0 = the deployment default) lets the same request through.
    with transaction(runtime.sessions) as session:
        update_app(session, limited.app_id, limits={"export_max_users": 0})
    record = export_and_wait(client, limited.headers, type="users")
    assert record["total_rows"] == 3


def test_the_row_limit_at_exactly_the_limit_is_accepted(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    now = datetime.now(UTC)
    add_users(runtime, creds.app_id, [now - timedelta(minutes=m) for m in (1, 2)])
    with transaction(runtime.sessions) as session:
        update_app(session, creds.app_id, limits={"export_max_users": 2})
    record = export_and_wait(client, creds.headers, type="users")
    assert record["total_rows"] == 2


SLOW_BATCHES = {"CHATFERRY_EXPORT_BATCH_SIZE": "1", "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.15"}


@pytest.mark.parametrize("extra_env", [SLOW_BATCHES], ids=["slow"])
def test_rows_added_while_the_job_runs_stay_out_of_its_file(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    """The job reads one snapshot: the file holds the rows committed when it began."""
    creds = new_app()
    now = datetime.now(UTC)
    early = add_users(
        runtime, creds.app_id, [now - timedelta(minutes=m) for m in range(20, 15, -1)]
    )
    unique_id = create_export(client, creds.headers, type="users")["unique_id"]
    wait_for(lambda: get_record(client, creds.headers, unique_id)["percentage"] > 0)
    # Later than the rows already read: a page-by-page reader would still reach them.
    add_users(runtime, creds.app_id, [now - timedelta(minutes=m) for m in (3, 2, 1)], "late")

    record = wait_finished(client, creds.headers, unique_id)
    assert record["total_rows"] == 5
    assert [row["Email"] for row in download_json(client, record)] == early


@pytest.mark.parametrize(
    "extra_env",
    [{**SLOW_BATCHES, "CHATFERRY_EXPORT_MAX_USERS": "6", "CHATFERRY_WORKER_CONCURRENCY": "1"}],
    ids=["slow-one-worker"],
)
def test_rows_added_before_the_job_starts_count_against_the_limit(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    """Within the limit at the POST, over it when the job counts: the job fails with
    the count it found, and no file stays behind."""
    busy, creds = new_app(), new_app()
    now = datetime.now(UTC)
    add_users(runtime, busy.app_id, [now - timedelta(minutes=m) for m in range(1, 6)], "busy")
    add_users(runtime, creds.app_id, [now - timedelta(minutes=m) for m in range(20, 15, -1)])
    blocker = create_export(client, busy.headers, type="users")["unique_id"]
    wait_for(lambda: get_record(client, busy.headers, blocker)["percentage"] > 0)
    # The one worker is busy for about a second: this export waits in the queue.
    unique_id = create_export(client, creds.headers, type="users")["unique_id"]
    add_users(runtime, creds.app_id, [now - timedelta(minutes=m) for m in (3, 2)], "late")

    record = wait_done(client, creds.headers, unique_id)
    assert get_record(client, busy.headers, blocker)["status"] == "finished"
    assert record["status"] == "failed", record
    message = record["error_message"]
    assert "limit of 6" in message, message
    assert "7 users rows" in message, message
    assert "start_date" in message and "CHATFERRY_EXPORT_MAX_USERS" in message
    assert record["download_url"] == ""
    wait_for(lambda: len(stored_files(runtime)) == 1, timeout=5)  # the blocker's file


def test_exports_created_while_workers_write_all_succeed(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    """On SQLite a read-then-write request must wait for the worker's write lock."""
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=1)])

    def post_many(_: int) -> list[int]:
        return [
            client.post(EXPORTS, json={"type": "users"}, headers=creds.headers).status_code
            for _ in range(10)
        ]

    with ThreadPoolExecutor(4) as pool:
        codes = [code for batch in pool.map(post_many, range(4)) for code in batch]
    assert codes == [200] * 40
    assert export_count(runtime) == 40


# --- GET /exports -----------------------------------------------------------------------


def test_the_list_is_newest_first_20_a_page(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    created = [
        create_export(client, creds.headers, type="users", end_date="2017-01-01")["unique_id"]
        for _ in range(23)
    ]
    newest_first = created[::-1]

    def page(query: str) -> list[str]:
        response = client.get(f"{EXPORTS}{query}", headers=creds.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"results", "status"} and body["status"] == 200
        records = body["results"]["backup_histories"]
        for record in records:
            assert set(record) >= SPEC_KEYS
        return [r["unique_id"] for r in records]

    assert page("") == newest_first[:20]
    assert page("?page=1") == newest_first[:20]
    assert page("?page=2") == newest_first[20:]
    assert page("?page=3") == []
    assert page("?page=1000") == []
    assert page("?limit=100&page=1000000000") == []  # the largest offset still works
    assert page("?limit=5&page=2") == newest_first[5:10]
    assert page("?limit=100") == newest_first
    assert page("?page=") == newest_first[:20]


def test_bad_paging_parameters_get_400(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    cases = {
        "page=0": "page",
        "page=abc": "page",
        "page=-1": "page",
        "page=1.5": "page",
        "page=%C2%B2": "page",  # superscript two: str.isdigit() says yes, int() says no
        "page=99999999999999999999999": "page",
        "page=1000000001": "page",
        "page=" + "9" * 5000: "page",  # int() refuses over 4300 digits
        "limit=101": "101",
        "limit=0": "limit",
        "limit=x": "limit",
    }
    problems = []
    for query, fragment in cases.items():
        response = client.get(f"{EXPORTS}?{query}", headers=creds.headers)
        try:
            assert_error(response, 400, fragment)
        except AssertionError as exc:
            problems.append(f"{query}: {exc}")
    assert not problems, "\n".join(problems)


# --- GET /exports/{id} ------------------------------------------------------------------


def test_get_by_id_returns_the_record_and_unknown_ids_404(
    client: TestClient, new_app: NewApp
) -> None:
    creds = new_app(timezone="Asia/Jakarta")
    created = create_export(client, creds.headers, type="rooms", end_date="2017-01-01")
    response = client.get(f"{EXPORTS}/{created['unique_id']}", headers=creds.headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "status"} and body["status"] == 200
    assert set(body["results"]) == {"backup_history"}
    record = body["results"]["backup_history"]
    assert record["unique_id"] == created["unique_id"]
    assert record["resource_name"] == "rooms"
    assert record["created_at"] == created["created_at"]

    for unknown in (str(uuid.uuid4()), "not-a-uuid", "x" * 300, "%00", "%E2%9C%93"):
        response = client.get(f"{EXPORTS}/{unknown}", headers=creds.headers)
        assert_error(response, 404)


def test_a_finished_export_reports_its_totals(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    now = datetime.now(UTC)
    add_users(runtime, creds.app_id, [now - timedelta(minutes=m) for m in (1, 2, 3, 4)])
    record = export_and_wait(client, creds.headers, type="users")
    assert record["percentage"] == 100
    assert record["total_rows"] == 4
    assert record["size"] > 0
    assert record["error_message"] == ""
    assert record["download_url"].startswith("http")
    assert RFC3339_RE.match(record["finished_at"])


# --- DELETE /exports/{id} ---------------------------------------------------------------


def test_delete_returns_the_record_removes_the_file_and_forgets_the_id(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=1)])
    keep = export_and_wait(client, creds.headers, type="users")
    record = export_and_wait(client, creds.headers, type="users")
    assert len(stored_files(runtime)) == 2
    unique_id = record["unique_id"]

    response = client.delete(f"{EXPORTS}/{unique_id}", headers=creds.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == 200
    deleted = body["results"]["backup_history"]
    assert set(deleted) >= SPEC_KEYS
    assert deleted["unique_id"] == unique_id
    assert deleted["status"] == "finished"
    assert deleted["total_rows"] == 1
    assert deleted["size"] == record["size"]
    assert deleted["created_at"] == record["created_at"]

    assert_error(client.get(f"{EXPORTS}/{unique_id}", headers=creds.headers), 404, unique_id)
    listed = client.get(EXPORTS, headers=creds.headers).json()["results"]["backup_histories"]
    assert [r["unique_id"] for r in listed] == [keep["unique_id"]]
    files = stored_files(runtime)
    assert len(files) == 1 and keep["unique_id"] in files[0].name
    assert client.get(record["download_url"]).status_code == 404
    assert_error(client.delete(f"{EXPORTS}/{unique_id}", headers=creds.headers), 404)
    # The other export is untouched.
    assert client.get(keep["download_url"]).status_code == 200


@pytest.mark.parametrize(
    "extra_env",
    [
        {
            "CHATFERRY_WORKER_CONCURRENCY": "1",
            "CHATFERRY_EXPORT_BATCH_SIZE": "1",
            "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.1",
        }
    ],
    ids=["one-slow-worker"],
)
def test_deleting_a_running_export_cancels_it_and_leaves_no_file(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    now = datetime.now(UTC)
    add_users(runtime, creds.app_id, [now - timedelta(minutes=m) for m in range(1, 51)])
    unique_id = create_export(client, creds.headers, type="users")["unique_id"]
    wait_for(lambda: get_record(client, creds.headers, unique_id)["percentage"] > 0)

    deleted_at = time.monotonic()
    response = client.delete(f"{EXPORTS}/{unique_id}", headers=creds.headers)
    assert response.status_code == 200, response.text
    deleted = response.json()["results"]["backup_history"]
    assert deleted["unique_id"] == unique_id
    assert deleted["status"] == "cancelled"
    assert deleted["download_url"] == ""
    assert_error(client.get(f"{EXPORTS}/{unique_id}", headers=creds.headers), 404)

    # The only worker thread is free again long before the 50 slow batches (5 s) could
    # have run out: the cancelled job stopped at its next batch.
    record = export_and_wait(client, creds.headers, type="rooms")
    assert time.monotonic() - deleted_at < 2.5
    assert [p.name for p in stored_files(runtime)] == [f"{record['unique_id']}.json"]

    def job_statuses() -> list[str]:
        with transaction(runtime.sessions) as session:
            return sorted(job.status for job in session.scalars(select(Job)))

    # The worker records its job done just after the export's own row says finished.
    wait_for(lambda: job_statuses() == ["cancelled", "done"], timeout=10)


@pytest.mark.parametrize(
    "extra_env",
    [{"CHATFERRY_EXPORT_BATCH_SIZE": "1", "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "1.5"}],
    ids=["slow"],
)
def test_delete_racing_the_job_finishing_still_removes_the_file(
    client: TestClient, new_app: NewApp, runtime: Runtime, database_url: str
) -> None:
    """The job marks the export finished while DELETE is between reading and deleting it.

    The job's last step (file stored, row marked finished) is replayed here inside a
    transaction that stays open while the DELETE request arrives, so the DELETE must wait
    for it; once it commits, DELETE has to remove the file the job just stored.
    """
    creds = new_app()
    now = datetime.now(UTC)
    add_users(runtime, creds.app_id, [now - timedelta(minutes=2), now - timedelta(minutes=1)])
    unique_id = create_export(client, creds.headers, type="users")["unique_id"]
    # The real job has read its first batch and now sleeps 1.5 s.
    wait_for(lambda: get_record(client, creds.headers, unique_id)["percentage"] > 0)

    key = f"exports/{creds.app_id}/{unique_id}.json"
    runtime.store.put_stream(key, iter([b"[]\n"]))
    exports = table_of(Export)
    with ThreadPoolExecutor(1) as pool:
        with runtime.engine.connect() as conn:
            conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                conn.execute(
                    update(exports)
                    .where(exports.c.unique_id == unique_id)
                    .values(status="finished", percentage=100, storage_key=key, size=3)
                )
                pending = pool.submit(
                    client.delete, f"{EXPORTS}/{unique_id}", headers=creds.headers
                )
                wait_until_blocked(database_url)
                assert not pending.done()
        response = pending.result(timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["results"]["backup_history"]["unique_id"] == unique_id
    assert not runtime.store.exists(key)
    assert export_count(runtime) == 0
    # The real job wakes up, sees its export gone and drops its unfinished upload.
    wait_for(lambda: stored_files(runtime) == [], timeout=5)


@pytest.mark.parametrize(
    "extra_env",
    [
        {
            "CHATFERRY_WORKER_CONCURRENCY": "1",
            "CHATFERRY_EXPORT_BATCH_SIZE": "1",
            "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.1",
        }
    ],
    ids=["one-slow-worker"],
)
def test_deleting_while_jobs_write_progress_never_fails(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    """DELETE races with the job's progress writes; it must still succeed every time."""
    creds = new_app()
    now = datetime.now(UTC)
    add_users(runtime, creds.app_id, [now - timedelta(minutes=m) for m in range(1, 30)])
    for _ in range(4):
        unique_id = create_export(client, creds.headers, type="users")["unique_id"]
        wait_for(lambda uid=unique_id: get_record(client, creds.headers, uid)["percentage"] > 0)
        time.sleep(0.05)
        response = client.delete(f"{EXPORTS}/{unique_id}", headers=creds.headers)
        assert response.status_code == 200, response.text
    assert export_count(runtime) == 0
    # Every deleted export's job has stopped once a later export ran on the one worker.
    barrier = barrier_export(client, creds.headers)
    assert [p.name for p in stored_files(runtime)] == [f"{barrier['unique_id']}.json"]


@pytest.mark.parametrize("extra_env", [{"CHATFERRY_WORKER_CONCURRENCY": "1"}], ids=["one-worker"])
def test_deleting_an_export_right_after_creating_it_leaves_nothing(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(minutes=1)])
    unique_id = create_export(client, creds.headers, type="users")["unique_id"]
    assert client.delete(f"{EXPORTS}/{unique_id}", headers=creds.headers).status_code == 200
    assert export_count(runtime) == 0
    # The job, queued or already running, is done with once a later export has run.
    barrier = barrier_export(client, creds.headers)
    assert [p.name for p in stored_files(runtime)] == [f"{barrier['unique_id']}.json"]
    assert export_count(runtime) == 1


# --- unknown routes and methods ---------------------------------------------------------


def test_unknown_routes_and_wrong_methods_get_envelopes(
    client: TestClient, new_app: NewApp
) -> None:
    creds = new_app()
    unique_id = create_export(client, creds.headers, type="users", end_date="2017-01-01")[
        "unique_id"
    ]
    for path in ("/api/v2.1/rest/nothing", "/nothing", "/api/v2.1/rest/exports/a/b/c"):
        assert_error(client.get(path, headers=creds.headers), 404)
    assert_error(client.post("/api/v2.1/rest/backups", headers=creds.headers), 404)

    response = client.put(EXPORTS, json={"type": "users"}, headers=creds.headers)
    assert_error(response, 405)
    assert "POST" in response.headers["allow"]
    assert_error(client.patch(f"{EXPORTS}/{unique_id}", headers=creds.headers), 405)
    assert_error(client.post(f"{EXPORTS}/{unique_id}", headers=creds.headers), 405)
    assert_error(client.delete(EXPORTS, headers=creds.headers), 405)


def test_export_records_are_kept_in_the_database(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    record = create_export(client, creds.headers, type="comments", end_date="2017-01-05")
    with transaction(runtime.sessions) as session:
        export = session.scalar(select(Export).where(Export.unique_id == record["unique_id"]))
        assert export is not None
        assert export.resource_name == "comments"
        assert export.app_pk == app_pk(runtime, creds.app_id)
    wait_finished(client, creds.headers, record["unique_id"])
