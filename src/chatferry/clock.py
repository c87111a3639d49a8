"""Time helpers: every timestamp chatferry handles is timezone-aware."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339_in_zone(moment: datetime, zone: str) -> str:
    """``2017-07-17T10:19:44+07:00``: second precision, with the zone's UTC offset."""
    return moment.astimezone(ZoneInfo(zone)).replace(microsecond=0).isoformat()


def validate_timezone(zone: str) -> str:
    """Returns the zone name if the tz database knows it, else raises ValueError."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown timezone {zone!r}; use an IANA name like 'Asia/Jakarta'"
        ) from exc
    return zone
