"""The no-gap rules of schedule runs, as pure functions over day ranges."""

from __future__ import annotations

from datetime import date

import pytest

from chatferry.schedules.coverage import covered_through, gaps, split, windows_to_export


def d(day: int) -> date:
    return date(2026, 5, day)


@pytest.mark.parametrize(
    ("taken", "expected"),
    [
        ([], [(d(1), d(10))]),
        ([(d(1), d(10))], []),
        ([(d(3), d(4))], [(d(1), d(2)), (d(5), d(10))]),
        ([(d(1), d(2)), (d(2), d(5)), (d(9), d(12))], [(d(6), d(8))]),
        ([(d(20), d(25))], [(d(1), d(10))]),
        ([(d(4), d(4)), (d(1), d(1))], [(d(2), d(3)), (d(5), d(10))]),
    ],
)
def test_gaps_are_the_days_no_range_holds(
    taken: list[tuple[date, date]], expected: list[tuple[date, date]]
) -> None:
    assert gaps(d(1), d(10), taken) == expected


def test_split_cuts_ranges_into_pieces_of_at_most_n_days() -> None:
    assert split([(d(1), d(7))], 3) == [(d(1), d(3)), (d(4), d(6)), (d(7), d(7))]
    assert split([(d(1), d(1)), (d(5), d(6))], 1) == [(d(1), d(1)), (d(5), d(5)), (d(6), d(6))]


def test_a_run_exports_from_the_lower_day_to_the_day_before_its_own() -> None:
    assert windows_to_export(d(8), d(11), 3, []) == [(d(8), d(10))]
    # Three days of downtime on a daily 1-day schedule: three 1-day exports.
    assert windows_to_export(d(11), d(14), 1, []) == [
        (d(11), d(11)),
        (d(12), d(12)),
        (d(13), d(13)),
    ]
    # Days held by runs in flight are not exported again.
    assert windows_to_export(d(8), d(14), 30, [(d(10), d(11))]) == [(d(8), d(9)), (d(12), d(13))]
    # Nothing to do: everything before the run's day is covered, or the run is early.
    assert windows_to_export(d(8), d(11), 3, [(d(8), d(10))]) == []
    assert windows_to_export(d(11), d(11), 3, []) == []


def test_covered_through_stops_at_the_first_gap() -> None:
    assert covered_through(d(1), []) is None
    assert covered_through(d(1), [(d(2), d(5))]) is None
    assert covered_through(d(1), [(d(1), d(3)), (d(4), d(6)), (d(8), d(9))]) == d(6)
    assert covered_through(d(1), [(d(4), d(9)), (d(1), d(5))]) == d(9)
