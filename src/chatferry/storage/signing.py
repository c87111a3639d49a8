"""HMAC-signed, expiring download links."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatferry.db.models import ServerKey
from chatferry.errors import Forbidden

_KEY_NAME = "download_signing_key"


class LinkSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def signature(self, resource: str, expires: int) -> str:
        message = f"{resource}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def check(self, resource: str, expires: str, signature: str, now: float) -> None:
        """Raises Forbidden unless the signature is right and the link has not expired."""
        if not expires.isdigit() or not hmac.compare_digest(
            self.signature(resource, int(expires)), signature
        ):
            raise Forbidden("the download link's signature is not valid: fetch the export again")
        if int(expires) < now:
            raise Forbidden(
                "the download link has expired: fetch the export again for a fresh link"
            )


def load_signing_key(engine: Engine, configured: str | None) -> bytes:
    """The configured key, or one generated once and shared by every process via the DB."""
    if configured:
        return configured.encode()
    with Session(engine) as session:
        existing = session.scalar(select(ServerKey.value).where(ServerKey.name == _KEY_NAME))
        if existing is not None:
            return existing.encode()
        session.add(ServerKey(name=_KEY_NAME, value=secrets.token_hex(32)))
        try:
            session.commit()
        except IntegrityError:  # another process created it first
            session.rollback()
        value = session.scalar(select(ServerKey.value).where(ServerKey.name == _KEY_NAME))
        assert value is not None
        return value.encode()
