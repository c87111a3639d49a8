"""Backup planning: which whole days each type still needs, cut into export windows."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta

from chatferry.client.manifest import Part, Window

ONE_DAY = timedelta(days=1)


def covered_days(parts: Iterable[Part], resource: str) -> set[date]:
    """Every day that a part of ``resource`` covers."""
    days: set[date] = set()
    for part in parts:
        if part.type == resource:
            days.update(day_range(part.start_date, part.end_date))
    return days


def day_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def missing_ranges(covered: set[date], since: date, until: date) -> list[tuple[date, date]]:
    """The runs of consecutive days in ``since..until`` that ``covered`` lacks."""
    ranges: list[tuple[date, date]] = []
    start: date | None = None
    for day in day_range(since, until):
        if day in covered:
            if start is not None:
                ranges.append((start, day - ONE_DAY))
                start = None
        elif start is None:
            start = day
    if start is not None:
        ranges.append((start, until))
    return ranges


def cut(resource: str, start: date, end: date, size: int) -> list[Window]:
    """``start..end`` as consecutive windows of at most ``size`` days, oldest first."""
    windows: list[Window] = []
    while start <= end:
        last = min(start + timedelta(days=size - 1), end)
        windows.append(Window(start, last, resource))
        start = last + ONE_DAY
    return windows


def split(window: Window, pieces: int) -> list[Window]:
    """``window`` in ``pieces`` (2 at least, one day at most) near-equal windows."""
    pieces = max(2, min(pieces, window.days))
    size = math.ceil(window.days / pieces)
    return cut(window.resource, window.start, window.end, size)


def packed(resource: str, days: Sequence[tuple[date, int]], limit: int, size: int) -> list[Window]:
    """Consecutive ``(day, rows)`` in as few windows as hold at most ``limit`` rows and
    ``size`` days each, oldest first (filling each window in turn is the fewest for days
    that must stay in order). A day over the limit gets a window of its own: the server
    refuses it and says why."""
    windows: list[Window] = []
    start: date | None = None
    last, rows = date.min, 0
    for day, count in days:
        if start is not None and (rows + count > limit or (day - start).days >= size):
            windows.append(Window(start, last, resource))
            start = None
        if start is None:
            start, rows = day, 0
        last, rows = day, rows + count
    if start is not None:
        windows.append(Window(start, last, resource))
    return windows


def missing_windows(
    parts: Iterable[Part],
    resources: Iterable[str],
    since: date,
    until: date,
    windows_of: Callable[[str, date, date], list[Window]],
) -> list[Window]:
    """Windows for every day in ``since..until`` that no part of its type covers yet
    (``windows_of`` cuts each run of such days of a type), by first day, then users,
    rooms, comments (a room's users come before it)."""
    part_list = list(parts)
    windows = [
        window
        for resource in resources
        for start, end in missing_ranges(covered_days(part_list, resource), since, until)
        for window in windows_of(resource, start, end)
    ]
    order = {r: i for i, r in enumerate(("users", "rooms", "comments"))}
    return sorted(windows, key=lambda w: (w.start, order.get(w.resource, 9)))
