"""Which failures are the database out of reach, and the watch's one line each way."""

from __future__ import annotations

import logging
import sqlite3
import time

import psycopg
import pytest
from psycopg import errors as pg_errors
from sqlalchemy import exc as sa_exc

from chatferry.db.outage import DatabaseWatch, is_connection_failure
from chatferry.jobs.failures import is_storage_full, is_transient
from chatferry.storage.store import StorageError, StorageFull


def refused_connection() -> psycopg.OperationalError:
    """What psycopg raises when nothing listens on the port (a real attempt)."""
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect("host=127.0.0.1 port=1 connect_timeout=2")
    return caught.value


def wrapped(orig: BaseException) -> sa_exc.OperationalError:
    try:
        raise sa_exc.OperationalError("SELECT 1", {}, orig) from orig
    except sa_exc.OperationalError as exc:
        return exc


def test_a_refused_or_ended_connection_is_an_outage_a_deadlock_or_lock_is_not() -> None:
    refused = refused_connection()
    assert is_connection_failure(refused) and is_connection_failure(wrapped(refused))
    assert is_connection_failure(wrapped(pg_errors.AdminShutdown()))  # 57P01
    assert is_connection_failure(wrapped(pg_errors.CannotConnectNow()))  # 57P03
    assert not is_connection_failure(wrapped(pg_errors.DeadlockDetected()))
    assert not is_connection_failure(wrapped(pg_errors.LockNotAvailable()))
    assert not is_connection_failure(wrapped(sqlite3.OperationalError("database is locked")))
    assert not is_connection_failure(ValueError("no"))


def test_a_full_storage_is_never_retried() -> None:
    full = StorageFull("the file storage is full: could not write 'k' (os error 28)")
    assert is_storage_full(full) and not is_transient(full)
    assert not is_storage_full(StorageError("could not write 'k' (GenericError: timeout)"))
    assert is_storage_full(OSError(28, "No space left on device"))


def test_the_watch_says_lost_once_and_back_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="chatferry.db.outage")
    watch = DatabaseWatch("postgresql://db/chatferry")
    refused = refused_connection()
    # Before a first connection, start-up's own check speaks: the watch stays silent.
    watch.on_failure(refused, None)
    assert not watch.lost and not caplog.records
    watch.on_connected()
    assert not caplog.records
    opened_before = time.monotonic()
    for _ in range(5):  # every thread fails on it
        watch.on_failure(refused, None)
    assert watch.lost
    watch.on_connected()
    watch.on_connected()
    # A connection from before the database came back fails afterwards: the same outage.
    watch.on_failure(refused, opened_before)
    # So does an attempt to connect that began just before it came back.
    watch.on_failure(refused, None)
    assert [r.getMessage() for r in caplog.records] == [
        "database unreachable",
        "database is back",
    ]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in caplog.records)
    # A connection opened after it came back that fails: a new outage.
    watch.on_failure(refused, time.monotonic())
    assert caplog.records[-1].getMessage() == "database unreachable"
