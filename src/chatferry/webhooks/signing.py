"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The secret is ``whsec_`` and base64 of 32 random bytes; a message is signed with
HMAC-SHA256 keyed with those bytes over ``"{webhook-id}.{webhook-timestamp}.{body}"``,
and the header says ``v1,<base64 of the digest>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_message_id() -> str:
    """The webhook-id of a delivery: the same on every try of it."""
    return f"msg_{uuid.uuid4().hex}"


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a delivery, and its content type."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
        "content-type": "application/json",
    }
