"""The URLs of a run, by host, handed out so that no host has more than a few downloads at
once. A worker keeps its host's slot while that host has URLs left, so a slot is given up
only when its host has none: a worker that finds every host with URLs at its limit has
nothing left to do. (Per-URL semaphores cost a wake-up of a waiting thread at every
download's end: 1,900 files of 50 KB from one host, 8 workers for its 4 slots, spent about
40 % of the client's time with the GIL handing the slots around.)"""

from __future__ import annotations

import threading
from collections import Counter, deque
from urllib.parse import urlsplit


class HostQueue:
    """URLs by host, at most ``per_host`` of them in progress for one host at a time."""

    def __init__(self, urls: list[str], per_host: int) -> None:
        self.per_host = per_host
        self._pending: dict[str, deque[str]] = {}
        for url in urls:
            self._pending.setdefault(urlsplit(url).hostname or "", deque()).append(url)
        self._busy: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopped = False

    def take(self, held: str | None) -> tuple[str, str] | None:
        """The next (host, url): from ``held`` (the host whose slot the caller holds) while
        it has URLs, else (the slot given up) from a host with a free slot; None when
        there is none, or the queue is stopped."""
        with self._lock:
            if self._stopped:
                return None
            if held is not None:
                if held in self._pending:
                    return held, self._pop(held)
                self._busy[held] -= 1
            host = next((h for h in self._pending if self._busy[h] < self.per_host), None)
            if host is None:
                return None
            self._busy[host] += 1
            return host, self._pop(host)

    def stop(self) -> None:
        """Hands out nothing more (the downloads in progress finish)."""
        with self._lock:
            self._stopped = True

    def _pop(self, host: str) -> str:
        queue = self._pending[host]
        url = queue.popleft()
        if not queue:
            del self._pending[host]
        return url
