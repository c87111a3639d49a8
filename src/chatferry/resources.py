"""The kinds of chat data chatferry backs up, as the API names them."""

from __future__ import annotations

from enum import StrEnum

from chatferry.errors import BadRequest, show


class Resource(StrEnum):
    USERS = "users"
    ROOMS = "rooms"
    COMMENTS = "comments"


RESOURCE_NAMES = tuple(r.value for r in Resource)


def parse_resource(value: object, field: str = "type") -> Resource:
    """The resource a request names, or BadRequest saying which ones exist."""
    if value is None or value == "":
        raise BadRequest(f'{field} is required: one of "users", "rooms", "comments"')
    if not isinstance(value, str) or value not in RESOURCE_NAMES:
        raise BadRequest(
            f'{field} {show(value)} is not valid: use one of "users", "rooms", "comments"'
        )
    return Resource(value)
