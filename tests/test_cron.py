"""Cron times in the app's timezone, across DST changes (no database needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chatferry.errors import BadRequest
from chatferry.schedules.cron import latest_run_at_or_before, next_run_after, parse_cron
from chatferry.schedules.scheduler import run_window


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_next_run_is_strictly_after_and_in_the_app_timezone() -> None:
    assert next_run_after("0 2 * * *", "Asia/Jakarta", utc(2026, 5, 10, 18, 59)) == utc(
        2026, 5, 10, 19, 0
    )
    assert next_run_after("0 2 * * *", "Asia/Jakarta", utc(2026, 5, 10, 19, 0)) == utc(
        2026, 5, 11, 19, 0
    )
    assert next_run_after("@monthly", "UTC", utc(2026, 1, 31, 12)) == utc(2026, 2, 1)
    assert next_run_after("@weekly", "UTC", utc(2026, 5, 10, 12)) == utc(2026, 5, 17)  # Sunday


def test_a_daily_time_stays_local_across_dst() -> None:
    zone = "America/New_York"
    # 02:30 does not exist on 2026-03-08 (spring forward): it runs at 03:30 EDT instead.
    assert next_run_after("30 2 * * *", zone, utc(2026, 3, 7, 12)) == utc(2026, 3, 8, 7, 30)
    assert next_run_after("30 2 * * *", zone, utc(2026, 3, 8, 7, 30)) == utc(2026, 3, 9, 6, 30)
    # 01:30 occurs twice on 2026-11-01 (fall back): it runs once, at the first.
    first = next_run_after("30 1 * * *", zone, utc(2026, 10, 31, 12))
    assert first == utc(2026, 11, 1, 5, 30)
    assert next_run_after("30 1 * * *", zone, first) == utc(2026, 11, 2, 6, 30)


def test_latest_run_at_or_before() -> None:
    assert latest_run_at_or_before("*/15 * * * *", "UTC", utc(2026, 1, 1, 0, 15)) == utc(
        2026, 1, 1, 0, 15
    )
    assert latest_run_at_or_before("0 2 * * *", "Asia/Jakarta", utc(2026, 5, 15, 3)) == utc(
        2026, 5, 14, 19
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0  2 * * 1-5", "0 2 * * 1-5"), ("@DAILY", "@daily"), ("*/5 * * * *", "*/5 * * * *")],
)
def test_parse_cron_normalizes(value: str, expected: str) -> None:
    assert parse_cron(value) == expected


@pytest.mark.parametrize(
    "value", ["", "   ", None, 3, "* * *", "0 0 * * * *", "a b c d e", "@reboot", "0 0 31 2 *"]
)
def test_parse_cron_refuses(value: object) -> None:
    with pytest.raises(BadRequest):
        parse_cron(value)


def test_the_run_window_is_the_whole_days_before_the_runs_local_day() -> None:
    # 2026-05-10 19:00 UTC is 2026-05-11 02:00 in Jakarta.
    start, end = run_window(utc(2026, 5, 10, 19), "Asia/Jakarta", 1)
    assert (start.isoformat(), end.isoformat()) == ("2026-05-10", "2026-05-10")
    start, end = run_window(utc(2026, 5, 10, 19), "UTC", 30)
    assert (start.isoformat(), end.isoformat()) == ("2026-04-10", "2026-05-09")
