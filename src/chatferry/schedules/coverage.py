"""Which days a schedule's runs cover, and which days its next run must export.

Pure functions over day ranges (inclusive ``(start, end)`` pairs), so the rules are
tested without a database. A run covers from the day after the last covered one (or
the schedule's first window) up to its own window's end, minus the days that runs in
flight or finished already hold; each gap is split into exports of at most
``window_days`` days. After any downtime every day is covered exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

DayRange = tuple[date, date]
DAY = timedelta(days=1)


def first_window(run_day: date, window_days: int) -> DayRange:
    """The ``window_days`` whole days before ``run_day``."""
    return run_day - timedelta(days=window_days), run_day - DAY


def gaps(lower: date, upper: date, taken: Iterable[DayRange]) -> list[DayRange]:
    """The ranges of days in [lower, upper] that no range of ``taken`` holds."""
    found: list[DayRange] = []
    cursor = lower
    for start, end in sorted(taken):
        if end < cursor:
            continue
        if start > upper:
            break
        if start > cursor:
            found.append((cursor, min(upper, start - DAY)))
        cursor = max(cursor, end + DAY)
        if cursor > upper:
            return found
    if cursor <= upper:
        found.append((cursor, upper))
    return found


def split(ranges: Iterable[DayRange], days: int) -> list[DayRange]:
    """Each range cut into consecutive pieces of at most ``days`` days."""
    pieces: list[DayRange] = []
    step = timedelta(days=days)
    for start, end in ranges:
        while start <= end:
            piece_end = min(end, start + step - DAY)
            pieces.append((start, piece_end))
            start = piece_end + DAY
    return pieces


def windows_to_export(
    lower: date, run_day: date, window_days: int, taken: Iterable[DayRange]
) -> list[DayRange]:
    """The export windows of a run on ``run_day`` that covers from ``lower``."""
    upper = run_day - DAY
    if lower > upper:
        return []
    return split(gaps(lower, upper, taken), window_days)


def covered_through(lower: date, finished: Iterable[DayRange]) -> date | None:
    """The last day D such that every day in [lower, D] is in a finished range."""
    cursor = lower - DAY
    for start, end in sorted(finished):
        if start > cursor + DAY:
            break
        cursor = max(cursor, end)
    return cursor if cursor >= lower else None
