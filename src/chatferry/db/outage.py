"""Database outages: one warning when a process loses its database, one when it is back.

While the database is down every thread of a process fails on it: the job claimers, the
heartbeat, the periodic tasks, the LISTEN thread, the requests. Each would log its own
traceback, again and again. Instead the engine's events tell this process's
``DatabaseWatch``: the first failure to connect (or a dropped connection) logs
"database unreachable", the next new connection logs "database is back", and the
threads leave their own tracebacks out for such failures (``is_connection_failure``).

A connection that was open before the database came back and fails afterwards (an
export's connection from before a restart) is what is left of the same outage, not a
new one.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any

import psycopg
from sqlalchemy import Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import ExceptionContext

from chatferry.obs.log import log_event

log = logging.getLogger(__name__)

_OPENED_AT = "chatferry_opened_at"
# Failures to connect this soon after the database came back are the same outage's.
_SETTLE_SECONDS = 1.0
# SQLSTATE classes of a connection that failed or that the server ended: connection
# exceptions (08) and operator intervention (57P: shutdown, crash, not accepting yet).
_CONNECTION_STATES = ("08", "57P")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


class DatabaseWatch:
    """Whether this process reaches its database, told once each way in the log."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._lock = threading.Lock()
        self._lost_at: float | None = None
        # Until a first connection succeeds, start-up's own checks say what is wrong.
        self._ever_connected = False
        self.back_at = -_SETTLE_SECONDS  # monotonic time the database last came back

    @property
    def lost(self) -> bool:
        return self._lost_at is not None

    def on_failure(self, exc: BaseException, opened_at: float | None) -> None:
        """A connection (opened at ``opened_at``; None: connecting failed) failed."""
        if not self._ever_connected:
            return  # never reached: the preflight's one-line error tells
        if opened_at is not None and opened_at < self.back_at:
            return  # a connection from before the database came back: the same outage
        if opened_at is None and time.monotonic() - self.back_at < _SETTLE_SECONDS:
            return  # an attempt that began before the database came back
        with self._lock:
            if self._lost_at is not None:
                return
            self._lost_at = time.monotonic()
        log_event(
            log,
            "database unreachable",
            logging.WARNING,
            database=self.label,
            error=_first_line(exc),
            hint="work waits and resumes by itself once it is back",
        )

    def on_connected(self) -> None:
        with self._lock:
            self._ever_connected = True
            if self._lost_at is None:
                return
            lost_for = time.monotonic() - self._lost_at
            self._lost_at = None
            self.back_at = time.monotonic()
        log_event(
            log, "database is back", logging.WARNING, database=self.label, down_s=round(lost_for, 1)
        )


_watches: weakref.WeakKeyDictionary[Engine, DatabaseWatch] = weakref.WeakKeyDictionary()


def watch_of(engine: Engine) -> DatabaseWatch:
    """The engine's watch (made by ``watch_database``; a silent one otherwise)."""
    return _watches.get(engine) or DatabaseWatch(engine.url.render_as_string())


def watch_database(engine: Engine) -> DatabaseWatch:
    """Hooks the engine's connect and error events to a new watch."""
    watch = _watches[engine] = DatabaseWatch(
        engine.url.set(drivername=engine.url.get_backend_name()).render_as_string()
    )

    @event.listens_for(engine, "connect")
    def _on_connect(_dbapi: Any, record: Any) -> None:
        record.info[_OPENED_AT] = time.monotonic()
        watch.on_connected()

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        if context.is_pre_ping:
            return  # a stale pooled connection, replaced at once: the reconnect tells
        if context.connection is None:  # connecting failed
            if is_connection_failure(context.original_exception):
                watch.on_failure(context.original_exception, None)
        elif context.is_disconnect:
            opened_at = context.connection.info.get(_OPENED_AT)
            watch.on_failure(context.original_exception, opened_at)

    return watch


def is_connection_failure(exc: BaseException) -> bool:
    """True if ``exc`` (or an error it was raised from) is the database out of reach:
    no connection, or a connection the server dropped or shut down. Not a deadlock, a
    lock timeout or SQLite's "database is locked"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, psycopg.OperationalError | psycopg.InterfaceError):
            state = current.sqlstate
            return state is None or state.startswith(_CONNECTION_STATES)
        current = current.__cause__ or current.__context__
    return False


def unless_outage(exc: BaseException) -> BaseException | None:
    """The error to log with its traceback: None for a connection failure (the watch
    has said it once for the whole process)."""
    return None if is_connection_failure(exc) else exc


def log_failure(
    logger: logging.Logger, message: str, exc: BaseException, level: int = logging.ERROR
) -> None:
    """``message`` with the traceback, or nothing for a connection failure."""
    if not is_connection_failure(exc):
        logger.log(level, message, exc_info=exc)
