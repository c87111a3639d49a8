"""Listing, polling and reading the records the API returns (exports and imports)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from chatferry.client.http import Api

Record = dict[str, Any]
SPEC_PAGE_SIZE = 20
EXT_PAGE_SIZE = 100


class Poller:
    """Sleeps between status checks: quickly at first, then every ``longest`` seconds."""

    def __init__(self, first: float = 0.1, longest: float = 1.0, factor: float = 1.5) -> None:
        self._delay = first
        self._longest = longest
        self._factor = factor

    def sleep(self) -> None:
        time.sleep(self._delay)
        self._delay = min(self._delay * self._factor, self._longest)


# A chatferry server holds ``GET .../{id}?wait=S`` until the job ends or S seconds pass:
# the end is seen at once, and the progress at least every WAIT_SECONDS.
WAIT_SECONDS = 5


class ServerWaits(Poller):
    """No pause between the GETs of a server that waits (``?wait=``), unless an answer
    came back early with the job still running (a server that ignores ``wait``): then
    the usual polling."""

    def __init__(self) -> None:
        super().__init__()
        self._asked_at = time.monotonic()

    def asking(self) -> None:
        self._asked_at = time.monotonic()

    def sleep(self) -> None:
        if time.monotonic() - self._asked_at < WAIT_SECONDS / 2:
            super().sleep()


def waiting_fetch(
    api: Api, path: str, poller: Poller | None
) -> tuple[Callable[[], Record], Poller | None]:
    """The GET of a record for waiting loops: with ``?wait=`` on a chatferry server (and
    its poller), else the plain GET polled as before (a vendor's server)."""
    if not api.has_extensions() or poller is not None:
        return lambda: api.call("GET", path)["backup_history"], poller
    waits = ServerWaits()

    def fetch() -> Record:
        waits.asking()
        record: Record = api.call("GET", path, params={"wait": WAIT_SECONDS})["backup_history"]
        return record

    return fetch, waits


def list_page(api: Api, path: str, key: str, page: int, limit: int | None = None) -> list[Record]:
    """One page of a list endpoint (``limit`` is sent only to a chatferry server)."""
    params: dict[str, int] = {"page": page}
    if limit is not None and api.has_extensions():
        params["limit"] = limit
    results = api.call("GET", path, params=params)
    api.saw_list(results)
    records = results.get(key)
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def iter_records(api: Api, path: str, key: str) -> Iterator[Record]:
    """Every record of a list endpoint, newest first, page by page until an empty one."""
    limit = EXT_PAGE_SIZE if api.has_extensions() else None
    page = 1
    while True:
        records = list_page(api, path, key, page, limit)
        yield from records
        if not records or (limit is not None and len(records) < limit):
            return
        page += 1


def wait_until_done(
    fetch: Callable[[], Record],
    done: Callable[[Record], bool],
    on_update: Callable[[Record], None] | None = None,
    poller: Poller | None = None,
) -> Record:
    """Fetches the record until ``done(record)``; reports every version it sees."""
    poller = poller or Poller()
    while True:
        record = fetch()
        if on_update is not None:
            on_update(record)
        if done(record):
            return record
        poller.sleep()


def parse_moment(value: Any) -> datetime | None:
    """An RFC 3339 time from a record (``None`` for ``""`` or anything else)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def utc_offset(record: Record) -> timezone | None:
    """The app's UTC offset, as the record's ``created_at`` shows it."""
    moment = parse_moment(record.get("created_at"))
    offset = moment.utcoffset() if moment else None
    return timezone(offset) if offset is not None else None


def seconds_between(start: Any, end: Any) -> float | None:
    """Seconds from one record time to another, when both are given."""
    first, last = parse_moment(start), parse_moment(end)
    if first is None or last is None:
        return None
    return max((last - first) / timedelta(seconds=1), 0.0)
