"""Every stored column of the chat data is in the export file or deliberately left out
(in the spirit of Zulip's export sanity check): a new column cannot silently go missing
from backups."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Select, Table
from sqlalchemy.sql import visitors

from chatferry.db.models import Base
from chatferry.exports.columns import EXPORTS, NOT_EXPORTED, ExportColumn
from chatferry.resources import Resource

CHAT_TABLES = ("users", "rooms", "room_participants", "comments")

# The import format's keys, in order (design.md's "File format"; stated here, not read
# from the code under test).
FORMAT_KEYS = {
    Resource.USERS: [
        "Email", "Name", "AvatarUrl", "AuthenticationToken", "PasswordHash", "CreateAt",
    ],
    Resource.ROOMS: [
        "Name", "Type", "Options", "CreatorEmail", "CreatedAt", "AvatarUrl", "UniqueId",
        "ParticipantEmails",
    ],
    Resource.COMMENTS: [
        "Message", "DisableLinkPreview", "Type", "UniqueId", "CreatorEmail", "RoomUniqueId",
        "CreatedAt", "Payload", "ParentCommentUniqueId",
    ],
}  # fmt: skip


def _stored_columns(element: Any) -> set[str]:
    """``table.column`` of every stored column an expression reads (through aliases)."""
    found: set[str] = set()
    for node in visitors.iterate(element):
        if isinstance(node, Column):
            for base in node.proxy_set:
                if isinstance(base, Column) and isinstance(base.table, Table):
                    found.add(f"{base.table.name}.{base.name}")
    return found


def _read_by(column: ExportColumn) -> set[str]:
    """What a key's value reads: for an array, the columns it selects (not its joins)."""
    if isinstance(column.value, Select):
        return set().union(*(_stored_columns(c) for c in column.value.selected_columns))
    return _stored_columns(column.value)


def test_every_column_is_exported_or_listed_as_not_exported() -> None:
    every = {
        f"{name}.{column.name}"
        for name in CHAT_TABLES
        for column in Base.metadata.tables[name].columns
    }
    exported = set().union(*(_read_by(c) for e in EXPORTS.values() for c in e.columns))
    assert exported & set(NOT_EXPORTED) == set()
    assert every - exported - set(NOT_EXPORTED) == set(), "neither exported nor listed"
    assert set(NOT_EXPORTED) - every == set(), "listed but not a column"


def test_each_resource_writes_the_import_formats_keys_in_order() -> None:
    assert {resource: export.keys for resource, export in EXPORTS.items()} == FORMAT_KEYS


def test_the_check_notices_a_column_nobody_declared() -> None:
    users = Base.metadata.tables["users"]
    declared = _read_by(EXPORTS[Resource.USERS].columns[0])
    assert declared == {"users.email"}
    assert {f"users.{c.name}" for c in users.columns} - declared - set(NOT_EXPORTED)
