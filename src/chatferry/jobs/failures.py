"""Job failures: which are worth another try, when, and what the tenant is told.

A tenant reads a short sentence and a reference id; the details (the error, its
traceback, internal URLs, SQL) go to the log under that reference, never to the record.
"""

from __future__ import annotations

import errno
import sqlite3

import psycopg
from obstore.exceptions import GenericError
from sqlalchemy import exc as sa_exc

from chatferry.errors import ChatferryError
from chatferry.storage.store import StorageError, StorageFull

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
        if isinstance(current, ChatferryError | StorageFull):
            return False
        if isinstance(current, _TRANSIENT):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def is_storage_full(exc: BaseException) -> bool:
    """True if ``exc`` (or an error it was raised from) says the disk or the object
    store has no room left: retrying cannot help until the operator frees space."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StorageFull):
            return True
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
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


def failing_part(exc: BaseException) -> str:
    """Which part of the system failed: "file storage", "database" or "server"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StorageError) or type(current).__module__.startswith("obstore"):
            return "file storage"
        if isinstance(current, sa_exc.SQLAlchemyError | psycopg.Error | sqlite3.Error):
            return "database"
        current = current.__cause__ or current.__context__
    return "server"


def retry_notice(
    noun: str, exc: BaseException, attempt: int, budget: int, delay: float, ref: str
) -> str:
    """Shown while a job waits to be retried after a temporary error."""
    return (
        f"the {noun} could not reach the {failing_part(exc)} (try {attempt} of {budget}); "
        f"it is retried automatically in {delay:g} s (reference {ref})"
    )


def give_up_message(noun: str, redo: str, exc: BaseException, attempts: int, ref: str) -> str:
    """The failure a tenant reads after the last try on a temporary error."""
    part = failing_part(exc)
    return (
        f"the {noun} failed: the {part} could not be reached in {attempts} tries; the "
        f"operator must check the {part} (reference {ref}), then {redo}"
    )


def refused_message(noun: str, redo: str, exc: BaseException, ref: str) -> str:
    """The failure a tenant reads when the storage or the database refused the job (a
    missing bucket, denied access, a full disk): retrying will not help until the
    operator acts."""
    part = failing_part(exc)
    return (
        f"the {noun} failed: the {part} refused it; the operator must check the {part} "
        f"(reference {ref}), then {redo}"
    )


def storage_full_message(noun: str, redo: str, ref: str) -> str:
    """The failure a tenant reads when the file could not be written for lack of space."""
    return (
        f"the {noun} failed: the file storage is full, so its file could not be written "
        f"(nothing was kept); the operator must free space on the storage (reference "
        f"{ref}), then {redo}"
    )


def internal_error_message(noun: str, redo: str, ref: str) -> str:
    """The failure a tenant reads after an unexpected error (the log has the details)."""
    return (
        f"the {noun} stopped on an internal error (reference {ref}); {redo}, and if it "
        "fails again give the operator this reference"
    )


def abandoned_message(noun: str, redo: str, crashes: int) -> str:
    """The failure a tenant reads when the job's workers kept vanishing."""
    return (
        f"the worker running this {noun} stopped {crashes} times before it could finish "
        f"(it crashed or was shut down each time); {redo}, and if this repeats ask the "
        "operator to check the workers' logs and memory"
    )
