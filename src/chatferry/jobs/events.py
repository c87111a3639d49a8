"""Job events inside and across processes: "this export ended", "a delivery is due".

An event is a short key (``export:<unique_id>``, ``import:<unique_id>``, and
``webhooks:due`` when a webhook delivery was queued). The code that ends a record calls
``Ended`` hooks and ``send_event`` in the transaction that sets the final status; on
PostgreSQL that is a ``NOTIFY chatferry_events`` delivered to every process on commit.
After the commit it also publishes the key in its own process (``EventHub.publish``),
which is all there is on SQLite.

Each process has one ``EventHub``: waiters (a ``GET ...?wait=``, the webhook sender)
subscribe to a key and get an ``asyncio.Event`` set from whatever thread publishes. On
PostgreSQL one ``Listener`` thread per process holds the only listening connection
and publishes what it hears: no thread and no connection per waiter.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from chatferry.jobs.notify import Listener

EVENTS_CHANNEL = "chatferry_events"
ANY = "*"  # subscribers of ANY hear every key
# A webhook delivery was queued: the webhook senders look for it. Only then: a sender
# woken by every job's end claimed in vain each time (an export's end cost a claim and
# a queue read in each process, 4 ms of CPU an export with 3 worker processes).
WEBHOOKS_DUE = "webhooks:due"
# Keys whose publishing also announces another one, kept at most this many (a record
# whose transaction was rolled back is never published).
_ALSO_KEPT = 1000


@dataclass(frozen=True)
class Ended:
    """A record (export, import) reached a final status."""

    kind: str  # "export", "import"
    record_id: int
    unique_id: str
    app_pk: int
    status: str  # finished, failed, cancelled
    # The record as the API showed it, when it is gone (a deleted export: cancelled).
    record: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return event_key(self.kind, self.unique_id)


# Runs in the transaction that ends the record (the webhooks queue their deliveries).
EndedHook = Callable[[Session | Connection, Ended], None]


def event_key(kind: str, ref: str) -> str:
    return f"{kind}:{ref}"


def send_event(executor: Session | Connection, key: str) -> None:
    """NOTIFY in the caller's transaction (PostgreSQL delivers it on commit); a no-op on
    SQLite, where the caller publishes in its own process after committing."""
    bind = executor.get_bind() if isinstance(executor, Session) else executor
    if bind.dialect.name == "postgresql":
        executor.execute(
            text("SELECT pg_notify(:channel, :key)"), {"channel": EVENTS_CHANNEL, "key": key}
        )


@dataclass(eq=False)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self.loop.call_soon_threadsafe(self.event.set)


class EventHub:
    """The process's waiters by key; ``publish`` may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[_Waiter]] = {}
        self.hooks: dict[str, EndedHook] = {}  # by name: installing one twice is a no-op
        self._also: dict[str, set[str]] = {}
        self._listener: Listener | None = None
        self._stop = threading.Event()

    @contextmanager
    def subscription(self, key: str) -> Iterator[asyncio.Event]:
        """An event set when ``key`` is published (or on every publish, for ANY);
        subscribe before reading the state the event announces, so none is missed."""
        waiter = _Waiter(asyncio.get_running_loop())
        with self._lock:
            self._waiters.setdefault(key, set()).add(waiter)
        try:
            yield waiter.event
        finally:
            with self._lock:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[key]

    def waiting(self) -> int:
        with self._lock:
            return sum(len(w) for w in self._waiters.values())

    def also_on(self, key: str, extra: str) -> None:
        """When ``key`` is next published in this process, ``extra`` is too: for a hook
        that queued work in the transaction ending ``key``'s record (its subscribers must
        not look before that commit, after which the key is published)."""
        with self._lock:
            if len(self._also) >= _ALSO_KEPT:
                del self._also[next(iter(self._also))]
            self._also.setdefault(key, set()).add(extra)

    def publish(self, key: str) -> None:
        """Wakes the key's waiters (and those of what was announced with it) and every
        ANY waiter; ``key`` ANY wakes everyone (after a reconnect of the listener, which
        may have missed events)."""
        with self._lock:
            if key == ANY:
                chosen = [w for group in self._waiters.values() for w in group]
            else:
                keys = [key, ANY, *self._also.pop(key, ())]
                chosen = [w for k in keys for w in self._waiters.get(k, ())]
        for waiter in chosen:
            try:
                waiter.wake()
            except RuntimeError:  # its event loop has closed
                continue

    def ended(self, executor: Session | Connection, ended: Ended) -> None:
        """In the transaction that ended the record: the hooks, then the NOTIFY.
        The caller publishes ``ended.key`` once it has committed."""
        for hook in self.hooks.values():
            hook(executor, ended)
        send_event(executor, ended.key)

    def listen(self, engine: Engine) -> None:
        """Starts this process's listening thread (PostgreSQL; once)."""
        if engine.dialect.name != "postgresql" or self._listener is not None:
            return
        self._stop.clear()
        self._listener = Listener(
            engine, EVENTS_CHANNEL, self._stop, self.publish, lambda: self.publish(ANY)
        )
        threading.Thread(target=self._listener.run, name="chatferry-events", daemon=True).start()

    @property
    def listening(self) -> bool:
        """True while the PostgreSQL listener is connected (waits then need no poll)."""
        return self._listener is not None and self._listener.connected.is_set()

    def close(self) -> None:
        self._stop.set()
        self._listener = None
