"""Mattermost bulk exports and Slack exports in their documented shapes, written by tests.

Mattermost: the bulk export JSONL (one object a line, ``type`` naming the object: version,
team, channel, user with its team and channel memberships, post with nested ``replies``,
``reactions`` and ``attachments`` whose ``path`` points into ``data/``, direct_channel,
direct_post, emoji). Slack: users.json, channels.json, groups.json, dms.json, mpims.json,
and a folder per conversation with one JSON array of messages per day (``ts``,
``thread_ts``, ``files`` with ``url_private``, ``subtype`` for joins, ``<@U..>`` mentions).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z in ms
HOUR = 3_600_000
DAY = 24 * HOUR


def _jsonl(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def mm_user(name: str, email: str | None, channels: list[tuple[str, str]]) -> dict[str, Any]:
    teams: dict[str, list[dict[str, str]]] = {}
    for team, channel in channels:
        teams.setdefault(team, []).append({"name": channel, "roles": "channel_user"})
    user: dict[str, Any] = {
        "username": name,
        "first_name": name.title(),
        "last_name": "Doe",
        "nickname": "",
        "roles": "system_user",
        "locale": "en",
        "teams": [{"name": t, "roles": "team_user", "channels": c} for t, c in teams.items()],
    }
    if email is not None:
        user["email"] = email
    return {"type": "user", "user": user}


def mm_post(
    team: str, channel: str, user: str, message: str, at: int, **extra: Any
) -> dict[str, Any]:
    post = {"team": team, "channel": channel, "user": user, "message": message, "create_at": at}
    return {"type": "post", "post": {**post, **extra}}


def mattermost_lines(days: int = 40) -> list[dict[str, Any]]:
    """Two teams with a ``general`` each, a private channel, DMs, a group DM, threads,
    files, reactions, a system message, and the rule-breaking cases."""
    lines: list[dict[str, Any]] = [
        {"type": "version", "version": 1, "info": {"generator": "test", "version": "9"}},
        {"type": "team", "team": {"name": "eng", "display_name": "Engineering", "type": "O"}},
        {"type": "team", "team": {"name": "ops", "display_name": "Operations", "type": "I"}},
        {
            "type": "channel",
            "channel": {
                "team": "eng",
                "name": "general",
                "display_name": "General",
                "type": "O",
                "header": "hi",
            },
        },
        {
            "type": "channel",
            "channel": {
                "team": "ops",
                "name": "general",
                "display_name": "Ops General",
                "type": "O",
            },
        },
        {
            "type": "channel",
            "channel": {"team": "eng", "name": "secret", "display_name": "Secret", "type": "P"},
        },
        mm_user(
            "alice",
            "alice@example.com",
            [("eng", "general"), ("eng", "secret"), ("ops", "general")],
        ),
        mm_user("bob", "bob@example.com", [("eng", "general"), ("ops", "general")]),
        mm_user("carol", "carol@example.com", [("eng", "secret")]),
        mm_user("nomail", None, [("eng", "general")]),
        {"type": "emoji", "emoji": {"name": "party", "image": "data/emoji/party.png"}},
    ]
    for day in range(days):
        at = T0 + day * DAY
        lines.append(mm_post("eng", "general", "alice", f"day {day} hello @bob", at))
        lines.append(mm_post("ops", "general", "bob", f"ops day {day}", at + HOUR))
    lines += [
        mm_post(
            "eng",
            "general",
            "alice",
            "thread root",
            T0 + 2 * DAY + 5 * HOUR,
            replies=[
                {"user": "bob", "message": "first reply", "create_at": T0 + 2 * DAY + 6 * HOUR},
                {
                    "user": "carol",
                    "message": "reply from before the root",
                    "create_at": T0 + 1 * DAY,
                },
                {
                    "user": "alice",
                    "message": "",
                    "create_at": T0 + 2 * DAY + 7 * HOUR,
                    "attachments": [{"path": "data/files/reply.txt"}],
                },
            ],
            reactions=[{"user": "bob", "emoji_name": "+1", "create_at": T0 + 3 * DAY}],
            is_pinned=True,
            edit_at=T0 + 3 * DAY,
        ),
        mm_post(
            "eng",
            "secret",
            "carol",
            "see the file",
            T0 + 3 * DAY,
            attachments=[{"path": "data/files/report.pdf"}, {"path": "data/files/missing.png"}],
        ),
        mm_post("eng", "general", "bob", "bob joined", T0 + 4 * DAY, type="system_join_channel"),
        mm_post(
            "eng",
            "nowhere",
            "alice",
            "a post in a channel that does not exist",
            T0 + 4 * DAY,
            replies=[{"user": "bob", "message": "lost too", "create_at": T0 + 4 * DAY + 1}],
        ),
        mm_post("eng", "general", "ghost", "a post by a user who is not there", T0 + 5 * DAY),
        {"type": "direct_channel", "direct_channel": {"members": ["alice", "bob"]}},
        {"type": "direct_channel", "direct_channel": {"members": ["alice", "bob", "carol"]}},
        {"type": "direct_channel", "direct_channel": {"members": ["carol"]}},
        {
            "type": "direct_post",
            "direct_post": {
                "channel_members": ["alice", "bob"],
                "user": "bob",
                "message": "psst",
                "create_at": T0 + 6 * DAY,
                "replies": [{"user": "alice", "message": "yes?", "create_at": T0 + 6 * DAY + 1000}],
            },
        },
        {
            "type": "direct_post",
            "direct_post": {
                "channel_members": ["alice", "bob", "carol"],
                "user": "carol",
                "message": "group hello",
                "create_at": T0 + 7 * DAY,
            },
        },
        {
            "type": "direct_post",
            "direct_post": {
                "channel_members": ["carol"],
                "user": "carol",
                "message": "note to self",
                "create_at": T0 + 8 * DAY,
            },
        },
    ]
    return lines


MM_FILES = {"files/reply.txt": b"reply attachment\n", "files/report.pdf": b"%PDF-1.4 report"}


def write_mattermost(directory: Path, lines: list[dict[str, Any]] | None = None) -> Path:
    """The export as a directory: ``export.jsonl`` and ``data/``; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    _jsonl(directory / "export.jsonl", mattermost_lines() if lines is None else lines)
    for name, data in MM_FILES.items():
        path = directory / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return directory


