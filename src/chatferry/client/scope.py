"""What a scoped restore brings back, and how a backup's rows compare with a target's.

A :class:`Scope` names rooms, days (in the app's timezone, from the manifest's UTC
offset) and types. :func:`select` picks the comments of those rooms and days (plus the
earlier comments they reply to), the rooms they are in and the users those need.
:func:`compare` sorts rows by what the target already holds: ``new`` (no row with that
key), ``present`` (the same row) or ``conflict`` (the same key, other content; a reply
payload's parent id differs between apps by design and is not compared).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from chatferry.client.manifest import RESOURCES

Row = dict[str, Any]
KEY_FIELDS = {"users": "Email", "rooms": "UniqueId", "comments": "UniqueId"}
MAX_CONFLICTS = 20


@dataclass(frozen=True)
class Scope:
    rooms: frozenset[str] | None = None
    since: date | None = None
    until: date | None = None
    types: tuple[str, ...] = RESOURCES

    @property
    def whole(self) -> bool:
        return (
            self.rooms is None
            and self.since is None
            and self.until is None
            and (self.types == RESOURCES)
        )


def key_of(resource: str, row: Row) -> str:
    return str(row.get(KEY_FIELDS[resource]) or "")


def _day(row: Row, offset: timezone) -> date | None:
    try:
        moment = datetime.fromisoformat(str(row.get("CreatedAt")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(offset).date() if moment.tzinfo else moment.date()


def _in_scope(row: Row, scope: Scope, offset: timezone) -> bool:
    if scope.rooms is not None and row.get("RoomUniqueId") not in scope.rooms:
        return False
    if scope.since is None and scope.until is None:
        return True
    day = _day(row, offset)
    return day is not None and (scope.since or day) <= day <= (scope.until or day)


def comment_days(comments: list[Row], offset: timezone) -> tuple[date, date] | None:
    """The first and last day of the comments (the target is read over them)."""
    days = [d for d in (_day(c, offset) for c in comments) if d is not None]
    return (min(days), max(days)) if days else None


def _with_parents(chosen: list[Row], comments: list[Row]) -> list[Row]:
    """The chosen comments and every earlier comment they reply to, in backup order."""
    by_key = {key_of("comments", c): c for c in comments}
    wanted = {key_of("comments", c) for c in chosen}
    for row in chosen:
        parent = row.get("ParentCommentUniqueId")
        while parent and parent in by_key and parent not in wanted:
            wanted.add(parent)
            parent = by_key[parent].get("ParentCommentUniqueId")
    return [c for c in comments if key_of("comments", c) in wanted]


def select(rows: dict[str, list[Row]], scope: Scope, offset: timezone) -> dict[str, list[Row]]:
    """The rows a scoped restore brings back, by type, in backup order."""
    if scope.whole:
        return rows
    chosen = [c for c in rows["comments"] if _in_scope(c, scope, offset)]
    comments = _with_parents(chosen, rows["comments"])
    room_keys = {c.get("RoomUniqueId") for c in comments} | set(scope.rooms or ())
    rooms = [r for r in rows["rooms"] if r.get("UniqueId") in room_keys]
    emails = {c.get("CreatorEmail") for c in comments}
    for room in rooms:
        emails.add(room.get("CreatorEmail"))
        emails.update(room.get("ParticipantEmails") or [])
    users = [u for u in rows["users"] if u.get("Email") in emails]
    picked = {"users": users, "rooms": rooms, "comments": comments}
    return {t: (picked[t] if t in scope.types else []) for t in RESOURCES}


def comparable(resource: str, row: Row) -> Row:
    if resource != "comments" or not isinstance(row.get("Payload"), dict):
        return row
    payload = {k: v for k, v in row["Payload"].items() if k != "replied_comment_id"}
    return {**row, "Payload": payload}


@dataclass
class Diff:
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {t: {"new": 0, "present": 0, "conflict": 0} for t in RESOURCES}
    )
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    new: dict[str, list[Row]] = field(default_factory=lambda: {t: [] for t in RESOURCES})

    def as_json(self) -> dict[str, Any]:
        return {"counts": self.counts, "conflicts": self.conflicts}


def compare(resource: str, rows: Iterable[Row], held: dict[str, Row], diff: Diff) -> None:
    """Counts each row as new, present or in conflict with the target's row of its key."""
    for row in rows:
        key = key_of(resource, row)
        theirs = held.get(key)
        if theirs is None:
            diff.counts[resource]["new"] += 1
            diff.new[resource].append(row)
        elif comparable(resource, theirs) == comparable(resource, row):
            diff.counts[resource]["present"] += 1
        else:
            diff.counts[resource]["conflict"] += 1
            if len(diff.conflicts) < MAX_CONFLICTS:
                fields = sorted(k for k in row if comparable(resource, row).get(k)
                                != comparable(resource, theirs).get(k))  # fmt: skip
                diff.conflicts.append({"type": resource, "key": key, "fields": fields})
