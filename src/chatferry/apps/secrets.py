"""App secrets: generated, stored as Argon2id hashes, verified in constant time."""

from __future__ import annotations

import functools
import hashlib
import secrets
import threading
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2-cffi defaults: Argon2id, RFC 9106 low-memory profile
_CACHE_SECONDS = 300.0


@functools.cache
def _dummy_hash() -> str:
    """A hash to check unknown app ids against, so they cost as much as wrong secrets."""
    return _hasher.hash("chatferry-dummy-secret")


def generate_secret() -> str:
    return secrets.token_hex(16)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


class SecretVerifier:
    """Verifies secrets against stored hashes, remembering recent successes.

    An Argon2 check costs tens of milliseconds by design; API clients send the secret
    on every request, so a success is cached for a few minutes, keyed by the stored
    hash (a rotated secret misses the cache at once) and a digest of the secret.
    """

    def __init__(self) -> None:
        self._ok: dict[tuple[str, bytes], float] = {}
        self._lock = threading.Lock()

    def verify(self, stored_hash: str | None, secret: str) -> bool:
        """True if ``secret`` matches; pass ``None`` for an unknown app (same cost)."""
        key = (stored_hash or "", hashlib.sha256(secret.encode()).digest())
        now = time.monotonic()
        with self._lock:
            expiry = self._ok.get(key)
        if stored_hash is not None and expiry is not None and expiry > now:
            return True
        try:
            _hasher.verify(stored_hash or _dummy_hash(), secret)
        except (VerificationError, InvalidHashError):
            return False
        if stored_hash is None:
            return False
        with self._lock:
            if len(self._ok) > 10_000:
                self._ok.clear()
            self._ok[key] = now + _CACHE_SECONDS
        return True
