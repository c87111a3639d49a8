"""A Mattermost bulk export (JSONL: ``version``, ``team``, ``channel``, ``user``, ``post``,
``direct_channel``, ``direct_post``, ...; attachments' ``path`` into its ``data/`` folder)
as a chatferry backup directory. The JSONL is streamed a line at a time."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from chatferry.client.errors import ClientError
from chatferry.convert.builder import Builder, Options
from chatferry.convert.ids import digest, readable_id
from chatferry.convert.model import Room, User, comment_row, file_row
from chatferry.convert.people import add_user
from chatferry.convert.report import ConversionReport
from chatferry.convert.source import Source

FILE_URL = "https://files.invalid/mattermost/"  # files the export holds have no public URL
IGNORED_LINES = {"version"}
UNSUPPORTED_LINES = {
    "team": "the spec has no teams: each team's channels become rooms of the one app",
    "emoji": "custom emoji images have no place in the spec",
    "scheme": "permission schemes have no place in the spec",
    "role": "roles have no place in the spec",
    "bot": "bots have no place in the spec (their posts convert under their user)",
}
Post = dict[str, Any]


def find_jsonl(source: Source) -> str:
    """The export's JSONL member: the only ``.jsonl`` (the shallowest if several)."""
    found = sorted(
        (n for n in source.names() if n.endswith(".jsonl")), key=lambda n: (n.count("/"), n)
    )
    if not found:
        raise ClientError(
            f"{source.path} holds no .jsonl file: give a Mattermost bulk export (the .jsonl, "
            "or the directory or .zip that holds it and its data/ folder)"
        )
    return found[0]


