"""The conversion's common half: users, rooms and comments as the converters find them,
then written as a backup directory (rooms' participants and types, users' dates and the
comments' order are settled at the end, when the whole export has been read)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from chatferry import __version__
from chatferry.client.files import write_json_atomic
from chatferry.client.manifest import Part
from chatferry.convert import output
from chatferry.convert.ids import digest, rfc3339, window_of
from chatferry.convert.model import Room, Row, User
from chatferry.convert.report import ConversionReport
from chatferry.convert.spool import SortKey, Spool

REPORT_NAME = "conversion-report.json"
WORK_NAME = ".convert-work"


@dataclass(frozen=True)
class Options:
    keep_system_messages: bool = False
    email_domain: str = "users.invalid"
    token_secret: str = ""  # makes the derived AuthenticationTokens unguessable


class Builder:
    def __init__(self, out: Path, source: str, export_name: str, options: Options) -> None:
        self.out = out
        self.options = options
        self.source = source
        self.server = f"convert:{source}"
        self.report = ConversionReport(source, export_name)
        self.users: dict[str, User] = {}
        self.emails: dict[str, str] = {}  # lower-case email -> user key
        self.rooms: dict[str, Room] = {}
        self.room_ids: set[str] = set()
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        self.workspace = ""
        out.mkdir(parents=True, exist_ok=True)
        self.previous = output.load_previous(out, self.server)
        self.attachments = output.Attachments(out, self.previous.manifest.get("attachments") or {})
        self.spool = Spool(out / WORK_NAME)

    # -- while reading ----------------------------------------------------------------

    def add_user(self, user: User) -> bool:
        """Keeps the user; False (reported) when another user has the same email."""
        other = self.emails.get(user.email.lower())
        if other is not None:
            self.report.leave_out(
                "users",
                "duplicate-email",
                "another user of the export has the same email: "
                "their messages are kept under that user",
                f"{user.key} ({user.email})",
            )
            self.users[user.key] = self.users[other]
            return False
        self.emails[user.email.lower()] = user.key
        self.users[user.key] = user
        return True

    def add_room(self, room: Room) -> bool:
        if room.key in self.rooms or room.unique_id in self.room_ids:
            self.report.leave_out(
                "rooms", "duplicate-room", "the export lists this room twice", room.key
            )
            return False
        self.rooms[room.key] = room
        self.room_ids.add(room.unique_id)
        self._seen(room.created_ms)
        return True

    def _seen(self, ms: int | None) -> None:
        if ms is not None:
            self.first_ms = ms if self.first_ms is None else min(self.first_ms, ms)
            self.last_ms = ms if self.last_ms is None else max(self.last_ms, ms)

    def add_comment(self, room: Room, user: User, key: SortKey, row: Row) -> None:
        """A comment by ``user`` in ``room``, placed in the order ``key`` gives."""
        ms = key[2]
        room.note_author(user.key, ms)
        if user.first_ms is None or ms < user.first_ms:
            user.first_ms = ms
        self._seen(ms)
        self.spool.add(key, row)

    # -- at the end -------------------------------------------------------------------

    def finish(self) -> ConversionReport:
        try:
            parts = self._write_parts()
            output.write_manifest(self.out, self._head(), parts, self.attachments.index)
            self.report.attachments = len(self.attachments.index)
            write_json_atomic(self.out / REPORT_NAME, self.report.as_json())
        finally:
            self.spool.remove()
        return self.report

    def _head(self) -> dict[str, Any]:
        previous = self.previous.manifest
        latest = rfc3339(self.last_ms or 0)
        return {
            "server": self.server,
            "app_id": f"{self.source}-export",
            "client_version": __version__,
            "created_at": previous.get("created_at") or latest,
            "updated_at": latest,
            "backup_id": previous.get("backup_id")
            or f"convert-{self.source}-{digest(self.source, self.workspace, length=16)}",
        }

    def _write_parts(self) -> list[Part]:
        default_ms = self.first_ms or 0
        users = sorted(
            (u.row(default_ms) for u in self._distinct_users()),
            key=lambda r: (r["CreateAt"], r["Email"]),
        )
        rooms = list(self._room_rows(default_ms))
        written_rooms = {r["UniqueId"] for r in rooms}
        parts = self._write("users", _by_window(users, "CreateAt", "Email"))
        parts += self._write("rooms", _by_window(rooms, "CreatedAt", "UniqueId"))
        comments = {w: self._comments(w, written_rooms) for w in self.spool.windows}
        return parts + self._write("comments", comments)

    def _distinct_users(self) -> list[User]:
        return [u for key, u in self.users.items() if u.key == key]

    def _comments(self, window: int, rooms: set[str]) -> Iterator[tuple[str, bytes]]:
        for unique_id, room, row in self.spool.rows(window):
            if room in rooms:
                yield unique_id, row
            else:
                self.report.leave_out(
                    "comments", "room-left-out", "its room was left out", unique_id
                )

    def _room_rows(self, default_ms: int) -> Iterator[Row]:
        for room in sorted(self.rooms.values(), key=lambda r: r.unique_id):
            row = self._room_row(room, default_ms)
            if row is not None:
                yield row

    def _room_row(self, room: Room, default_ms: int) -> Row | None:
        people = self._participants(room)
        if not people:
            self.report.leave_out(
                "rooms",
                "no-participants",
                "no member or author of the room is a user of the export",
                room.key,
            )
            return None
        emails = sorted({self.users[k].email for k in people})
        kind, name = self._type_and_name(room, emails)
        creator = self._creator(room, people)
        ms = (
            room.created_ms
            if room.created_ms is not None
            else min(room.authors.values(), default=default_ms)
        )
        return {
            "Name": name,
            "Type": kind,
            "Options": room.options,
            "CreatorEmail": self.users[creator].email,
            "CreatedAt": rfc3339(ms),
            "AvatarUrl": "",
            "UniqueId": room.unique_id,
            "ParticipantEmails": emails,
        }

    def _participants(self, room: Room) -> list[str]:
        keys = [k for k in [*room.members, *room.authors] if k in self.users]
        return list(dict.fromkeys(self.users[k].key for k in keys))

    def _type_and_name(self, room: Room, emails: list[str]) -> tuple[str, str]:
        if room.kind != "dm":
            return "group", room.name
        if len(emails) == 2:
            return "single", f"{emails[0]} {emails[1]}"  # the spec's name of a single room
        self.report.change(
            "dm-not-two-people",
            "a direct message needs exactly two people in the spec: written as a group room",
            f"{room.key} ({len(emails)} people)",
        )
        return "group", room.name

    def _creator(self, room: Room, people: list[str]) -> str:
        if room.creator in self.users and self.users[room.creator].key in people:
            return self.users[room.creator].key
        if room.authors:
            first = min(room.authors.items(), key=lambda item: (item[1], item[0]))[0]
            return self.users[first].key
        return sorted(people, key=lambda k: self.users[k].email)[0]

    def _write(self, resource: str, new: Mapping[int, Iterable[tuple[str, bytes]]]) -> list[Part]:
        """Every window's part: the rows an earlier conversion wrote, then the new ones."""
        known = self.previous.keys(self.out, resource) if self.previous.exists else set()
        windows = [*new, *self.previous.parts[resource]]
        parts = []
        for window in output.window_range(windows):
            rows = self.previous.rows(self.out, resource, window)
            added = [row for key, row in new.get(window, ()) if key not in known]
            self.report.new_rows[resource] += len(added)
            rows.extend(added)
            self.report.written[resource] += len(rows)
            data = output.encode_part(rows)
            parts.append(output.part_entry(self.out, resource, window, data, len(rows)))
        return parts


def _by_window(rows: list[Row], field: str, key: str) -> dict[int, list[tuple[str, bytes]]]:
    """(key, encoded row) of each row, by the window of its date ``field``."""
    from chatferry.client.records import parse_moment

    windows: dict[int, list[tuple[str, bytes]]] = {}
    for row in rows:
        moment = parse_moment(row[field])
        ms = int(moment.timestamp() * 1000) if moment else 0
        windows.setdefault(window_of(ms), []).append((row[key], orjson.dumps(row)))
    return windows
