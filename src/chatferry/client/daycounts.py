"""Rows per day from a chatferry server (``GET /stats/daily``, an extension), so that a
backup can cut its windows to the row limit beforehand instead of learning it from the
server's refusals (each refused window costs a request, and its halves can be refused in
turn).

The answer is checked as untrusted input: it must give one count for every day asked,
in order, and a positive limit; anything else and the backup cuts its windows as it does
against a server without the extension.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, TypeGuard

from chatferry.client.errors import ApiError
from chatferry.client.plan import cut, day_range

if TYPE_CHECKING:
    from chatferry.client.http import Api

# The most days one GET /stats/daily answers (the server's MAX_DAYS).
STATS_MAX_DAYS = 366


@dataclass(frozen=True)
class DayCounts:
    days: list[tuple[date, int]]  # every day asked, in order, with its rows
    limit: int  # the most rows one export of the type may hold
    max_days: int  # the most days one export may cover


def day_counts(api: Api, resource: str, start: date, end: date) -> DayCounts | None:
    """The type's rows on each day of ``start..end``; None where the server does not say
    (not chatferry, an older chatferry, or an answer that does not add up)."""
    if not api.has_extensions():
        return None
    pieces: list[DayCounts] = []
    for span in cut(resource, start, end, STATS_MAX_DAYS):
        first, last = span.start.isoformat(), span.end.isoformat()
        params = {"type": resource, "start_date": first, "end_date": last}
        try:
            results = api.call("GET", "/stats/daily", params=params)
        except ApiError as exc:
            if exc.status in (400, 404, 405):
                return None
            raise
        piece = parse_day_counts(results, span.start, span.end)
        if piece is None:
            return None
        pieces.append(piece)
    days = [day for piece in pieces for day in piece.days]
    return DayCounts(days, pieces[0].limit, pieces[0].max_days)


def parse_day_counts(results: dict[str, Any], start: date, end: date) -> DayCounts | None:
    """``results`` of ``GET /stats/daily`` for ``start..end``; None unless it has one
    count (an integer, 0 or more) for each of those days, in order, and a limit."""
    limit, max_days = results.get("limit"), results.get("max_export_days")
    listed = results.get("days")
    if not (_count(limit) and limit > 0 and _count(max_days) and isinstance(listed, list)):
        return None
    wanted = day_range(start, end)
    if len(listed) != len(wanted):
        return None
    days: list[tuple[date, int]] = []
    for day, entry in zip(wanted, listed, strict=True):
        if not isinstance(entry, dict) or entry.get("date") != day.isoformat():
            return None
        rows = entry.get("rows")
        if not _count(rows):
            return None
        days.append((day, rows))
    return DayCounts(days, limit, max_days + 1)


def _count(value: object) -> TypeGuard[int]:
    """An integer of 0 or more (JSON's true and false are not counts)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
