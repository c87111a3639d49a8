"""Cron expressions evaluated as wall-clock times in an app's timezone.

croniter walks naive local times; each one is placed in the zone with zoneinfo, so a
daily 02:30 stays 02:30 local across DST changes. A wall time that does not exist (the
spring-forward gap) runs at the same distance after the gap (02:30 -> 03:30); a wall
time that occurs twice (fall back) runs once, at its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from chatferry.errors import BadRequest, show

ALIASES = {"@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *"}
MAX_CRON_LENGTH = 100
# Bound on the candidates looked at for one answer (an expression that can never match,
# like "0 0 30 2 *", fails here instead of looping).
_MAX_STEPS = 1000

_HELP = (
    'use 5 fields "minute hour day-of-month month day-of-week", e.g. "30 2 * * *" for '
    "02:30 every day in the app's timezone, or one of @daily, @weekly, @monthly"
)


def parse_cron(value: object) -> str:
    """The expression normalized (single spaces, aliases kept), or BadRequest."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"cron is required: {_HELP}")
    text = " ".join(value.split())
    if len(text) > MAX_CRON_LENGTH:
        raise BadRequest(f"cron is longer than {MAX_CRON_LENGTH} characters: {_HELP}")
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise BadRequest(f"cron {show(value)} is not a supported alias: {_HELP}")
        return text.lower()
    if len(text.split(" ")) != 5:
        raise BadRequest(f"cron {show(value)} does not have 5 fields: {_HELP}")
    try:
        valid = croniter.is_valid(text)
    except Exception:
        valid = False
    if not valid:
        raise BadRequest(f"cron {show(value)} is not a valid cron expression: {_HELP}")
    try:
        next_run_after(text, "UTC", datetime(2000, 1, 1, tzinfo=UTC))
    except ValueError:
        raise BadRequest(f"cron {show(value)} never matches a date: {_HELP}") from None
    return text


def _expression(cron: str) -> str:
    return ALIASES.get(cron, cron)


def _local(naive: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall time in ``zone`` as aware UTC (gap times shift forward)."""
    return naive.replace(tzinfo=zone).astimezone(UTC)


def next_run_after(cron: str, timezone: str, after: datetime) -> datetime:
    """The first run strictly after ``after`` (aware), as aware UTC."""
    zone = ZoneInfo(timezone)
    # Start a little before, so a run in an hour that repeats (fall back) is not missed.
    start = (after.astimezone(zone) - timedelta(hours=1)).replace(tzinfo=None)
    walker = croniter(_expression(cron), start)
    for _ in range(_MAX_STEPS):
        candidate = _local(walker.get_next(datetime), zone)
        if candidate > after:
            return candidate
    raise ValueError(f"cron {cron!r} has no run after {after.isoformat()}")


def latest_run_at_or_before(cron: str, timezone: str, moment: datetime) -> datetime | None:
    """The last run at or before ``moment`` (aware UTC), or None if none is found."""
    zone = ZoneInfo(timezone)
    start = (moment.astimezone(zone) + timedelta(hours=1)).replace(tzinfo=None)
    walker = croniter(_expression(cron), start)
    for _ in range(_MAX_STEPS):
        try:
            candidate = _local(walker.get_prev(datetime), zone)
        except Exception:
            return None
        if candidate <= moment:
            return candidate
    return None
