"""GET /stats/daily: rows per local day (DST and odd offsets included) and backup coverage."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from chatferry.db.engine import transaction
from chatferry.db.models import Export, User
from chatferry.runtime import Runtime
from support.apps import Credentials, create_test_app
from support.exports import create_export, export_and_wait
from support.http import API, EXPORTS, assert_error
from support.rows import add_users, app_pk

STATS = f"{API}/stats/daily"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def stats(client: TestClient, creds: Credentials, **params: str) -> dict[str, Any]:
    response = client.get(STATS, params=params, headers=creds.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == 200
    results: dict[str, Any] = body["results"]
    return results


def rows_by_day(results: dict[str, Any]) -> dict[str, int]:
    return {day["date"]: day["rows"] for day in results["days"]}


def backed_up_days(results: dict[str, Any]) -> list[str]:
    return [day["date"] for day in results["days"] if day["backed_up"]]


# Around New York's DST changes: 2024-03-10 has 23 hours, 2024-11-03 has 25.
NEW_YORK_MOMENTS = [
    "2024-03-10T04:59:59",  # 03-09 23:59:59 EST
    "2024-03-10T05:00:00",  # 03-10 00:00:00 EST
    "2024-03-11T03:59:59",  # 03-10 23:59:59 EDT
    "2024-03-11T04:00:00",  # 03-11 00:00:00 EDT
    "2024-11-03T03:59:59",  # 11-02 23:59:59 EDT
    "2024-11-03T04:00:00",  # 11-03 00:00:00 EDT
    "2024-11-04T04:59:59",  # 11-03 23:59:59 EST (25 hours later)
    "2024-11-04T05:00:00",  # 11-04 00:00:00 EST
]


def test_days_follow_the_apps_timezone_across_dst_changes(
    client: TestClient, runtime: Runtime
) -> None:
    creds = create_test_app(runtime, "dst", "America/New_York")
    add_users(runtime, creds.app_id, [utc(m) for m in NEW_YORK_MOMENTS])
    spring = stats(client, creds, type="users", start_date="2024-03-09", end_date="2024-03-11")
    assert rows_by_day(spring) == {"2024-03-09": 1, "2024-03-10": 2, "2024-03-11": 1}
    autumn = stats(client, creds, type="users", start_date="2024-11-02", end_date="2024-11-04")
    assert rows_by_day(autumn) == {"2024-11-02": 1, "2024-11-03": 2, "2024-11-04": 1}
    assert autumn["timezone"] == "America/New_York"


def test_a_days_count_is_what_an_export_of_that_day_holds(
    client: TestClient, runtime: Runtime
) -> None:
    creds = create_test_app(runtime, "dst", "America/New_York")
    add_users(runtime, creds.app_id, [utc(m) for m in NEW_YORK_MOMENTS])
    for day in ("2024-03-10", "2024-11-03", "2024-11-04"):
        record = export_and_wait(client, creds.headers, type="users", start_date=day, end_date=day)
        counted = stats(client, creds, type="users", start_date=day, end_date=day)
        assert counted["days"][0]["rows"] == record["total_rows"], day


def test_half_hour_offsets(client: TestClient, runtime: Runtime) -> None:
    creds = create_test_app(runtime, "india", "Asia/Kolkata")
    add_users(runtime, creds.app_id, [utc("2024-01-01T18:29:59"), utc("2024-01-01T18:30:00")])
    results = stats(client, creds, type="users", start_date="2024-01-01", end_date="2024-01-02")
    assert rows_by_day(results) == {"2024-01-01": 1, "2024-01-02": 1}


def test_only_this_apps_rows_of_this_type_count(client: TestClient, runtime: Runtime) -> None:
    mine, other = create_test_app(runtime, "mine"), create_test_app(runtime, "other")
    add_users(runtime, mine.app_id, [utc("2024-05-01T10:00:00")] * 3)
    add_users(runtime, other.app_id, [utc("2024-05-01T10:00:00")] * 5)
    day = {"start_date": "2024-05-01", "end_date": "2024-05-01"}
    assert stats(client, mine, type="users", **day)["days"][0]["rows"] == 3
    assert stats(client, mine, type="rooms", **day)["days"][0]["rows"] == 0
    assert stats(client, mine, type="comments", **day)["days"][0]["rows"] == 0


def test_the_answer_has_every_day_the_limit_and_the_spec_shape(
    client: TestClient, runtime: Runtime
) -> None:
    creds = create_test_app(runtime)
    results = stats(client, creds, type="comments", start_date="2024-02-27", end_date="2024-03-02")
    assert [d["date"] for d in results["days"]] == [
        "2024-02-27",
        "2024-02-28",
        "2024-02-29",
        "2024-03-01",
        "2024-03-02",
    ]
    assert all(set(d) == {"date", "rows", "backed_up", "changed"} for d in results["days"])
    assert results["limit"] == 5000
    assert stats(client, creds, type="users")["limit"] == 1000
    assert results["max_export_days"] == 30


def test_defaults_are_the_90_days_up_to_today_in_the_apps_timezone(
    client: TestClient, runtime: Runtime
) -> None:
    creds = create_test_app(runtime, "kiribati", "Pacific/Kiritimati")  # UTC+14: often a day ahead
    today = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    results = stats(client, creds, type="rooms")
    assert results["end_date"] == today.isoformat()
    assert results["today"] == today.isoformat()
    assert results["start_date"] == (today - timedelta(days=89)).isoformat()
    assert len(results["days"]) == 90
    only_end = stats(client, creds, type="rooms", end_date="2024-12-31")
    assert only_end["start_date"] == "2024-10-03"


def test_366_days_is_the_most(client: TestClient, runtime: Runtime) -> None:
    creds = create_test_app(runtime)
    results = stats(client, creds, type="users", start_date="2024-01-01", end_date="2024-12-31")
    assert len(results["days"]) == 366
    response = client.get(
        STATS,
        params={"type": "users", "start_date": "2023-12-31", "end_date": "2024-12-31"},
        headers=creds.headers,
    )
    assert_error(response, 400, "367 days", "maximum of 366")
    assert response.json()["error"]["code"] == "stats_range_limit"


@pytest.mark.parametrize(
    ("params", "fragments"),
    [
        ({}, ["type is required"]),
        ({"type": "messages"}, ["type 'messages' is not valid", '"comments"']),
        ({"type": "users", "start_date": "2024-13-01"}, ["start_date", "YYYY-MM-DD"]),
        ({"type": "users", "end_date": "yesterday"}, ["end_date", "not a valid date"]),
        ({"type": "users", "end_date": "2024-1-1"}, ["end_date", "YYYY-MM-DD"]),
        ({"type": "users", "end_date": "\uff12\uff10\uff12\uff14-01-01"}, ["end_date"]),
        ({"type": "users", "start_date": "2024-03-02", "end_date": "2024-03-01"}, ["after"]),
        ({"type": "users", "start_date": "9999-12-30", "end_date": "9999-12-31"}, ["range"]),
        ({"type": "users", "start_date": "0001-01-01", "end_date": "0001-01-02"}, ["range"]),
        ({"type": "users", "end_date": "0001-01-05"}, ["range"]),
    ],
)
def test_bad_requests_get_a_400_that_says_what_to_fix(
    client: TestClient, runtime: Runtime, params: dict[str, str], fragments: list[str]
) -> None:
    creds = create_test_app(runtime, "jakarta", "Asia/Jakarta")  # UTC+7: year 1 midnight overflows
    response = client.get(STATS, params=params, headers=creds.headers)
    assert_error(response, 400, *fragments)


def test_credentials_are_required(client: TestClient, runtime: Runtime) -> None:
    creds = create_test_app(runtime)
    assert_error(client.get(STATS, params={"type": "users"}), 401, "QISCUS-SDK-APP-ID")
    wrong = {**creds.headers, "QISCUS-SDK-SECRET": "not-the-secret"}
    assert_error(client.get(STATS, params={"type": "users"}, headers=wrong), 401, "invalid")


def test_days_a_finished_export_covers_are_backed_up(client: TestClient, runtime: Runtime) -> None:
    creds = create_test_app(runtime)
    add_users(runtime, creds.app_id, [utc("2024-04-03T12:00:00")])
    export_and_wait(
        client, creds.headers, type="users", start_date="2024-04-02", end_date="2024-04-04"
    )
    window = {"start_date": "2024-04-01", "end_date": "2024-04-05"}
    assert backed_up_days(stats(client, creds, type="users", **window)) == [
        "2024-04-02",
        "2024-04-03",
        "2024-04-04",
    ]
    # Another type, or another app, is not covered by it.
    assert backed_up_days(stats(client, creds, type="rooms", **window)) == []
    assert backed_up_days(stats(client, create_test_app(runtime), type="users", **window)) == []


def test_an_export_reaching_past_the_range_is_clipped(client: TestClient, runtime: Runtime) -> None:
    creds = create_test_app(runtime)
    export_and_wait(
        client, creds.headers, type="rooms", start_date="2024-04-01", end_date="2024-04-30"
    )
    results = stats(client, creds, type="rooms", start_date="2024-04-29", end_date="2024-05-02")
    assert backed_up_days(results) == ["2024-04-29", "2024-04-30"]


def set_export(rt: Runtime, unique_id: str, **values: Any) -> None:
    with transaction(rt.sessions) as session:
        session.execute(update(Export).where(Export.unique_id == unique_id).values(**values))


def test_exports_without_a_file_cover_nothing(client: TestClient, runtime: Runtime) -> None:
    creds = create_test_app(runtime)
    day = {"start_date": "2024-06-01", "end_date": "2024-06-01"}
    expired = export_and_wait(client, creds.headers, type="users", **day)
    set_export(runtime, expired["unique_id"], storage_key="", expired_at=datetime.now(UTC))
    failed = export_and_wait(client, creds.headers, type="users", **day)
    set_export(runtime, failed["unique_id"], status="failed")
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    create_export(client, creds.headers, type="users", run_at=later, **day)  # scheduled
    assert backed_up_days(stats(client, creds, type="users", **day)) == []


def test_a_deleted_export_no_longer_covers_its_days(client: TestClient, runtime: Runtime) -> None:
    creds = create_test_app(runtime)
    day = {"start_date": "2024-06-01", "end_date": "2024-06-01"}
    record = export_and_wait(client, creds.headers, type="comments", **day)
    assert backed_up_days(stats(client, creds, type="comments", **day)) == ["2024-06-01"]
    assert (
        client.delete(f"{EXPORTS}/{record['unique_id']}", headers=creds.headers).status_code == 200
    )
    assert backed_up_days(stats(client, creds, type="comments", **day)) == []


def changed_days(results: dict[str, Any]) -> list[str]:
    return [day["date"] for day in results["days"] if day["changed"]]


def test_a_day_whose_rows_changed_after_its_export_is_changed_not_backed_up(
    client: TestClient, runtime: Runtime
) -> None:
    creds = create_test_app(runtime, "jakarta", "Asia/Jakarta")
    add_users(runtime, creds.app_id, [utc("2024-04-02T05:00:00")] * 13)  # 12:00 in Jakarta
    add_users(runtime, creds.app_id, [utc("2024-04-03T05:00:00")] * 2)
    window = {"start_date": "2024-04-01", "end_date": "2024-04-04"}
    export_and_wait(client, creds.headers, type="users", **window)
    before = stats(client, creds, type="users", **window)
    assert backed_up_days(before) == ["2024-04-01", "2024-04-02", "2024-04-03", "2024-04-04"]
    assert changed_days(before) == []

    # One more user on 04-02 (an import of a late row): that day's file holds 13 of 14.
    add_users(runtime, creds.app_id, [utc("2024-04-02T06:00:00")])
    after = stats(client, creds, type="users", **window)
    assert backed_up_days(after) == ["2024-04-01", "2024-04-03", "2024-04-04"]
    assert changed_days(after) == ["2024-04-02"]
    assert rows_by_day(after)["2024-04-02"] == 14

    # A new export of that day holds it as it is now: backed up, no longer changed.
    day = {"start_date": "2024-04-02", "end_date": "2024-04-02"}
    export_and_wait(client, creds.headers, type="users", **day)
    again = stats(client, creds, type="users", **window)
    assert backed_up_days(again) == window_days(window)
    assert changed_days(again) == []


def window_days(window: dict[str, str]) -> list[str]:
    first, last = (datetime.fromisoformat(window[k]).date() for k in ("start_date", "end_date"))
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def test_an_export_keeps_its_rows_per_day_and_the_file_is_unchanged(
    client: TestClient, runtime: Runtime
) -> None:
    creds = create_test_app(runtime)
    add_users(runtime, creds.app_id, [utc("2024-07-01T10:00:00")] * 3)
    add_users(runtime, creds.app_id, [utc("2024-07-03T10:00:00")])
    record = export_and_wait(
        client, creds.headers, type="users", start_date="2024-07-01", end_date="2024-07-03"
    )
    with transaction(runtime.sessions) as session:
        stored = session.scalar(
            select(Export.day_rows).where(Export.unique_id == record["unique_id"])
        )
    assert stored is not None and json.loads(stored) == [3, 0, 1]
    assert record["total_rows"] == 4
    assert "day_rows" not in record  # the record the spec shows is as it was


def test_an_export_written_before_day_counts_were_kept_is_compared_as_a_whole(
    client: TestClient, runtime: Runtime
) -> None:
    creds = create_test_app(runtime)
    add_users(runtime, creds.app_id, [utc("2024-08-01T10:00:00")] * 2)
    window = {"start_date": "2024-08-01", "end_date": "2024-08-02"}
    record = export_and_wait(client, creds.headers, type="users", **window)
    set_export(runtime, record["unique_id"], day_rows=None)
    assert backed_up_days(stats(client, creds, type="users", **window)) == window_days(window)
    add_users(runtime, creds.app_id, [utc("2024-08-02T10:00:00")])
    results = stats(client, creds, type="users", **window)
    assert backed_up_days(results) == []
    assert changed_days(results) == window_days(window)


def test_deleted_rows_make_a_day_changed(client: TestClient, runtime: Runtime) -> None:
    creds = create_test_app(runtime)
    add_users(runtime, creds.app_id, [utc("2024-09-01T10:00:00")] * 2)
    day = {"start_date": "2024-09-01", "end_date": "2024-09-01"}
    export_and_wait(client, creds.headers, type="users", **day)
    with transaction(runtime.sessions) as session:
        mine = select(User).where(User.app_pk == app_pk(runtime, creds.app_id))
        first = session.scalars(mine.order_by(User.id)).first()
        assert first is not None
        session.delete(first)
    assert changed_days(stats(client, creds, type="users", **day)) == ["2024-09-01"]