def zip_directory(directory: Path, path: Path, top: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(directory.rglob("*")):
            if file.is_file():
                archive.write(file, f"{top}{file.relative_to(directory).as_posix()}")
    return path


def slack_user(uid: str, name: str, email: str | None, **extra: Any) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "real_name": name.title() + " Smith",
        "display_name": name,
        "image_72": f"https://avatars.example.com/{uid}.png",
    }
    if email:
        profile["email"] = email
    return {
        "id": uid,
        "team_id": "T1",
        "name": name,
        "deleted": False,
        "real_name": profile["real_name"],
        "profile": profile,
        **extra,
    }


def ts(ms: int, micro: int = 0) -> str:
    return f"{ms // 1000}.{(ms % 1000) * 1000 + micro:06d}"


def slack_message(user: str, text: str, at: int, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "user": user, "text": text, "ts": ts(at), **extra}


def slack_export(days: int = 40) -> dict[str, Any]:
    """name -> JSON value of every member of a Slack export."""
    members: dict[str, Any] = {
        "users.json": [
            slack_user("U1", "ada", "ada@example.com"),
            slack_user("U2", "bo", "bo@example.com"),
            slack_user("U3", "cy", None),  # no email: a placeholder
            slack_user("U4", "di", "di@example.com"),
        ],
        "channels.json": [
            {
                "id": "C1",
                "name": "general",
                "created": T0 // 1000,
                "creator": "U1",
                "members": ["U1", "U2", "U3"],
                "purpose": {"value": "everything"},
            },
            {
                "id": "C2",
                "name": "random",
                "created": T0 // 1000,
                "creator": "U2",
                "members": ["U2", "U4"],
            },
        ],
        "groups.json": [
            {
                "id": "G1",
                "name": "private",
                "created": T0 // 1000,
                "creator": "U1",
                "members": ["U1", "U4"],
            }
        ],
        "dms.json": [
            {"id": "D1", "created": T0 // 1000, "members": ["U1", "U2"]},
            {"id": "D2", "created": T0 // 1000, "members": ["U3"]},
        ],
        "mpims.json": [
            {
                "id": "G2",
                "name": "mpdm-ada--bo--cy-1",
                "created": T0 // 1000,
                "creator": "U1",
                "members": ["U1", "U2", "U3"],
            }
        ],
    }
    for day in range(days):
        at = T0 + day * DAY
        stamp = _day(at)
        members[f"general/{stamp}.json"] = [
            slack_message("U1", f"day {day} hi <@U2> and <!channel>", at),
            slack_message("U2", f"random {day}", at + HOUR),
        ]
        members[f"random/{stamp}.json"] = [slack_message("U4", f"r {day}", at)]
    root = T0 + 2 * DAY + 5 * HOUR
    members[f"general/{_day(T0 + 2 * DAY)}.json"] += [
        slack_message(
            "U1",
            "thread root <#C2|random>",
            root,
            thread_ts=ts(root),
            reply_count=2,
            reactions=[{"name": "tada", "users": ["U2"], "count": 1}],
            edited={"user": "U1", "ts": ts(root + 1000)},
        ),
        slack_message("U2", "a reply", root + 1000, thread_ts=ts(root), parent_user_id="U1"),
        slack_message(
            "U3",
            "a reply with a file",
            root + 2000,
            thread_ts=ts(root),
            files=[
                {
                    "id": "F1",
                    "name": "a.png",
                    "title": "A picture",
                    "mimetype": "image/png",
                    "url_private": "https://files.slack.com/files-pri/T1-F1/a.png",
                }
            ],
        ),
        slack_message("U2", "orphan reply", root + 3000, thread_ts=ts(root - 99 * HOUR)),
        {
            "type": "message",
            "subtype": "channel_join",
            "user": "U3",
            "text": "<@U3> has joined the channel",
            "ts": ts(root + 4000),
        },
        slack_message("U9", "unknown user", root + 5000),
        {
            "type": "message",
            "subtype": "bot_message",
            "bot_id": "B1",
            "username": "deploybot",
            "text": "deployed",
            "ts": ts(root + 6000),
            "attachments": [{"fallback": "x", "text": "build 7"}],
        },
        {
            "type": "message",
            "user": "U1",
            "text": "",
            "ts": ts(root + 7000),
            "files": [{"id": "F2", "mode": "hidden_by_limit"}],
        },
    ]
    members[f"private/{_day(T0 + 3 * DAY)}.json"] = [
        slack_message("U4", "secret &amp; safe", T0 + 3 * DAY)
    ]
    members[f"D1/{_day(T0 + 4 * DAY)}.json"] = [slack_message("U1", "dm", T0 + 4 * DAY)]
    members[f"D2/{_day(T0 + 4 * DAY)}.json"] = [slack_message("U3", "note to self", T0 + 4 * DAY)]
    members[f"mpdm-ada--bo--cy-1/{_day(T0 + 5 * DAY)}.json"] = [
        slack_message("U3", "mpim", T0 + 5 * DAY)
    ]
    members[f"ghost-channel/{_day(T0 + 5 * DAY)}.json"] = [
        slack_message("U1", "lost", T0 + 5 * DAY)
    ]
    return members


def _day(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


def write_slack(directory: Path, members: dict[str, Any] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in (slack_export() if members is None else members).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    return directory
