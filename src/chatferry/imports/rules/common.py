"""What every resource's rules share: the problem type and its bounded collector, how a
raw value is shown in a message, and the repeats of a value across the rows of a file.

Nothing here touches the database or does I/O: the rules are pure functions of the rows.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chatferry.errors import ChatferryError, shorten, show

MAX_EMAIL = 320
MAX_TOKEN = 200
MAX_UNIQUE_ID = 200
# At most this many problems are kept (and shown in errors.Data); the rest are counted.
MAX_KEPT_PROBLEMS = 1000
# Deepest nesting of objects and arrays accepted in Payload and Options (they are
# re-serialised with orjson, which refuses more than 254 levels).
MAX_NESTING = 100

T = TypeVar("T")

# ROW_RECORDS: the records made once a row (Parsed, the drafts, the rows to write) are
# plain slotted dataclasses, treated as values but not frozen: a frozen dataclass sets each
# field through object.__setattr__, ~1.5 us a record of ten fields, which was a fifth of the
# rules' time on a 4 MB comments file.


def row_number(index: int) -> str:
    """How a message names the row at ``index``: the file's first object is row 1."""
    return f"row {index + 1}"


@dataclass(frozen=True, slots=True)
class Problem:
    """``index`` is the row's position in the file (0 for the first object, None for a
    problem of the whole file); ``row`` is the number a person and the API see (1 for the
    first object), and a message that names a row says it with ``row_number``."""

    index: int | None
    key: str | None
    field: str
    message: str

    @property
    def row(self) -> int | None:
        """The row number of errors.Data: the file's first object is row 1."""
        return None if self.index is None else self.index + 1

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "key": self.key, "field": self.field, "message": self.message}


class ImportRejected(ChatferryError):
    """The file cannot be imported; ``problems`` lists what is wrong, row by row, and
    ``checked_rows`` is how many rows were checked to find them (0 if none was)."""

    def __init__(
        self, message: str, problems: list[Problem] | None = None, checked_rows: int = 0
    ) -> None:
        super().__init__(message)
        self.problems = problems
        self.checked_rows = checked_rows


@dataclass(slots=True)  # one a row: see ROW_RECORDS above
class Parsed(Generic[T]):
    """One parsed row: its values (a field with a problem holds its empty value, so the
    later steps still check the others) and the row's problems."""

    draft: T
    problems: list[Problem]


# --- problems ----------------------------------------------------------------------


class ProblemLog:
    """Counts every problem and keeps the first ``keep`` of them in report order: by row,
    and within a row in the order of ``fields``, then as found. Memory stays bounded
    however many problems a file has."""

    def __init__(self, fields: Sequence[str] = (), keep: int = MAX_KEPT_PROBLEMS) -> None:
        self._rank = {name: n for n, name in enumerate(fields)}
        self._keep = keep
        # Negated sort keys: the heap's top is the last kept problem in report order.
        self._heap: list[tuple[int, int, int, Problem]] = []
        self._flagged = bytearray()  # 1 at each row index that has a problem
        self.total = 0
        self.rows = 0

    def __bool__(self) -> bool:
        return self.total > 0

    def add(self, problem: Problem) -> None:
        self.total += 1
        index = -1 if problem.index is None else problem.index
        self._count_row(index + 1)
        entry = (-index, -self._rank.get(problem.field, len(self._rank)), -self.total, problem)
        if len(self._heap) < self._keep:
            heapq.heappush(self._heap, entry)
        else:
            heapq.heappushpop(self._heap, entry)

    def extend(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self.add(problem)

    def _count_row(self, slot: int) -> None:
        if slot >= len(self._flagged):
            self._flagged.extend(bytes(slot + 1 - len(self._flagged)))
        if not self._flagged[slot]:
            self._flagged[slot] = 1
            self.rows += 1

    def kept(self) -> list[Problem]:
        """The kept problems, in report order."""
        return [entry[3] for entry in sorted(self._heap, reverse=True)]

    def rejection(self, total_rows: int) -> ImportRejected:
        """The failure that sums the problems up and lists the kept ones."""
        listed = f" (only the first {self._keep} are listed)" if self.total > self._keep else ""
        return ImportRejected(
            f"the file has {self.total} problem{'s' if self.total != 1 else ''} in {self.rows} "
            f"of {total_rows} rows{listed}; nothing was imported: correct those rows "
            "and upload the file again",
            self.kept(),
            total_rows,
        )


# --- showing raw values ------------------------------------------------------------


def kind(value: object) -> str:
    """The JSON kind of a value, for messages: "a string", "an object", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def shown(value: object) -> str:
    """A raw value as a message shows it (see chatferry.errors.show): a string quoted and
    cut short, a number or boolean as JSON writes it, an object or array by its kind."""
    return show(value)


def row_key(value: object, longest: int) -> str | None:
    """A row's key for its problems: the key field when it is a non-empty string, cut
    like a shown value when it is longer than any valid key."""
    if not isinstance(value, str) or not value:
        return None
    return value if len(value) <= longest else shorten(value)


# --- the rows of one file ----------------------------------------------------------


def first_rows(values: Sequence[str]) -> dict[str, int]:
    """Each non-empty value -> the index of its first occurrence."""
    # Built from the end, so each value's last pair written is its first occurrence.
    first = dict(zip(reversed(values), range(len(values) - 1, -1, -1), strict=True))
    first.pop("", None)
    return first


def repeats(values: Sequence[str]) -> Iterator[tuple[int, str, int]]:
    """(index, value, index of its first occurrence) for each repeat of a non-empty value."""
    first = first_rows(values)
    if len(first) == len(values) - values.count(""):
        return  # no value repeats
    for index, value in enumerate(values):
        if value and first[value] != index:
            yield index, value, first[value]


def firsts(values: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(index, value) for the first occurrence of each non-empty value."""
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value and value not in seen:
            seen.add(value)
            yield index, value
