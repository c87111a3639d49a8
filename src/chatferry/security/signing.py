"""HMAC-signed, expiring download links.

A link is ``?expires=<unix time>&signature=<hex HMAC-SHA256 of id and expiry>``. It is
accepted if the signature matches the current key or, during a key rotation, the
previous one, and if its expiry is neither past nor further ahead than the configured
link lifetime (a link cannot be made to live longer than the server hands out).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from chatferry.errors import Forbidden

_HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_CLOCK_SKEW_SECONDS = 60

BAD_SIGNATURE = "the download link's signature is not valid: fetch the export again"


class LinkSigner:
    def __init__(self, key: bytes, previous_key: bytes | None = None, ttl_seconds: int = 0) -> None:
        self._keys = [key] + ([previous_key] if previous_key else [])
        self._ttl = ttl_seconds

    def signature(self, resource: str, expires: int) -> str:
        return self._sign(self._keys[0], resource, expires)

    @staticmethod
    def _sign(key: bytes, resource: str, expires: int) -> str:
        message = f"{resource}\n{expires}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    def check(self, resource: str, expires: str, signature: str, now: float) -> None:
        """Raises Forbidden unless the link is signed by one of our keys and live."""
        if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
            raise Forbidden(BAD_SIGNATURE)
        if not _HEX_SIGNATURE.fullmatch(signature):
            raise Forbidden(BAD_SIGNATURE)
        moment = int(expires)
        if not any(
            hmac.compare_digest(self._sign(key, resource, moment), signature) for key in self._keys
        ):
            raise Forbidden(BAD_SIGNATURE)
        if moment < now:
            raise Forbidden(
                "the download link has expired: fetch the export again for a fresh link"
            )
        if self._ttl and moment > now + self._ttl + _CLOCK_SKEW_SECONDS:
            raise Forbidden(BAD_SIGNATURE)
