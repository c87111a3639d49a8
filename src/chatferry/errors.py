"""Domain errors that carry the HTTP status and a sentence a person can act on."""

from __future__ import annotations


class ChatferryError(Exception):
    """Base error: ``status`` maps onto the HTTP status of the error envelope."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
