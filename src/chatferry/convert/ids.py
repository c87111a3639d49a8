"""Stable ids, times and windows: the same source record gives the same value every run."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import date, timedelta

WINDOW_DAYS = 30  # a part covers 30 days, counted from 1970-01-01 (so windows never move)
DAY_MS = 86_400_000
EPOCH = date(1970, 1, 1)
MAX_ID = 200  # the spec's longest UniqueId


def digest(*parts: str, length: int = 24) -> str:
    """A hex digest of the parts (joined by NUL, so no two tuples collide)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def readable_id(prefix: str, *parts: str) -> str:
    """``prefix:part/part``, or ``prefix:#<digest>`` when that would be too long."""
    text = f"{prefix}:{'/'.join(parts)}"
    return text if len(text) <= 120 else f"{prefix}:#{digest(*parts, length=32)}"


def token(source: str, user_id: str, secret: str = "") -> str:
    """A user's AuthenticationToken, derived from the source id (the same every run); with
    a secret, an HMAC that nobody without the secret can compute from the id."""
    if secret:
        message = f"chatferry-convert\0{source}\0{user_id}".encode()
        return "cv-" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:40]
    return "cv-" + digest("chatferry-convert", source, user_id, length=40)


def rfc3339(ms: int) -> str:
    """``2024-01-01T00:00:00.000Z`` (time.gmtime: a fifth of datetime's cost)."""
    seconds, millis = divmod(ms, 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def window_of(ms: int) -> int:
    return ms // DAY_MS // WINDOW_DAYS


def window_days(window: int) -> tuple[date, date]:
    start = EPOCH + timedelta(days=window * WINDOW_DAYS)
    return start, start + timedelta(days=WINDOW_DAYS - 1)


def window_at(start: date) -> int | None:
    """The window starting on ``start``; None when no window starts that day."""
    days = (start - EPOCH).days
    return days // WINDOW_DAYS if days % WINDOW_DAYS == 0 else None
