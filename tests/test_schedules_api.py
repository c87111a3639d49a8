"""/export_schedules and POST /exports with run_at, through the real app, on both backends."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from chatferry.db.engine import transaction
from chatferry.db.models import Export, ExportSchedule, Job, table_of
from chatferry.runtime import Runtime
from support.apps import Credentials, NewApp
from support.exports import create_export, get_record, wait_finished
from support.http import EXPORTS, RFC3339_RE, SCHEDULES, UUID_RE, assert_error
from support.rows import add_users
from support.waiting import wait_for

BODY = {"type": "comments", "cron": "30 2 * * *", "window_days": 7, "keep_last": 3}


def make_due(runtime: Runtime, *unique_ids: str) -> None:
    """Moves the schedules' next run into the past (one UPDATE)."""
    schedules = table_of(ExportSchedule)
    with runtime.engine.begin() as conn:
        conn.execute(
            update(schedules)
            .where(schedules.c.unique_id.in_(unique_ids))
            .values(next_run_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def wait_for_a_scheduler_pass(client: TestClient, runtime: Runtime, new_app: NewApp) -> None:
    """Returns once the scheduler thread has made a whole pass that began after the call.

    A witness schedule (in an app of its own) is made due now; one pass fires every due
    schedule, so the pass that fires the witness has also seen every schedule that was
    due before this call: the observable event that replaces sleeping.
    """
    witness = new_app("witness")
    uid = create_schedule(client, witness, type="users")["unique_id"]
    make_due(runtime, uid)

    def fired() -> bool:
        listed = client.get(EXPORTS, headers=witness.headers).json()["results"]
        return any(r["schedule_id"] == uid for r in listed["backup_histories"])

    wait_for(fired, timeout=10)


def create_schedule(client: TestClient, creds: Credentials, **body: Any) -> dict[str, Any]:
    response = client.post(SCHEDULES, json={**BODY, **body}, headers=creds.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == 200
    record: dict[str, Any] = response.json()["results"]["export_schedule"]
    return record


# --- /export_schedules -----------------------------------------------------------------


def test_create_returns_the_schedule_in_the_envelope(client: TestClient, new_app: NewApp) -> None:
    creds = new_app(timezone="Asia/Jakarta")
    before = datetime.now(UTC)
    record = create_schedule(client, creds)
    assert set(record) == {
        "unique_id",
        "name",
        "covered_through",
        "type",
        "cron",
        "timezone",
        "window_days",
        "keep_last",
        "paused",
        "next_run_at",
        "last_run_at",
        "created_at",
        "updated_at",
    }
    assert UUID_RE.match(record["unique_id"])
    assert record["type"] == "comments"
    assert record["cron"] == "30 2 * * *"
    assert record["timezone"] == "Asia/Jakarta"
    assert (record["window_days"], record["keep_last"], record["paused"]) == (7, 3, False)
    assert record["last_run_at"] == ""
    assert (record["name"], record["covered_through"]) == ("", "")
    assert RFC3339_RE.match(record["next_run_at"]) and record["next_run_at"].endswith("+07:00")
    next_run = datetime.fromisoformat(record["next_run_at"])
    assert next_run.astimezone(ZoneInfo("Asia/Jakarta")).strftime("%H:%M") == "02:30"
    assert before < next_run <= before + timedelta(days=1)


@pytest.mark.parametrize("alias", ["@daily", "@weekly", "@monthly", " @Daily "])
def test_the_cron_aliases_are_accepted(client: TestClient, new_app: NewApp, alias: str) -> None:
    record = create_schedule(client, new_app(), cron=alias)
    assert record["cron"] == alias.strip().lower()
    local = datetime.fromisoformat(record["next_run_at"])
    assert (local.hour, local.minute) == (0, 0)


def test_get_list_and_paging(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    ids = [create_schedule(client, creds, window_days=n)["unique_id"] for n in range(1, 4)]
    response = client.get(SCHEDULES, params={"limit": "2"}, headers=creds.headers)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [s["unique_id"] for s in results["export_schedules"]] == ids[::-1][:2]
    assert results["meta"] == {"page": 1, "limit": 2, "total": 3}
    page2 = client.get(SCHEDULES, params={"limit": "2", "page": "2"}, headers=creds.headers)
    assert [s["unique_id"] for s in page2.json()["results"]["export_schedules"]] == [ids[0]]
    one = client.get(f"{SCHEDULES}/{ids[1]}", headers=creds.headers)
    assert one.status_code == 200
    assert one.json()["results"]["export_schedule"]["window_days"] == 2
    assert_error(client.get(SCHEDULES, params={"page": "0"}, headers=creds.headers), 400, "page")


def test_another_apps_schedule_is_not_found(client: TestClient, new_app: NewApp) -> None:
    owner, other = new_app(), new_app()
    uid = create_schedule(client, owner)["unique_id"]
    path = f"{SCHEDULES}/{uid}"
    assert_error(client.get(path, headers=other.headers), 404, uid)
    assert_error(client.delete(path, headers=other.headers), 404, uid)
    assert_error(client.patch(path, json={"paused": True}, headers=other.headers), 404, uid)
    assert client.get(SCHEDULES, headers=other.headers).json()["results"]["export_schedules"] == []
    assert client.get(path, headers=owner.headers).status_code == 200
    assert_error(client.get(f"{SCHEDULES}/nope", headers=owner.headers), 404)
    assert_error(client.get(SCHEDULES), 401)


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"type": "messages"}, ("type", "users")),
        ({"type": None}, ("type is required",)),
        ({"cron": None}, ("cron is required",)),
        ({"cron": "not a cron"}, ("cron", "5 fields")),
        ({"cron": "* * * *"}, ("5 fields",)),
        ({"cron": "0 0 * * * *"}, ("5 fields",)),
        ({"cron": "61 * * * *"}, ("not a valid cron",)),
        ({"cron": "0 0 30 2 *"}, ("never matches",)),
        ({"cron": "@hourly"}, ("@daily",)),
        ({"cron": 5}, ("cron",)),
        ({"window_days": 0}, ("window_days", "1 to 30")),
        ({"window_days": 31}, ("window_days", "1 to 30")),
        ({"window_days": "7"}, ("window_days", "whole number")),
        ({"window_days": 1.5}, ("window_days",)),
        ({"window_days": True}, ("window_days",)),
        ({"window_days": None}, ("window_days is required",)),
        ({"keep_last": 0}, ("keep_last",)),
        ({"keep_last": -1}, ("keep_last",)),
        ({"keep_last": "3"}, ("keep_last",)),
        ({"keep_last": None}, ("keep_last is required",)),
        ({"paused": "yes"}, ("paused",)),
    ],
)
def test_bad_schedules_get_400_with_a_message(
    client: TestClient, new_app: NewApp, change: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    creds = new_app()
    body = {**BODY, **change}
    body = {k: v for k, v in body.items() if v is not None}
    assert_error(client.post(SCHEDULES, json=body, headers=creds.headers), 400, *fragments)
    assert client.get(SCHEDULES, headers=creds.headers).json()["results"]["meta"]["total"] == 0


def test_non_object_bodies_get_400(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    assert_error(client.post(SCHEDULES, json=[1], headers=creds.headers), 400, "JSON object")
    assert_error(client.post(SCHEDULES, content=b"{", headers=creds.headers), 400, "JSON")
    assert_error(client.post(SCHEDULES, content=b"", headers=creds.headers), 400, "empty")


def test_pause_and_resume(client: TestClient, new_app: NewApp, runtime: Runtime) -> None:
    creds = new_app()
    uid = create_schedule(client, creds)["unique_id"]
    path = f"{SCHEDULES}/{uid}"
    paused = client.patch(path, json={"paused": True}, headers=creds.headers)
    assert paused.status_code == 200, paused.text
    assert paused.json()["results"]["export_schedule"]["paused"] is True
    # While paused its time passes; resuming does not make up the missed run.
    make_due(runtime, uid)
    wait_for_a_scheduler_pass(client, runtime, new_app)
    resumed = client.patch(path, json={"paused": False}, headers=creds.headers)
    record = resumed.json()["results"]["export_schedule"]
    assert record["paused"] is False
    assert datetime.fromisoformat(record["next_run_at"]) > datetime.now(UTC)
    assert client.get(EXPORTS, headers=creds.headers).json()["results"]["backup_histories"] == []
    for bad in ({}, {"paused": "true"}, {"paused": True, "colour": "red"}, [True]):
        assert_error(client.patch(path, json=bad, headers=creds.headers), 400, "paused")


def test_delete_returns_the_schedule_and_forgets_it(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    uid = create_schedule(client, creds)["unique_id"]
    deleted = client.delete(f"{SCHEDULES}/{uid}", headers=creds.headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["results"]["export_schedule"]["unique_id"] == uid
    assert_error(client.get(f"{SCHEDULES}/{uid}", headers=creds.headers), 404)
    assert_error(client.delete(f"{SCHEDULES}/{uid}", headers=creds.headers), 404)


def test_a_due_schedule_runs_as_an_ordinary_export_listed_with_its_schedule(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(days=1)])
    uid = create_schedule(client, creds, type="users", window_days=2)["unique_id"]
    make_due(runtime, uid)

    def listed() -> list[dict[str, Any]]:
        response = client.get(EXPORTS, headers=creds.headers)
        records: list[dict[str, Any]] = response.json()["results"]["backup_histories"]
        return records

    [record] = wait_for(listed, timeout=10)
    assert record["schedule_id"] == uid
    finished = wait_finished(client, creds.headers, record["unique_id"])
    assert finished["total_rows"] == 1
    today = datetime.now(UTC).date()
    assert finished["start_date"] == (today - timedelta(days=2)).isoformat()
    assert finished["end_date"] == (today - timedelta(days=1)).isoformat()
    schedule = client.get(f"{SCHEDULES}/{uid}", headers=creds.headers).json()["results"]
    assert schedule["export_schedule"]["last_run_at"] != ""
    wait_for_a_scheduler_pass(client, runtime, new_app)
    assert len(listed()) == 1  # fired once, not on every scheduler pass


# --- POST /exports with run_at ---------------------------------------------------------


def test_a_run_at_export_is_scheduled_and_starts_at_its_time(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(hours=1)])
    run_at = datetime.now(UTC) + timedelta(seconds=2)
    record = create_export(client, creds.headers, type="users", run_at=run_at.isoformat())
    assert record["status"] == "scheduled"
    assert datetime.fromisoformat(record["run_at"]) == run_at.replace(microsecond=0)
    assert record["schedule_id"] == ""
    listed = client.get(EXPORTS, headers=creds.headers).json()["results"]["backup_histories"]
    assert [(r["unique_id"], r["status"]) for r in listed] == [(record["unique_id"], "scheduled")]
    with transaction(runtime.sessions) as session:
        export = session.scalar(select(Export).where(Export.unique_id == record["unique_id"]))
        assert export is not None
        job = session.scalar(select(Job).where(Job.target_id == export.id))
        assert job is not None and job.run_after == run_at
    # Still waiting shortly before its time (the workers poll every 0.1 s).
    while datetime.now(UTC) < run_at - timedelta(milliseconds=300):
        assert get_record(client, creds.headers, record["unique_id"])["status"] == "scheduled"
        time.sleep(0.1)
    finished = wait_finished(client, creds.headers, record["unique_id"])
    assert finished["total_rows"] == 1
    assert datetime.fromisoformat(finished["finished_at"]) >= run_at.replace(microsecond=0)


def test_run_at_without_dates_exports_the_30_days_up_to_its_day(
    client: TestClient, new_app: NewApp
) -> None:
    creds = new_app(timezone="Asia/Jakarta")
    run_at = datetime.now(UTC) + timedelta(days=3)
    record = create_export(client, creds.headers, type="rooms", run_at=run_at.isoformat())
    day = run_at.astimezone(ZoneInfo("Asia/Jakarta")).date()
    assert record["end_date"] == day.isoformat()
    assert record["start_date"] == (day - timedelta(days=30)).isoformat()
    assert record["status"] == "scheduled"
    explicit = create_export(
        client,
        creds.headers,
        type="rooms",
        run_at=run_at.isoformat(),
        start_date="2020-01-01",
        end_date="2020-01-02",
    )
    assert (explicit["start_date"], explicit["end_date"]) == ("2020-01-01", "2020-01-02")
    assert date.fromisoformat(explicit["end_date"]) < day


def test_deleting_a_scheduled_export_cancels_it(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    run_at = datetime.now(UTC) + timedelta(hours=1)
    uid = create_export(client, creds.headers, type="users", run_at=run_at.isoformat())["unique_id"]
    deleted = client.delete(f"{EXPORTS}/{uid}", headers=creds.headers)
    assert deleted.json()["results"]["backup_history"]["status"] == "cancelled"
    with transaction(runtime.sessions) as session:
        assert session.scalars(select(Job.status)).all() == ["cancelled"]


@pytest.mark.parametrize(
    ("run_at", "fragments"),
    [
        ("2020-01-01T00:00:00Z", ("not in the future",)),
        ("2999-01-01T00:00:00+07:00", ("days ahead",)),
        ("tomorrow", ("RFC 3339",)),
        ("2030-01-01T00:00:00", ("RFC 3339", "offset")),
        ("2030-01-01", ("RFC 3339",)),
        ("2030-02-30T00:00:00Z", ("not a valid date",)),
        (1893456000, ("RFC 3339",)),
    ],
)
def test_a_bad_run_at_gets_400_with_a_message(
    client: TestClient, new_app: NewApp, run_at: Any, fragments: tuple[str, ...]
) -> None:
    creds = new_app()
    response = client.post(EXPORTS, json={"type": "users", "run_at": run_at}, headers=creds.headers)
    assert_error(response, 400, "run_at", *fragments)


def test_run_at_refusals_speak_the_apps_time_zone_and_give_the_latest_time(
    client: TestClient, new_app: NewApp
) -> None:
    creds = new_app(timezone="Asia/Jakarta")
    far = "2999-01-01T00:00:00Z"  # 07:00 in Jakarta
    response = client.post(EXPORTS, json={"type": "users", "run_at": far}, headers=creds.headers)
    message = response.json()["error"]["message"]
    assert "2999-01-01 07:00 Asia/Jakarta (UTC+07:00)" in message
    assert message.startswith("the time to run the export (run_at), ")
    latest = datetime.now(ZoneInfo("Asia/Jakarta")) + timedelta(days=366)
    assert f"the latest allowed is {latest:%Y-%m-%d} " in message
    assert "+00:00" not in message

    past = "2020-01-01T00:00:00Z"
    response = client.post(EXPORTS, json={"type": "users", "run_at": past}, headers=creds.headers)
    message = response.json()["error"]["message"]
    assert "2020-01-01 07:00 Asia/Jakarta" in message and "+07:00'" in message


# --- PATCH and run now ----------------------------------------------------------------


def test_patch_changes_name_cron_window_and_keep_last(client: TestClient, new_app: Any) -> None:
    creds = new_app()
    uid = create_schedule(client, creds, name="nightly")["unique_id"]
    path = f"{SCHEDULES}/{uid}"
    change = {"name": "early bird", "cron": "15 4 * * *", "window_days": 2, "keep_last": 9}
    response = client.patch(path, json=change, headers=creds.headers)
    assert response.status_code == 200, response.text
    record = response.json()["results"]["export_schedule"]
    assert {k: record[k] for k in change} == change
    assert record["next_run_at"].endswith("T04:15:00+00:00")
    assert client.get(path, headers=creds.headers).json()["results"]["export_schedule"] == record


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"cron": "61 * * * *"}, ("cron", "not a valid cron")),
        ({"window_days": 0}, ("window_days", "1 to 30")),
        ({"keep_last": True}, ("keep_last", "whole number")),
        ({"name": "x" * 201}, ("name", "200")),
        ({"name": "a\u0000b"}, ("name", "control characters")),
        ({"type": "users"}, ("type", "not a field")),
    ],
)
def test_patch_refuses_bad_values_with_the_create_messages(
    client: TestClient, new_app: Any, change: dict[str, Any], fragments: tuple[str, ...]
) -> None:
    creds = new_app()
    created = create_schedule(client, creds)
    path = f"{SCHEDULES}/{created['unique_id']}"
    assert_error(client.patch(path, json=change, headers=creds.headers), 400, *fragments)
    assert client.get(path, headers=creds.headers).json()["results"]["export_schedule"] == created


def test_run_now_exports_the_uncovered_days_at_once(
    client: TestClient, new_app: Any, runtime: Runtime
) -> None:
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC) - timedelta(days=1)])
    uid = create_schedule(client, creds, type="users", window_days=2)["unique_id"]
    ran = client.post(f"{SCHEDULES}/{uid}/run", headers=creds.headers)
    assert ran.status_code == 200, ran.text
    results = ran.json()["results"]
    [export] = results["backup_histories"]
    assert export["schedule_id"] == uid and export["status"] == "started"
    assert results["export_schedule"]["last_run_at"] != ""
    finished = wait_finished(client, creds.headers, export["unique_id"])
    assert finished["total_rows"] == 1
    # Its days are covered now: another run now has nothing left to export.
    again = client.post(f"{SCHEDULES}/{uid}/run", headers=creds.headers).json()["results"]
    assert again["backup_histories"] == []
    schedule = client.get(f"{SCHEDULES}/{uid}", headers=creds.headers).json()["results"]
    assert schedule["export_schedule"]["covered_through"] == finished["end_date"]
    other = new_app("other")
    assert_error(client.post(f"{SCHEDULES}/{uid}/run", headers=other.headers), 404)
