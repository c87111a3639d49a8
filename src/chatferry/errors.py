"""Domain errors that carry the HTTP status and a sentence a person can act on."""

from __future__ import annotations

from typing import Any


class ChatferryError(Exception):
    """Base error: ``status`` maps onto the HTTP status of the error envelope.

    ``details`` are extension keys sent next to ``message`` in the envelope's
    ``error`` object (e.g. ``code``, ``rows``, ``limit``), for clients that act on
    the error; the spec's envelope keys stay as they are.
    """

    status = 400

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class BadRequest(ChatferryError):
    status = 400


class Unauthorized(ChatferryError):
    status = 401


class Forbidden(ChatferryError):
    status = 403


class NotFound(ChatferryError):
    status = 404


class PayloadTooLarge(ChatferryError):
    status = 413
