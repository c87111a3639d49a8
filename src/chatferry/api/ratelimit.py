"""Rate limits on the API: failed sign-ins per client address and per app id, and
requests per app.

Failed authentications are counted per client address and per app id. Once either is
over its budget, a request whose credentials FAIL gets 429 with ``Retry-After`` instead
of 401, and only after a delay (``refusal_delay``): a flood's client waits for its
answer before it can send the next request, so each connection of a flood costs the
server a request a second instead of as many as it can send. A request with the right
credentials is never refused or delayed because of someone else's failures (that would
let an attacker lock an app out). Authenticated requests are also limited per app (a
token bucket), so one tenant cannot starve the others.

The counters live in this process: with several API processes each enforces its own
(see docs/security.md for what a reverse proxy should add).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from chatferry.errors import TooManyRequests


def too_many(message: str, retry_after: float) -> TooManyRequests:
    """A 429 whose Retry-After header says when to try again."""
    seconds = str(max(1, math.ceil(retry_after)))
    return TooManyRequests(message, {"code": "rate_limited"}, {"Retry-After": seconds})


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets by key: ``rate`` tokens a second up to ``burst``; bounded in size
    (the least recently used keys are dropped past ``max_keys``)."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._max_keys = max_keys
        self._lock = threading.Lock()

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: str, now: float | None = None) -> float:
        """Takes a token; returns 0, or the seconds until one is available (not taken)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._refilled(key, now)
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate

    def wait_for(self, key: str, now: float | None = None) -> float:
        """Seconds until a token is available (0 if one is), without taking it."""
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._refilled(key, now)
            return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / self.rate


class AuthGuard:
    """The API's limits; a rate of 0 turns a limit off."""

    def __init__(
        self,
        failures_per_minute: float,
        app_requests_per_second: float,
        refusal_delay: float = 1.0,
    ) -> None:
        self.refusal_delay = refusal_delay
        per_second = failures_per_minute / 60
        self._failures = (
            TokenBuckets(per_second, max(1.0, failures_per_minute)) if per_second > 0 else None
        )
        self._requests = (
            TokenBuckets(app_requests_per_second, max(1.0, 2 * app_requests_per_second))
            if app_requests_per_second > 0
            else None
        )

    def refusal_wait(self) -> float:
        """The delay before a 429 for failed sign-ins: ``refusal_delay`` give or take
        half (spread, so a flood's clients do not come back all at once)."""
        return self.refusal_delay * random.uniform(0.5, 1.5)

    def failed(self, client: str, app_id: str | None) -> TooManyRequests | None:
        """After a failed authentication: the 429 to answer instead of the 401 once the
        address or the app id is over its budget, else None."""
        if self._failures is None:
            return None
        waits = [self._failures.take(f"ip:{client}")]
        if app_id:
            waits.append(self._failures.take(f"app:{app_id[:100]}"))
        wait = max(waits)
        if wait <= 0:
            return None
        return too_many(
            "too many failed sign-ins from this address or for this app id: check "
            f"QISCUS-SDK-APP-ID and QISCUS-SDK-SECRET, then retry after {math.ceil(wait)} s",
            wait,
        )

    def admitted(self, app_id: str) -> None:
        """After a successful authentication: the app's request budget."""
        if self._requests is None:
            return
        wait = self._requests.take(f"app:{app_id}")
        if wait > 0:
            raise too_many(
                f"too many requests for this app: slow down and retry after {math.ceil(wait)} s",
                wait,
            )
