"""Rows created per day, and the days that kept exports hold as they are now.

Days are whole days in the app's timezone, counted as an export's window is
(exports/days.py). A day is backed up when a finished export whose file is still stored
covers it and held as many of the day's rows as the day has now (the export job stores
its per-day counts); a covered day whose rows changed since is ``changed``. An export
written before per-day counts were kept is compared as a whole: its row count against
its window's rows now.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Row, select

from chatferry.apps.service import AppContext
from chatferry.db.models import Export, table_of
from chatferry.errors import BadRequest
from chatferry.exports.dates import check_order, parse_day, window_bounds_utc
from chatferry.exports.days import day_bounds, decode_day_rows, rows_per_day
from chatferry.exports.formats import count_rows
from chatferry.exports.status import ExportStatus
from chatferry.resources import Resource, parse_resource

MAX_DAYS = 366
DEFAULT_DAYS = 90

_exports = table_of(Export)


@dataclass(frozen=True)
class DayStat:
    day: date
    rows: int
    backed_up: bool
    changed: bool = False


@dataclass(frozen=True)
class DailyStats:
    resource: Resource
    start: date
    end: date
    timezone: str
    limit: int
    days: list[DayStat]
    today: date


def resolve_range(
    start_value: Any, end_value: Any, timezone: str, now: datetime
) -> tuple[date, date]:
    """The requested days: end defaults to today, start to end - 89 days (90 days)."""
    end = parse_day(end_value, "end_date") or now.astimezone(ZoneInfo(timezone)).date()
    start = parse_day(start_value, "start_date") or _days_before(end, DEFAULT_DAYS - 1)
    check_order(start, end)
    days = (end - start).days + 1
    if days > MAX_DAYS:
        raise BadRequest(
            f"the date range {start.isoformat()} to {end.isoformat()} has {days} days, "
            f"more than the maximum of {MAX_DAYS}: choose a later start_date or an "
            "earlier end_date",
            {"code": "stats_range_limit", "days": days, "max_days": MAX_DAYS},
        )
    return start, end


def _days_before(day: date, count: int) -> date:
    try:
        return day - timedelta(days=count)
    except OverflowError:
        return date.min


def _kept_exports(
    conn: Connection, resource: Resource, app_pk: int, start: date, end: date
) -> list[Row[Any]]:
    """The finished exports still on file that cover a day of [start, end]."""
    query = select(
        _exports.c.start_date, _exports.c.end_date, _exports.c.day_rows, _exports.c.total_rows
    ).where(
        _exports.c.app_pk == app_pk,
        _exports.c.resource_name == resource,
        _exports.c.status == ExportStatus.FINISHED,
        _exports.c.storage_key != "",
        _exports.c.expired_at.is_(None),
        _exports.c.start_date <= end,
        _exports.c.end_date >= start,
    )
    return list(conn.execute(query))


def _days_of(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


@dataclass(frozen=True)
class Coverage:
    """The days a kept export covers, and those of them it holds as they are now."""

    covered: set[date]
    current: set[date]


def coverage(
    conn: Connection, app: AppContext, resource: Resource, counts: dict[date, int]
) -> Coverage:
    """Which of the counted days a kept export covers, and holds all rows of now."""
    start, end = min(counts), max(counts)
    found = Coverage(set(), set())
    for export in _kept_exports(conn, resource, app.pk, start, end):
        days = list(_days_of(max(export.start_date, start), min(export.end_date, end)))
        found.covered.update(days)
        held = decode_day_rows(export.day_rows, export.start_date, export.end_date)
        if held is not None:
            found.current.update(day for day in days if held[day] == counts[day])
        elif _whole_export_current(conn, app, resource, export):
            found.current.update(days)
    return found


def _whole_export_current(
    conn: Connection, app: AppContext, resource: Resource, export: Row[Any]
) -> bool:
    """An export without per-day counts: its rows against its window's rows now."""
    lower, upper = window_bounds_utc(export.start_date, export.end_date, app.timezone)
    return bool(count_rows(conn, resource, app.pk, lower, upper) == export.total_rows)


def daily_stats(
    conn: Connection,
    app: AppContext,
    resource_value: Any,
    start_value: Any,
    end_value: Any,
    now: datetime,
) -> DailyStats:
    """Validates the request and computes rows and coverage for each day."""
    resource = parse_resource(resource_value)
    start, end = resolve_range(start_value, end_value, app.timezone, now)
    bounds = day_bounds(start, end, app.timezone)
    rows = rows_per_day(conn, resource, app.pk, bounds)
    counts = dict(zip(_days_of(start, end), rows, strict=True))
    found = coverage(conn, app, resource, counts)
    days = [
        DayStat(day, rows, day in found.current, day in found.covered - found.current)
        for day, rows in counts.items()
    ]
    return DailyStats(
        resource=resource,
        start=start,
        end=end,
        timezone=app.timezone,
        limit=app.export_max_rows[resource],
        days=days,
        today=now.astimezone(ZoneInfo(app.timezone)).date(),
    )


def daily_stats_record(stats: DailyStats, max_export_days: int) -> dict[str, Any]:
    """``{"days": [...], "limit": L}`` plus the resolved request, for the console."""
    return {
        "days": [
            {
                "date": d.day.isoformat(),
                "rows": d.rows,
                "backed_up": d.backed_up,
                "changed": d.changed,
            }
            for d in stats.days
        ],
        "limit": stats.limit,
        "type": stats.resource.value,
        "start_date": stats.start.isoformat(),
        "end_date": stats.end.isoformat(),
        "timezone": stats.timezone,
        "today": stats.today.isoformat(),
        "max_export_days": max_export_days,
    }
