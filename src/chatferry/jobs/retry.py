"""Which job failures are worth another try, and how long to wait before it."""

from __future__ import annotations

import sqlite3

import psycopg
from obstore.exceptions import GenericError
from sqlalchemy import exc as sa_exc

from chatferry.errors import ChatferryError

# Errors of a database or storage that is down, overloaded or briefly unreachable:
# the same job may well succeed a little later. obstore reports network failures and
# 5xx answers (after its own quick retries) as GenericError; its specific errors
# (not found, permission denied, bad configuration, ...) are not transient.
_TRANSIENT: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # connection pool exhausted
    psycopg.OperationalError,
    sqlite3.OperationalError,  # "database is locked" past the busy timeout
    GenericError,
    ConnectionError,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` (or an error it was raised from) is a passing infrastructure
    failure rather than a problem with the job itself."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ChatferryError):
            return False
        if isinstance(current, _TRANSIENT):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def backoff_seconds(attempt: int, cap: float) -> float:
    """The wait before the next try after ``attempt`` (1-based) failed: 2^attempt, capped."""
    return float(min(cap, 2 ** min(attempt, 32)))


def short_error(exc: BaseException, limit: int = 300) -> str:
    """The first line of the error, cut to ``limit`` characters (obstore's messages
    carry a multi-line debug dump)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
