"""A Slack export (``users.json``, ``channels.json``, ``groups.json``, ``dms.json``,
``mpims.json`` and a folder per conversation of one JSON file per day) as a chatferry
backup directory. A zip is read a member at a time; one day of one channel in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from chatferry.client.errors import ClientError
from chatferry.convert.builder import Builder, Options
from chatferry.convert.ids import readable_id
from chatferry.convert.model import Room, User, comment_row, file_row
from chatferry.convert.people import add_user
from chatferry.convert.report import ConversionReport
from chatferry.convert.slack_text import render
from chatferry.convert.source import Source

LISTS = (
    ("channels.json", "channel"),
    ("groups.json", "channel"),
    ("mpims.json", "group_dm"),
    ("dms.json", "dm"),
)
SYSTEM_SUBTYPES = {
    "channel_join",
    "channel_leave",
    "group_join",
    "group_leave",
    "channel_topic",
    "channel_purpose",
    "channel_name",
    "channel_archive",
    "channel_unarchive",
    "group_topic",
    "group_purpose",
    "group_name",
    "group_archive",
    "group_unarchive",
    "pinned_item",
    "unpinned_item",
    "bot_add",
    "bot_remove",
    "channel_convert_to_private",
}
Message = dict[str, Any]


def find_base(source: Source) -> str:
    """The folder of ``users.json`` inside the export ("" at its top)."""
    found = sorted((n for n in source.names() if n.rpartition("/")[2] == "users.json"), key=len)
    if not found or not any(source.has(_join(found[0].rpartition("/")[0], n)) for n, _ in LISTS):
        raise ClientError(
            f"{source.path} is not a Slack export: it holds no users.json next to "
            "channels.json (give the export's .zip or its unpacked directory)"
        )
    return found[0].rpartition("/")[0]


def _join(base: str, name: str) -> str:
    return f"{base}/{name}" if base else name


def ts_ms(ts: str) -> int:
    seconds, _, fraction = ts.partition(".")
    return int(seconds) * 1000 + int((fraction + "000")[:3])


class SlackConverter:
    def __init__(self, source: Source, out: Path, options: Options) -> None:
        self.source = source
        self.options = options
        self.base = find_base(source)
        self.builder = Builder(out, "slack", source.name, options)
        self.report: ConversionReport = self.builder.report
        self.folders: dict[str, Room] = {}
        self.channel_names: dict[str, str] = {}
        self.roots: dict[str, int] = {}  # the current channel's thread roots: ts -> time

    def run(self) -> ConversionReport:
        try:
            self._users()
            for name, kind in LISTS:
                self._rooms(name, kind)
            self._messages()
        except BaseException:
            self.builder.spool.remove()
            raise
        return self.builder.finish()

    def _list(self, name: str) -> list[Any]:
        member = _join(self.base, name)
        if not self.source.has(member):
            return []
        try:
            value = orjson.loads(self.source.read(member))
        except orjson.JSONDecodeError as exc:
            raise ClientError(f"{self.source.path}: {member} is not JSON ({exc})") from None
        if not isinstance(value, list):
            raise ClientError(f"{self.source.path}: {member} is not a JSON array")
        return value

    def _users(self) -> None:
        for entry in self._list("users.json"):
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                self.report.broken_record(
                    "user-not-an-object", "a users.json entry without an id", "users.json"
                )
                continue
            self.builder.workspace = self.builder.workspace or str(entry.get("team_id") or "")
            self._user(entry)

    def _user(self, entry: dict[str, Any]) -> None:
        profile = entry.get("profile") if isinstance(entry.get("profile"), dict) else {}
        assert isinstance(profile, dict)
        names = [
            _text(entry.get("real_name")),
            _text(profile.get("real_name")),
            _text(profile.get("display_name")),
            _text(entry.get("name")),
        ]
        avatar = next(
            (
                _text(profile.get(k))
                for k in ("image_512", "image_192", "image_72")
                if _text(profile.get(k))
            ),
            "",
        )
        add_user(
            self.builder,
            entry["id"],
            _text(profile.get("email")),
            names,
            avatar,
            self.options.email_domain,
        )

    def _rooms(self, list_name: str, kind: str) -> None:
        for entry in self._list(list_name):
            if not isinstance(entry, dict) or not _text(entry.get("id")):
                self.report.broken_record("room-not-an-object", "an entry without an id", list_name)
                continue
            room = self._room(entry, kind)
            folder = entry["id"] if kind == "dm" else _text(entry.get("name")) or entry["id"]
            if self.builder.add_room(room):
                self.folders[folder] = room
                self.channel_names[entry["id"]] = _text(entry.get("name")) or entry["id"]

    def _room(self, entry: dict[str, Any], kind: str) -> Room:
        members = [m for m in entry.get("members") or [] if isinstance(m, str)]
        if kind == "channel":
            name = _text(entry.get("name")) or entry["id"]
        else:
            name = ", ".join(self._name(m) or m for m in members) or entry["id"]
        created = entry.get("created")
        purpose = entry.get("purpose") if isinstance(entry.get("purpose"), dict) else {}
        return Room(
            key=entry["id"],
            unique_id=readable_id("slack", entry["id"]),
            name=name,
            kind=kind,
            members=members,
            creator=_text(entry.get("creator")) or (members[0] if kind == "dm" and members else ""),
            created_ms=created * 1000 if isinstance(created, int) and created > 0 else None,
            options=_text((purpose or {}).get("value")),
        )

    def _name(self, user_id: str) -> str | None:
        user = self.builder.users.get(user_id)
        return user.name if user else None

    # -- messages ---------------------------------------------------------------------

    def _messages(self) -> None:
        prefix = f"{self.base}/" if self.base else ""
        current = None
        for name in self.source.names():
            if not name.startswith(prefix) or not name.endswith(".json"):
                continue
            folder = name[len(prefix) :].rpartition("/")[0]
            if not folder or "/" in folder:
                continue
            if folder != current:
                current, self.roots = folder, {}
            self._day(name, self.folders.get(folder), folder)

    def _day(self, member: str, room: Room | None, folder: str) -> None:
        try:
            messages = orjson.loads(self.source.read(member))
        except orjson.JSONDecodeError:
            self.report.broken_record("day-not-json", "a day file is not JSON", member)
            return
        if not isinstance(messages, list):
            self.report.broken_record("day-not-a-list", "a day file is not a JSON array", member)
            return
        if room is None:
            self.report.leave_out(
                "comments",
                "unknown-channel",
                "its folder is no channel, group, DM or group DM of the export's lists",
                member,
                len(messages),
            )
            return
        for index, message in enumerate(messages):
            where = f"{member} #{index + 1}"
            if isinstance(message, dict) and isinstance(message.get("ts"), str):
                self._message(room, message, where)
            else:
                self.report.broken_record("message-without-ts", "a message needs its ts", where)

    def _author(self, message: Message, where: str) -> User | None:
        key = _text(message.get("user")) or _text(message.get("bot_id"))
        user = self.builder.users.get(key)
        if user is None and key and message.get("bot_id"):
            profile = (
                message.get("bot_profile") if isinstance(message.get("bot_profile"), dict) else {}
            )
            names = [_text((profile or {}).get("name")), _text(message.get("username")), key]
            add_user(self.builder, key, "", names, "", self.options.email_domain)
            user = self.builder.users.get(key)
        if user is None:
            self.report.leave_out(
                "comments", "unknown-user", "its user is not in users.json", where
            )
        return user

    def _message(self, room: Room, message: Message, where: str) -> None:
        subtype = _text(message.get("subtype"))
        if subtype in SYSTEM_SUBTYPES and not self.options.keep_system_messages:
            self.report.leave_out(
                "comments",
                "system-message",
                "join/leave and other system "
                "messages are left out (--keep-system-messages keeps them)",
                where,
            )
            return
        user = self._author(message, where)
        ts = message["ts"]
        try:
            ms = ts_ms(ts)
        except ValueError:
            self.report.broken_record("bad-ts", "ts is not a Slack timestamp", where)
            return
        if user is None:
            return
        self._write(room, user, message, ms, where)

    def _write(self, room: Room, user: User, message: Message, ms: int, where: str) -> None:
        ts, thread = message["ts"], _text(message.get("thread_ts"))
        unique_id = f"{room.unique_id}:{ts}"
        parent, placed = "", ms
        if thread and thread != ts:
            if thread in self.roots:
                parent, placed = f"{room.unique_id}:{thread}", max(ms, self.roots[thread])
            else:
                self.report.change(
                    "reply-without-root",
                    "the thread's first message is not "
                    "in the export: the reply is written as a plain message",
                    where,
                )
        elif thread == ts or message.get("reply_count") or message.get("replies"):
            self.roots[ts] = ms  # a thread's root (Slack marks them): its replies follow
        text = render(_text(message.get("text")), self._name, self.channel_names)
        files = [f for f in message.get("files") or [] if isinstance(f, dict)]
        key = (placed, int(bool(parent)), ms, unique_id)
        if text or not files or parent or message.get("reply_count"):
            self.builder.add_comment(
                room, user, key, comment_row(unique_id, room, user.email, ms, text, parent)
            )
        self._files(room, user, files, key, where)
        self._unsupported(message, where)

    def _files(
        self,
        room: Room,
        user: User,
        files: list[dict[str, Any]],
        key: tuple[int, int, int, str],
        where: str,
    ) -> None:
        for n, file in enumerate(files, 1):
            url = _text(file.get("url_private")) or _text(file.get("permalink"))
            if not url.startswith(("https://", "http://")):
                self.report.leave_out(
                    "comments",
                    "file-without-url",
                    "the export gives the file no URL (hidden or deleted)",
                    where,
                )
                continue
            title = _text(file.get("title")) or _text(file.get("name")) or url.rpartition("/")[2]
            unique_id = f"{key[3]}:file:{n}"
            row = file_row(unique_id, room, user.email, key[2], url, title)
            self.builder.add_comment(room, user, (*key[:3], unique_id), row)

    def _unsupported(self, message: Message, where: str) -> None:
        reactions = message.get("reactions")
        if isinstance(reactions, list) and reactions:
            self.report.unsupported("reactions", "the spec has no reactions", where, len(reactions))
        if isinstance(message.get("edited"), dict):
            self.report.unsupported("edit-history", "only a message's last text is kept", where)
        if message.get("pinned_to"):
            self.report.unsupported("pins", "the spec has no pinned messages", where)
        if message.get("attachments") or any(
            isinstance(b, dict) and b.get("type") != "rich_text"
            for b in message.get("blocks") or []
        ):
            self.report.unsupported(
                "bot-blocks",
                "attachments and blocks (bots' cards) have no "
                "place in the spec: the message's text is kept",
                where,
            )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def convert_slack(export: Path, out: Path, options: Options) -> ConversionReport:
    source = Source(export)
    try:
        return SlackConverter(source, out, options).run()
    finally:
        source.close()
