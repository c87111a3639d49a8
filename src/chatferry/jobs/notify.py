"""PostgreSQL LISTEN/NOTIFY: enqueuing a job wakes idle workers in every process."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from chatferry.db.outage import is_connection_failure, watch_of

log = logging.getLogger(__name__)

CHANNEL = "chatferry_jobs"
# How often the listener looks up from its socket to see whether it should stop.
_STOP_CHECK_SECONDS = 0.5
_RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)


def notify_jobs(executor: Session | Connection, payload: str = "") -> None:
    """Sends the wakeup in the caller's transaction: PostgreSQL delivers it on commit
    (and drops it on rollback). A no-op on SQLite. The payload (``<kind>:<job id>``
    for a new job) is only for people watching the channel."""
    bind = executor.get_bind() if isinstance(executor, Session) else executor
    if bind.dialect.name == "postgresql":
        executor.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
        )


def conninfo_of(engine: Engine) -> str:
    """The engine's URL as a libpq connection string (the psycopg driver name dropped)."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Listener:
    """A thread holding its own autocommit connection with ``LISTEN <channel>``: each
    notification's payload goes to ``on_notify``, and each (re)connect calls
    ``on_connect`` (notifications may have been missed meanwhile). ``connected`` says
    whether it listens now. A lost database is told once per process (the outage watch);
    other connection errors are logged, and it reconnects with a growing delay."""

    def __init__(
        self,
        engine: Engine,
        channel: str,
        stop: threading.Event,
        on_notify: Callable[[str], None],
        on_connect: Callable[[], None],
    ) -> None:
        self._conninfo = conninfo_of(engine)
        self._channel = channel
        self._stop = stop
        self._on_notify = on_notify
        self._on_connect = on_connect
        self.connected = threading.Event()
        self.backend_pid: int | None = None  # the listening connection's server process
        self._watch = watch_of(engine)
        self._opened_at: float | None = None

    def run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._listen()
                failures = 0
            except (psycopg.Error, OSError) as exc:
                self.connected.clear()
                delay = _RECONNECT_SECONDS[min(failures, len(_RECONNECT_SECONDS) - 1)]
                failures += 1
                if is_connection_failure(exc):  # the database is down: said once a process
                    self._watch.on_failure(exc, self._opened_at)
                else:
                    log.warning(
                        "%s listener lost its connection (%s); retrying in %ss",
                        self._channel, exc, delay,
                    )  # fmt: skip
                self._opened_at = None
                self._stop.wait(delay)
        self.connected.clear()

    def _listen(self) -> None:
        with psycopg.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=10,
            application_name=f"{self._channel}-listener",
        ) as conn:
            conn.execute(f"LISTEN {self._channel}")
            self.backend_pid = conn.info.backend_pid
            self._opened_at = time.monotonic()
            self._watch.on_connected()
            self.connected.set()
            self._on_connect()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=_STOP_CHECK_SECONDS):
                    self._on_notify(note.payload)


def job_listener(engine: Engine, wakeup: threading.Event, stop: threading.Event) -> Listener:
    """``LISTEN chatferry_jobs``: every notification, and every reconnect (jobs may have
    been enqueued while it was away), sets ``wakeup``; ``connected`` tells the workers
    whether they may poll slowly."""
    return Listener(engine, CHANNEL, stop, lambda _payload: wakeup.set(), wakeup.set)
