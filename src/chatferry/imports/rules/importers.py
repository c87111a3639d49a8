"""One importer per resource, in a registry: ``check`` runs the rules in order (parse each
row, uniqueness in the file, one batched look-up of the app's data, the references) and
``write`` inserts the checked rows in the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from chatferry.imports import write
from chatferry.imports.rules import comments, lookups, rooms, users
from chatferry.imports.rules.common import Parsed, Problem, ProblemLog
from chatferry.resources import Resource

D = TypeVar("D")  # a parsed row
K = TypeVar("K")  # what the app already holds of what the rows name
R = TypeVar("R")  # a row ready to write


@dataclass(frozen=True)
class Importer(Generic[D, K, R]):
    resource: Resource
    fields: tuple[str, ...]
    parse: Callable[[int, dict[str, Any], datetime], Parsed[D]]
    # Every row's draft at once when no row has a problem of its own, else None.
    plain: Callable[[Sequence[dict[str, Any]], datetime], list[D] | None]
    in_file: Callable[[Sequence[D]], Iterable[Problem]]
    lookup: Callable[[Connection, int, Sequence[D]], K]
    against_app: Callable[[Sequence[D], K], Iterable[Problem]]
    build_rows: Callable[[Sequence[D], K], list[R]]
    write_rows: Callable[[Session, int, Sequence[R], list[str]], None]
    plain_passwords: Callable[[Sequence[R]], list[str]]

    def check(
        self, conn: Connection, app_pk: int, raw_rows: Sequence[dict[str, Any]], now: datetime
    ) -> tuple[list[R], ProblemLog]:
        """The rows to write and no problem, or no rows and every problem counted."""
        log = ProblemLog(self.fields)
        drafts = self.plain(raw_rows, now)
        if drafts is None:
            drafts = []
            for index, raw in enumerate(raw_rows):
                parsed = self.parse(index, raw, now)
                log.extend(parsed.problems)
                drafts.append(parsed.draft)
        log.extend(self.in_file(drafts))
        known = self.lookup(conn, app_pk, drafts)
        log.extend(self.against_app(drafts, known))
        return ([] if log else self.build_rows(drafts, known)), log

    def write(self, session: Session, app_pk: int, rows: Sequence[R], hashes: list[str]) -> None:
        """``hashes`` holds the hashes of ``plain_passwords(rows)``, in the same order."""
        self.write_rows(session, app_pk, rows, hashes)


def _row_by_row(_rows: Sequence[dict[str, Any]], _now: datetime) -> None:
    """For the resources whose rows are only read one by one."""
    return None


def _no_passwords(_rows: Sequence[Any]) -> list[str]:
    return []


def _write_rooms(
    session: Session, app_pk: int, rows: Sequence[rooms.RoomRow], _hashes: list[str]
) -> None:
    write.write_rooms(session, app_pk, rows)


def _write_comments(
    session: Session, app_pk: int, rows: Sequence[comments.CommentRow], _hashes: list[str]
) -> None:
    write.write_comments(session, app_pk, rows)


IMPORTERS: dict[Resource, Importer[Any, Any, Any]] = {
    Resource.USERS: Importer(
        Resource.USERS,
        users.FIELDS,
        users.parse_user,
        _row_by_row,
        users.in_file,
        lookups.lookup_users,
        users.against_app,
        users.build_rows,
        write.write_users,
        users.plain_passwords,
    ),
    Resource.ROOMS: Importer(
        Resource.ROOMS,
        rooms.FIELDS,
        rooms.parse_room,
        _row_by_row,
        rooms.in_file,
        lookups.lookup_for_rooms,
        rooms.against_app,
        rooms.build_rows,
        _write_rooms,
        _no_passwords,
    ),
    Resource.COMMENTS: Importer(
        Resource.COMMENTS,
        comments.FIELDS,
        comments.parse_comment,
        comments.plain_drafts,
        comments.in_file,
        lookups.lookup_for_comments,
        comments.against_app,
        comments.build_rows,
        _write_comments,
        _no_passwords,
    ),
}


def importer_for(resource: str) -> Importer[Any, Any, Any]:
    """The importer of a resource name ("users", "rooms" or "comments")."""
    return IMPORTERS[Resource(resource)]
