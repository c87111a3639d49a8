"""App secrets: random 128-bit keys, stored as keyed hashes, checked in constant time.

A secret is stored as ``hmac-sha256$<hex>``: HMAC-SHA256 of the app id and the secret
under the server's secret-hashing key (see security/keys.py; the app id makes equal
secrets of two apps hash differently), so a failed check costs microseconds, not the
tens of milliseconds and megabytes of a password hash, and a stolen database alone does
not let anyone test guesses. Apps created by older versions have an Argon2 hash: it is
checked once (one at a time, so a flood cannot fan out into Argon2 runs) and replaced by
the keyed hash on the first successful use.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

PREFIX = "hmac-sha256$"
_LEGACY_WAIT_SECONDS = 5.0
_legacy_hasher = PasswordHasher()


def generate_secret() -> str:
    """A new app secret: 128 random bits as 32 hex characters."""
    return secrets.token_hex(16)


class SecretHasher:
    """Hashes and checks app secrets with the server's key."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._legacy_slot = threading.BoundedSemaphore(1)

    def hash(self, app_id: str, secret: str) -> str:
        message = f"{app_id}\n{secret}".encode()
        return PREFIX + hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(self, app_id: str, stored_hash: str | None, secret: str) -> bool:
        """True if ``secret`` matches; ``None`` (an unknown app) costs the same."""
        mine = self.hash(app_id, secret)
        if stored_hash is None or not stored_hash.startswith(PREFIX):
            reference = PREFIX + "0" * 64
            hmac.compare_digest(mine, reference)
            return stored_hash is not None and self._verify_legacy(stored_hash, secret)
        return hmac.compare_digest(mine, stored_hash)

    def _verify_legacy(self, stored_hash: str, secret: str) -> bool:
        """An Argon2 hash from an older version; one check at a time."""
        if not self._legacy_slot.acquire(timeout=_LEGACY_WAIT_SECONDS):
            return False
        try:
            return bool(_legacy_hasher.verify(stored_hash, secret))
        except (VerificationError, InvalidHashError):
            return False
        finally:
            self._legacy_slot.release()

    @staticmethod
    def is_current(stored_hash: str) -> bool:
        """False for a legacy hash that should be replaced after a successful check."""
        return stored_hash.startswith(PREFIX)
