"""Readers of one row's fields: typed values out, problems collected, raw values shown
bounded. Pure: no database, no I/O."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlparse

from chatferry.imports.rules.common import (
    MAX_EMAIL,
    Parsed,
    Problem,
    kind,
    row_key,
    shown,
)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL = re.compile(r"^[^@\s\"(),:;<>\[\\\]]+@" + _LABEL + r"(?:\." + _LABEL + r")+$")
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)
# An http(s) URL urlparse reads as such: a plain host (no brackets, nothing it would
# strip or refuse), then a path, query or fragment without whitespace (\S is str.isspace).
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#]\S*)?")
_NOT_RFC3339 = "is not an RFC 3339 date-time: use e.g. 2017-05-10T11:46:30Z"
_OUT_OF_RANGE = "is out of range: in UTC it must fall between 0001-01-01 and 9999-12-31"
NUL = "\x00"

D = TypeVar("D")


def nul_problem(name: str) -> str:
    return f"{name} contains a NUL character (U+0000), which cannot be stored: remove it"


class RowReader:
    """Reads one raw row's fields as typed values and collects the row's problems."""

    def __init__(self, index: int, raw: dict[str, Any], key_field: str, longest_key: int):
        self.index = index
        self.raw = raw
        self.key = row_key(raw.get(key_field), longest_key)
        self.problems: list[Problem] = []

    def add(self, field_name: str, message: str) -> None:
        self.problems.append(Problem(self.index, self.key, field_name, message))

    def parsed(self, draft: D) -> Parsed[D]:
        return Parsed(draft, self.problems)

    def string(self, name: str, *, required: bool = False, max_len: int | None = None) -> str:
        """The value as a string ("" when absent or not valid, with the problem noted)."""
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                self.add(name, f"{name} is required")
            return ""
        if not isinstance(value, str):
            self.add(name, f"{name} must be a string, got {kind(value)}")
            return ""
        if NUL in value:
            self.add(name, nul_problem(name))
            return ""
        if max_len is not None and len(value) > max_len:
            self.add(name, f"{name} is {len(value)} characters long, over the limit of {max_len}")
            return ""
        return value

    def moment(self, name: str, default: datetime) -> datetime:
        """The value as a UTC moment (``default`` when absent or not valid)."""
        value = self.raw.get(name)
        if value is None or value == "":
            return default
        try:
            return parse_rfc3339(value)
        except ValueError as why:
            self.add(name, f"{name} {shown(value)} {why}")
            return default

    def url(self, name: str) -> str:
        """The value as an absolute http(s) URL, or ""."""
        value = self.string(name)
        if value and not is_http_url(value):
            self.add(
                name,
                f"{name} {shown(value)} is not an absolute http(s) URL: use e.g. "
                "https://example.com/avatar.png, or an empty string",
            )
            return ""
        return value


def parse_rfc3339(value: object) -> datetime:
    """The UTC moment an RFC 3339 date-time names; ValueError says why it is not one."""
    if not isinstance(value, str) or (match := _RFC3339.match(value)) is None:
        raise ValueError(_NOT_RFC3339)
    text = value.replace("z", "Z").replace("t", "T")
    fraction = match.group(1)
    if fraction is not None and len(fraction) > 7:  # Python keeps microseconds only
        text = text.replace(fraction, fraction[:7], 1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(_NOT_RFC3339) from None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(_OUT_OF_RANGE) from None


def is_http_url(value: str) -> bool:
    if _PLAIN_URL.fullmatch(value):  # most URLs, without urlparse's 1.5 us
        return True
    if any(ch.isspace() for ch in value):
        return False
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def is_email(value: str) -> bool:
    return len(value) <= MAX_EMAIL and bool(_EMAIL.match(value))


def nested_deeper_than(value: object, limit: int) -> bool:
    """True if objects and arrays nest more than ``limit`` levels deep in ``value``.

    Iterative, so a value nested thousands of levels deep cannot exhaust the stack.
    """
    if not isinstance(value, (dict, list)):  # a tuple: twice as fast as dict | list
        return False
    pending: list[tuple[dict[Any, Any] | list[Any], int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):  # only containers nest: skip the rest
                pending.append((child, depth + 1))
    return False
