"""db/bulk.py's insert_many: on PostgreSQL through COPY FROM STDIN, on SQLite through
executemany. Either way the stored values are the ones an ORM insert stores (awkward
text included), a unique violation is SQLAlchemy's IntegrityError, and the caller's
transaction decides: rolled back, nothing is kept. A boolean column's values are the
ones its bind processor makes (which refuses what is no boolean), also on the fast path
taken when every value is True or False."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from chatferry.db.bulk import _driver_values, insert_many, reserve_ids
from chatferry.db.engine import transaction
from chatferry.db.models import Comment, table_of
from chatferry.runtime import Runtime
from support.apps import NewApp
from support.rows import add_room, add_user, app_pk

_comments = table_of(Comment)
KEYS = (
    "id", "app_pk", "unique_id", "room_id", "user_id", "type", "message", "payload",
    "disable_link_preview", "parent_id", "created_at",
)  # fmt: skip
# What COPY's text format escapes (backslash, tab, newline, CR) or spells (\N for NULL),
# next to unicode and JSON with its own escapes.
TEXTS = [
    "back\\slash \\N \\\\ \\t",
    "tab\there\nnew line\r\ncarriage",
    "Zoë 李雷 🇮🇩 \u2028",
    "",
    "\\",
]
PAYLOADS = ['{"a":"x\\\\y\\n","b":[1,null]}', None, '{\n\t"spaced": true\r\n}', "\\N", "{}"]
MOMENTS = [
    datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-7))),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
]


@pytest.fixture
def people(runtime: Runtime, new_app: NewApp) -> tuple[int, int, int]:
    pk = app_pk(runtime, new_app("Bulk").app_id)
    with transaction(runtime.sessions) as session:
        user = add_user(session, pk, "bulk@example.com", MOMENTS[0])
        room = add_room(session, pk, "bulk-room", user, [user], MOMENTS[0])
        return pk, room.id, user.id


def _rows(runtime: Runtime, pk: int, room: int, user: int, tag: str) -> list[tuple[object, ...]]:
    with runtime.engine.begin() as conn:
        ids = reserve_ids(conn, _comments, len(TEXTS))
    return [
        (i, pk, f"{tag}-{n}", room, user, "text", text, payload, n % 2 == 0, None, moment)
        for n, (i, text, payload, moment) in enumerate(
            zip(ids, TEXTS, PAYLOADS, MOMENTS, strict=True)
        )
    ]


def test_stored_values_are_the_ones_given(runtime: Runtime, people: tuple[int, int, int]) -> None:
    pk, room, user = people
    rows = _rows(runtime, pk, room, user, "bulk")
    with runtime.engine.begin() as conn:
        insert_many(conn, _comments, KEYS, rows)
    with transaction(runtime.sessions) as session:
        stored = session.scalars(
            select(Comment).where(Comment.app_pk == pk).order_by(Comment.id)
        ).all()
        got = [
            (c.unique_id, c.message, c.payload, c.disable_link_preview, c.created_at)
            for c in stored
        ]
    want = [(r[2], r[6], r[7], r[8], r[10]) for r in rows]
    assert got == want


def test_a_unique_violation_is_an_integrity_error_and_nothing_is_kept(
    runtime: Runtime, people: tuple[int, int, int]
) -> None:
    pk, room, user = people
    with runtime.engine.begin() as conn:
        insert_many(conn, _comments, KEYS, _rows(runtime, pk, room, user, "first")[:1])
    again = _rows(runtime, pk, room, user, "first")  # first-0 exists: the 1st row clashes
    # The clash is the last row: the others were written before it, then rolled back.
    unique = "uq_comments_app_unique_id|UNIQUE constraint failed: comments.app_pk"
    with pytest.raises(IntegrityError, match=unique), runtime.engine.begin() as conn:
        insert_many(conn, _comments, KEYS, again[1:] + again[:1])
    with runtime.engine.connect() as conn:
        unique_ids = conn.scalars(select(_comments.c.unique_id).where(_comments.c.app_pk == pk))
        assert list(unique_ids) == ["first-0"]


@pytest.mark.parametrize("flags", [[True, False, False, True], [True, None, False]])
def test_boolean_values_are_those_of_the_bind_processor(
    runtime: Runtime, flags: list[bool | None]
) -> None:
    column = _comments.c.disable_link_preview
    with runtime.engine.connect() as conn:
        process = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        assert process is not None
        got = _driver_values(conn, _comments, ("id", column.name), list(enumerate(flags)))
    want = [(i, process(flag)) for i, flag in enumerate(flags)]
    assert got == want
    assert [type(value) for _, value in got] == [type(value) for _, value in want]


@pytest.mark.parametrize(("value", "error"), [(2, ValueError), ("yes", TypeError)])
def test_a_value_that_is_no_boolean_is_refused(
    runtime: Runtime, value: object, error: type[Exception]
) -> None:
    rows = [(True,), (value,), (False,)]
    with runtime.engine.connect() as conn, pytest.raises(error):
        _driver_values(conn, _comments, ("disable_link_preview",), rows)
