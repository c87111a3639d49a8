"""Users as both converters make them: a real email, else a stable placeholder."""

from __future__ import annotations

import re

from chatferry.convert.builder import Builder
from chatferry.convert.ids import token
from chatferry.convert.model import User

_EMAIL = re.compile(
    r"^[^@\s\"(),:;<>\[\\\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def is_email(value: str) -> bool:
    return len(value) <= 320 and bool(_EMAIL.match(value))


def placeholder_email(key: str, domain: str) -> str:
    local = _UNSAFE.sub("-", key.lower()).strip(".-") or "user"
    return f"{local}@{domain}"


def add_user(
    builder: Builder, key: str, email: str, names: list[str], avatar: str, domain: str
) -> None:
    """The user ``key`` (a source id) with the first non-empty of ``names``."""
    name = next((n.strip() for n in names if n and n.strip()), key)
    address = email.strip()
    if not is_email(address):
        address = placeholder_email(key, domain)
        builder.report.placeholder_emails.append(
            {"user": key, "name": name, "email": address, "source_email": email}
        )
    avatar = avatar if avatar.startswith(("https://", "http://")) else ""
    user = User(
        key, address, name, avatar, token(builder.source, key, builder.options.token_secret)
    )
    builder.add_user(user)
