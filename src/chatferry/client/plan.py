"""Backup planning: which whole days each type still needs, cut into export windows."""

from __future__ import annotations

import math
from collections.abc import Iterable
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


def missing_windows(
    parts: Iterable[Part], resources: Iterable[str], since: date, until: date, size: int
) -> list[Window]:
    """Windows for every day in ``since..until`` not yet covered, by day then type."""
    part_list = list(parts)
    windows: list[Window] = []
    for resource in resources:
        covered = covered_days(part_list, resource)
        for start, end in missing_ranges(covered, since, until):
            windows.extend(cut(resource, start, end, size))
    order = {r: i for i, r in enumerate(("users", "rooms", "comments"))}
    return sorted(windows, key=lambda w: (w.start, order.get(w.resource, 9)))
