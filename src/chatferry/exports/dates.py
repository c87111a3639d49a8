"""The export date window: whole days in the app's timezone."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from chatferry.errors import BadRequest

# Exactly YYYY-MM-DD in ASCII digits (date.fromisoformat alone also takes "2017-W01-1").
_DAY_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_day(value: Any, field: str) -> date | None:
    """``YYYY-MM-DD`` to a date; absent, null or "" mean not given."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string in the format YYYY-MM-DD, got {value!r}")
    try:
        if not _DAY_PATTERN.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"{field} {value!r} is not a valid date: use the format YYYY-MM-DD, e.g. 2017-01-05"
        ) from None


def resolve_window(
    start_value: Any, end_value: Any, timezone: str, now: datetime, max_days: int
) -> tuple[date, date]:
    """Applies the defaults (end today, start end - max_days) and checks the range."""
    end = parse_day(end_value, "end_date") or now.astimezone(ZoneInfo(timezone)).date()
    start = parse_day(start_value, "start_date") or end - timedelta(days=max_days)
    if start > end:
        raise BadRequest(
            f"start_date {start.isoformat()} is after end_date {end.isoformat()}: "
            "swap them or pick an earlier start_date"
        )
    if (end - start).days > max_days:
        raise BadRequest(
            f"the date range {start.isoformat()} to {end.isoformat()} spans "
            f"{(end - start).days} days, more than the maximum of {max_days}: "
            "split it into several exports",
            {"code": "export_range_limit", "days": (end - start).days, "max_days": max_days},
        )
    return start, end


def window_bounds_utc(start: date, end: date, timezone: str) -> tuple[datetime, datetime]:
    """[start 00:00, end+1 00:00) in the app's zone, as naive UTC for the queries."""
    zone = ZoneInfo(timezone)

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time.min, zone).astimezone(UTC).replace(tzinfo=None)

    return midnight(start), midnight(end + timedelta(days=1))
