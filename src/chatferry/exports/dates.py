"""The export date window: whole days in the app's timezone."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from chatferry.errors import BadRequest, show

# Exactly YYYY-MM-DD in ASCII digits (date.fromisoformat alone also takes "2017-W01-1").
_DAY_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Days whose midnight exists in UTC for every UTC offset (-23:59 to +23:59).
FIRST_DAY = date(1, 1, 2)
LAST_DAY = date(9999, 12, 30)


# What a field is, in words, with its API name for the scripts that send it.
_WORDS = {
    "start_date": "the first day (start_date)",
    "end_date": "the last day (end_date)",
    "run_at": "the time to run the export (run_at)",
}


def words(field: str) -> str:
    """``start_date`` -> "the first day (start_date)"."""
    return _WORDS.get(field, field)


def parse_day(value: Any, field: str) -> date | None:
    """``YYYY-MM-DD`` to a date; absent, null or "" mean not given."""
    if value is None or value == "":
        return None
    name = words(field)
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string in the format YYYY-MM-DD, got {show(value)}")
    try:
        if not _DAY_PATTERN.fullmatch(value):
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"{name}, {show(value)}, is not a valid date: use the format YYYY-MM-DD, "
            "e.g. 2017-01-05"
        ) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadRequest(
            f"{name}, {value}, is out of range: use a day from {FIRST_DAY.isoformat()} "
            f"to {LAST_DAY.isoformat()}"
        )
    return day


# RFC 3339 date-time with a required offset ("Z" or +hh:mm); fractions of a second allowed.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# The run_at example the code documents; the OpenAPI document and messages show
# example_run_at() in its place (a fixed date would fall out of the accepted year).
RUN_AT_PLACEHOLDER = "2030-01-05T02:00:00+07:00"


def example_run_at(today: date) -> str:
    """A run_at the API accepts for a day from ``today`` (UTC): 02:00 at +07:00 two days
    later, which is 19:00 UTC the next day."""
    return f"{(today + timedelta(days=2)).isoformat()}T02:00:00+07:00"


def parse_moment(value: Any, field: str) -> datetime | None:
    """An RFC 3339 time with a UTC offset, as aware UTC; absent, null or "" mean none."""
    if value is None or value == "":
        return None
    name = words(field)
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise BadRequest(
            f"{name}, {show(value)}, is not an RFC 3339 time with a UTC offset: "
            f"use e.g. {example_run_at(datetime.now(UTC).date())!r}"
        )
    text = value.upper().replace("Z", "+00:00")
    whole, _, rest = text.partition(".")
    if rest:  # fromisoformat takes at most 6 fraction digits
        digits = rest[: len(rest) - 6]
        text = f"{whole}.{digits[:6].ljust(6, '0')}{rest[-6:]}"
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadRequest(f"{name}, {show(value)}, is not a valid date and time") from None


def _days_before(day: date, days: int) -> date:
    """``day`` minus ``days``, but never before FIRST_DAY (no overflow near year 1)."""
    return FIRST_DAY + timedelta(days=max(0, (day - FIRST_DAY).days - days))


def resolve_window(
    start: date | None, end: date | None, timezone: str, now: datetime, max_days: int
) -> tuple[date, date]:
    """Applies the defaults (end today, start end - max_days) and checks the range."""
    end = end or now.astimezone(ZoneInfo(timezone)).date()
    start = start or _days_before(end, max_days)
    check_order(start, end)
    if (end - start).days > max_days:
        raise BadRequest(
            f"the days {start.isoformat()} to {end.isoformat()} span "
            f"{(end - start).days} days, more than the maximum of {max_days}: "
            f"split them into several exports (the last day may be at most {max_days} "
            f"days after the first, e.g. up to {(start + timedelta(days=max_days)).isoformat()})",
            {"code": "export_range_limit", "days": (end - start).days, "max_days": max_days},
        )
    return start, end


def check_order(start: date, end: date) -> None:
    """The first day must not come after the last."""
    if start > end:
        raise BadRequest(
            f"the first day (start_date) {start.isoformat()} is after the last day "
            f"(end_date) {end.isoformat()}: swap them or pick an earlier first day"
        )


def window_bounds_utc(start: date, end: date, timezone: str) -> tuple[datetime, datetime]:
    """[start 00:00, end+1 00:00) in the app's zone, as naive UTC for the queries."""
    zone = ZoneInfo(timezone)

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time.min, zone).astimezone(UTC).replace(tzinfo=None)

    return midnight(start), midnight(end + timedelta(days=1))
