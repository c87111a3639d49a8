"""``GET /exports/{id}?wait=S`` and ``GET /imports/{id}?wait=S``: the answer comes as
soon as the record leaves ``scheduled``/``started``, or after S seconds as it is.

The request subscribes to its record's event in the process's ``EventHub`` (see
jobs/events.py) and sleeps on an ``asyncio.Event``: no thread and no connection per
waiter. It reads the record once, then again each time the event fires. On
PostgreSQL the process's one LISTEN connection brings the events of every process; on
SQLite they come from the worker threads of the same process (``chatferry serve``),
and a reread every ``CHATFERRY_WAIT_POLL_SECONDS`` (1 s) covers a worker in another
process (``serve --no-worker`` beside ``chatferry worker``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Query

from chatferry.api.deps import run_read
from chatferry.errors import BadRequest, show
from chatferry.runtime import Runtime

MAX_WAIT_SECONDS = 60
T = TypeVar("T")


def parse_wait(text: str) -> float:
    """Seconds to wait (0 to 60)."""
    hint = f"wait is a number of seconds from 0 to {MAX_WAIT_SECONDS}, like wait=30"
    try:
        seconds = float(text)
    except ValueError:
        raise BadRequest(f"{hint}; got {show(text)}") from None
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_WAIT_SECONDS:
        raise BadRequest(f"{hint}; got {show(text)}")
    return seconds


# The ``wait`` query parameter: a plain query parameter (no dependency to solve), so a
# GET without it costs what it did; parse_wait reads it only when it is given.
WaitQuery = Annotated[
    str | None,
    Query(
        description=(
            "Extension: answer as soon as the job ends (the record leaves "
            "`scheduled`/`started`), or after this many seconds (0-60) as it is."
        ),
        examples=["30"],
    ),
]


async def read_when_ended(
    rt: Runtime, key: str, read: Callable[[], T], pending: Callable[[T], bool], wait: str
) -> T:
    """``read()`` once the record it reads is no longer pending, or after ``wait``
    seconds (BadRequest for a bad value)."""
    seconds = min(parse_wait(wait), rt.settings.wait_max_seconds)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    with rt.events.subscription(key) as event:
        while True:
            event.clear()  # before the read: an event after it is never lost
            value = await run_read(rt, read)
            remaining = deadline - loop.time()
            if not pending(value) or remaining <= 0:
                return value
            if not rt.events.listening:  # SQLite (or the listener away): a slow reread
                remaining = min(remaining, rt.settings.wait_poll_seconds)
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                continue
