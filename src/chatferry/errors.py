"""Domain errors that carry the HTTP status and a sentence a person can act on."""

from __future__ import annotations

import secrets
from typing import Any


class ChatferryError(Exception):
    """Base error: ``status`` maps onto the HTTP status of the error envelope.

    ``details`` are extension keys sent next to ``message`` in the envelope's
    ``error`` object (e.g. ``code``, ``rows``, ``limit``), for clients that act on
    the error; the spec's envelope keys stay as they are.
    """

    status = 400

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


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


class RangeNotSatisfiable(ChatferryError):
    status = 416


class TooManyRequests(ChatferryError):
    status = 429


class ServiceUnavailable(ChatferryError):
    status = 503


SHOWN_CHARS = 60


def shorten(text: str) -> str:
    """``text`` cut after SHOWN_CHARS characters, with "…" where it was cut."""
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "\u2026"


def show(value: object) -> str:
    """A raw client value as it may appear in a message: a string quoted and cut short,
    a number or boolean as JSON writes it, anything else by its JSON type.
    Never ``repr()`` of an unbounded or deeply nested value."""
    if isinstance(value, str):
        return repr(shorten(value))
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= SHOWN_CHARS else f"a {len(text)}-digit number"
    if isinstance(value, list):
        return "(an array)"
    if isinstance(value, dict):
        return "(an object)"
    return f"({type(value).__name__})"


_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_reference() -> str:
    """A short id that ties what a tenant reads to the log line with the details."""
    return "E" + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(9))