class MattermostConverter:
    def __init__(self, source: Source, out: Path, options: Options) -> None:
        self.source = source
        self.options = options
        self.jsonl = find_jsonl(source)
        self.builder = Builder(out, "mattermost", source.name, options)
        self.report: ConversionReport = self.builder.report
        self.memberships: dict[str, list[str]] = {}
        self.base = ""

    def run(self) -> ConversionReport:
        try:
            self._read()
        except BaseException:
            self.builder.spool.remove()
            raise
        for key, members in self.memberships.items():
            if key in self.builder.rooms:
                self.builder.rooms[key].members.extend(members)
        return self.builder.finish()

    def _read(self) -> None:
        self.base = self.jsonl.rpartition("/")[0]
        first = True
        for number, line in enumerate(self.source.lines(self.jsonl), 1):
            if line.strip():
                self._line(number, line, first)
                first = False
        if first:
            raise ClientError(f"{self.source.path}: {self.jsonl} is empty: it is no bulk export")

    def _line(self, number: int, line: bytes, first: bool) -> None:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if first:
                raise ClientError(
                    f"{self.source.path}: line 1 is not JSON ({exc}): it is not a bulk export"
                ) from None
            self.report.broken_record("not-json", "the line is not JSON", f"line {number}")
            return
        kind = record.get("type") if isinstance(record, dict) else None
        if first and kind != "version":
            raise ClientError(
                f"{self.source.path}: the first line is not a version line: it is not a "
                "Mattermost bulk export"
            )
        body = record.get(kind) if isinstance(kind, str) else None
        if kind in IGNORED_LINES:
            return
        handler = HANDLERS.get(str(kind))
        if handler is None or not isinstance(body, dict):
            self._other(number, kind, body)
            return
        handler(self, number, body)

    def _other(self, number: int, kind: Any, body: Any) -> None:
        if kind in UNSUPPORTED_LINES:
            self.report.unsupported(f"{kind}-lines", UNSUPPORTED_LINES[kind], f"line {number}")
            if kind == "team" and isinstance(body, dict):
                self.builder.workspace += f"{body.get('name')}\n"
        elif kind in HANDLERS:
            self.report.broken_record(
                f"{kind}-without-body", f"a {kind} line without its {kind} object", f"line {number}"
            )
        else:
            self.report.unsupported(
                f"{kind}-lines", "a line type the converter does not know", f"line {number}"
            )

    # -- lines ------------------------------------------------------------------------

    def _channel(self, number: int, body: dict[str, Any]) -> None:
        team, name = _text(body.get("team")), _text(body.get("name"))
        if not team or not name:
            self.report.leave_out(
                "rooms",
                "channel-without-name",
                "a channel needs its team and name",
                f"line {number}",
            )
            return
        room = Room(
            key=f"{team}/{name}",
            unique_id=readable_id("mattermost", team, name),
            name=_text(body.get("display_name")) or name,
            kind="channel",
            members=[],
            options=_options(body),
        )
        self.builder.add_room(room)

    def _user(self, number: int, body: dict[str, Any]) -> None:
        username = _text(body.get("username"))
        if not username:
            self.report.leave_out(
                "users", "user-without-username", "a user needs a username", f"line {number}"
            )
            return
        full = f"{_text(body.get('first_name'))} {_text(body.get('last_name'))}"
        names = [full, _text(body.get("nickname")), username]
        domain = self.options.email_domain
        add_user(self.builder, username, _text(body.get("email")), names, "", domain)
        for team in body.get("teams") or []:
            if not isinstance(team, dict):
                continue
            for channel in team.get("channels") or []:
                if isinstance(channel, dict) and channel.get("name"):
                    key = f"{team.get('name')}/{channel.get('name')}"
                    self.memberships.setdefault(key, []).append(username)

    def _direct_channel(self, number: int, body: dict[str, Any]) -> None:
        members = _members(body, "members", "participants")
        if not members:
            self.report.leave_out(
                "rooms",
                "direct-channel-without-members",
                "a direct channel needs its members",
                f"line {number}",
            )
            return
        self.builder.add_room(self._direct_room(members))

    def _direct_room(self, members: list[str]) -> Room:
        people = sorted(set(members))
        kind = "dm" if len(people) <= 2 else "group_dm"
        names = [self.builder.users[m].name if m in self.builder.users else m for m in people]
        return Room(
            key="dm:" + ",".join(people),
            unique_id=readable_id("mattermost", kind, *people),
            name=", ".join(names),
            kind=kind,
            members=people,
        )

    def _post(self, number: int, body: dict[str, Any]) -> None:
        key = f"{_text(body.get('team'))}/{_text(body.get('channel'))}"
        room = self.builder.rooms.get(key)
        if room is None:
            self._lose_thread(
                body,
                "unknown-channel",
                "its channel is not in the export",
                f"line {number} ({key})",
            )
            return
        self._thread(room, body, number)

    def _direct_post(self, number: int, body: dict[str, Any]) -> None:
        members = _members(body, "channel_members", "channel_participants")
        if not members:
            self._lose_thread(
                body, "direct-post-without-members", "it names no channel members", f"line {number}"
            )
            return
        room = self._direct_room(members)
        if room.key not in self.builder.rooms:
            self.report.change(
                "direct-channel-implied",
                "a direct post's channel has no "
                "direct_channel line: the room is made from its members",
                room.key,
            )
            self.builder.add_room(room)
        self._thread(self.builder.rooms[room.key], body, number)

    # -- posts ------------------------------------------------------------------------

    def _lose_thread(self, body: Post, kind: str, reason: str, where: str) -> None:
        replies = body.get("replies")
        count = 1 + (len(replies) if isinstance(replies, list) else 0)
        self.report.leave_out("comments", kind, f"{reason} (with its replies)", where, count)

    def _thread(self, room: Room, post: Post, number: int) -> None:
        root = self._message(room, post, number, None)
        replies = post.get("replies") or []
        if not isinstance(replies, list):
            replies = []
        for reply in replies:
            if root is None:
                self.report.leave_out(
                    "comments",
                    "reply-to-a-left-out-post",
                    "the post it replies to was left out",
                    f"line {number}",
                )
            elif isinstance(reply, dict):
                self._message(room, reply, number, root)
            else:
                self.report.broken_record(
                    "reply-not-an-object", "a reply is not an object", f"line {number}"
                )

    def _message(
        self, room: Room, post: Post, number: int, root: tuple[str, int] | None
    ) -> tuple[str, int] | None:
        """Writes the post (and its files); its (UniqueId, time), or None if left out."""
        where = f"line {number}"
        user = self.builder.users.get(_text(post.get("user")))
        ms = post.get("create_at")
        if user is None:
            self.report.leave_out(
                "comments", "unknown-user", "its user is not in the export", where
            )
            return None
        if not isinstance(ms, int) or isinstance(ms, bool):
            self.report.leave_out("comments", "no-create-at", "it has no create_at time", where)
            return None
        if _text(post.get("type")).startswith("system_") and not self.options.keep_system_messages:
            self.report.leave_out(
                "comments",
                "system-message",
                "join/leave and other system "
                "messages are left out (--keep-system-messages keeps them)",
                where,
            )
            return None
        text = _text(post.get("message"))
        parent = root[0] if root else ""
        # Not the text: an edited post keeps its id when the export is converted again.
        unique_id = "mm-" + digest(room.unique_id, parent, user.key, str(ms))
        placed = max(ms, root[1]) if root else ms
        files = [a for a in post.get("attachments") or [] if isinstance(a, dict)]
        if text or not files or root or post.get("replies"):
            row = comment_row(unique_id, room, user.email, ms, text, parent)
            self.builder.add_comment(room, user, (placed, int(bool(root)), ms, unique_id), row)
        self._files(room, user, files, (placed, int(bool(root)), ms, unique_id))
        self._unsupported(post, where)
        return unique_id, placed

    def _files(
        self, room: Room, user: User, files: list[dict[str, Any]], key: tuple[int, int, int, str]
    ) -> None:
        for n, attachment in enumerate(files, 1):
            path = _text(attachment.get("path")).lstrip("/")
            if not path:
                self.report.broken_record(
                    "attachment-without-path", "an attachment needs its path", key[3]
                )
                continue
            url = FILE_URL + quote(path)
            title = path.rpartition("/")[2]
            unique_id = f"{key[3]}:file:{n}"
            self.builder.add_comment(
                room,
                user,
                (*key[:3], unique_id),
                file_row(unique_id, room, user.email, key[2], url, title),
            )
            self._store(url, path, key)

    def _store(self, url: str, path: str, key: tuple[int, int, int, str]) -> None:
        if url in self.builder.attachments.index:
            return
        for name in (f"{self.base}/{path}".lstrip("/"), f"{self.base}/data/{path}".lstrip("/")):
            if self.source.has(name):
                content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
                with self.source.open(name) as stream:
                    from chatferry.convert.ids import rfc3339

                    self.builder.attachments.add(url, stream, content_type, rfc3339(key[2]))
                return
        self.report.change(
            "attachment-bytes-missing",
            "the export's data/ folder does not hold "
            "the file: its comment keeps the URL, with nothing to re-host",
            path,
        )

    def _unsupported(self, post: Post, where: str) -> None:
        reactions = post.get("reactions")
        if isinstance(reactions, list) and reactions:
            self.report.unsupported("reactions", "the spec has no reactions", where, len(reactions))
        if isinstance(post.get("edit_at"), int) and post["edit_at"] > 0:
            self.report.unsupported("edit-history", "only a post's last text is kept", where)
        if post.get("is_pinned") is True:
            self.report.unsupported("pins", "the spec has no pinned messages", where)
        if post.get("flagged_by"):
            self.report.unsupported("flags", "the spec has no flagged (saved) messages", where)
        props = post.get("props")
        if isinstance(props, dict) and props.get("attachments"):
            self.report.unsupported(
                "bot-attachments",
                "message attachments (bots' cards) "
                "have no place in the spec: the post's text is kept",
                where,
            )


HANDLERS = {
    "channel": MattermostConverter._channel,
    "user": MattermostConverter._user,
    "post": MattermostConverter._post,
    "direct_channel": MattermostConverter._direct_channel,
    "direct_post": MattermostConverter._direct_post,
}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _members(body: dict[str, Any], *keys: str) -> list[str]:
    for key in keys:
        value = body.get(key)
        if isinstance(value, list):
            names = [v.get("username") if isinstance(v, dict) else v for v in value]
            return [n for n in names if isinstance(n, str) and n]
    return []


def _options(body: dict[str, Any]) -> str:
    kept = {k: body[k] for k in ("type", "header", "purpose") if _text(body.get(k))}
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS).decode() if kept else ""


def convert_mattermost(export: Path, out: Path, options: Options) -> ConversionReport:
    source = Source(export)
    try:
        return MattermostConverter(source, out, options).run()
    finally:
        source.close()
