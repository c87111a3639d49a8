"""The rules of a users file: parse each row, then emails and tokens unique in the file
and new to the app. Pure: what the app already holds comes in as ``KnownUsers``."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chatferry.imports.passwords import hash_problem
from chatferry.imports.rules.common import (
    MAX_EMAIL,
    MAX_TOKEN,
    Parsed,
    Problem,
    firsts,
    repeats,
    row_number,
    shown,
)
from chatferry.imports.rules.fields import RowReader, is_email

# A row's problems are listed in this order of their fields.
FIELDS = (
    "Email",
    "AuthenticationToken",
    "Password",
    "PasswordHash",
    "Name",
    "AvatarUrl",
    "CreateAt",
)


@dataclass(slots=True)  # one a row: see ROW_RECORDS in common.py
class UserDraft:
    """A parsed users row; a field with a problem holds "" (or the default date)."""

    key: str | None
    email: str
    name: str
    avatar_url: str
    authentication_token: str  # "" when absent: one is generated
    password: str  # plain, to be hashed; "" when absent
    password_hash: str
    created_at: datetime


@dataclass(slots=True)  # one a row: see ROW_RECORDS in common.py
class UserRow:
    email: str
    name: str
    avatar_url: str
    authentication_token: str
    password: str | None  # plain, to be hashed
    password_hash: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KnownUsers:
    """The emails and tokens of the file that the app's users already have."""

    emails: Set[str]
    tokens: Set[str]


def parse_user(index: int, raw: dict[str, Any], now: datetime) -> Parsed[UserDraft]:
    read = RowReader(index, raw, "Email", MAX_EMAIL)
    email = read.string("Email", required=True, max_len=MAX_EMAIL)
    if email and not is_email(email):
        read.add("Email", f"Email {shown(email)} is not a valid email address")
        email = ""
    token = read.string("AuthenticationToken", max_len=MAX_TOKEN)
    password = read.string("Password")
    password_hash = read.string("PasswordHash")
    if password and password_hash:
        read.add("Password", "send either Password (plain) or PasswordHash, not both")
    elif password_hash and (why := hash_problem(password_hash)):
        read.add("PasswordHash", f"PasswordHash {why}")
    draft = UserDraft(
        key=read.key,
        email=email,
        name=read.string("Name"),
        avatar_url=read.url("AvatarUrl"),
        authentication_token=token,
        password=password,
        password_hash=password_hash,
        created_at=read.moment("CreateAt", now),
    )
    return read.parsed(draft)


def in_file(drafts: Sequence[UserDraft]) -> Iterator[Problem]:
    """Each email and each token belongs to one row of the file."""
    for i, email, first in repeats([d.email for d in drafts]):
        yield Problem(
            i, drafts[i].key, "Email", f"Email {shown(email)} is also used by {row_number(first)}"
        )
    for i, _, first in repeats([d.authentication_token for d in drafts]):
        yield Problem(
            i,
            drafts[i].key,
            "AuthenticationToken",
            f"AuthenticationToken is also used by {row_number(first)}",
        )


def against_app(drafts: Sequence[UserDraft], known: KnownUsers) -> Iterator[Problem]:
    """Emails and tokens are new to the app (checked on their first row in the file)."""
    for i, email in firsts(d.email for d in drafts):
        if email in known.emails:
            message = f"a user with Email {shown(email)} already exists in this app"
            yield Problem(i, drafts[i].key, "Email", message)
    for i, token in firsts(d.authentication_token for d in drafts):
        if token in known.tokens:
            message = "a user with this AuthenticationToken already exists in this app"
            yield Problem(i, drafts[i].key, "AuthenticationToken", message)


def build_rows(drafts: Sequence[UserDraft], _known: KnownUsers) -> list[UserRow]:
    """The rows to write (when no step found a problem); a missing token is generated."""
    return [
        UserRow(
            email=d.email,
            name=d.name,
            avatar_url=d.avatar_url,
            authentication_token=d.authentication_token or secrets.token_hex(16),
            password=d.password or None,
            password_hash=d.password_hash,
            created_at=d.created_at,
        )
        for d in drafts
    ]


def plain_passwords(rows: Sequence[UserRow]) -> list[str]:
    """The plain passwords to hash, in row order."""
    return [row.password for row in rows if row.password is not None]
