"""The comments rules without a database: a valid row, then one field changed at a time;
unique ids, rooms, creators and reply parents across the file and the app."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rules_support import NOW, check_rows, deep, found, one_problem

from chatferry.imports.rules import comments
from chatferry.imports.rules.comments import KnownForComments, StoredComment, parse_comment

VALID: dict[str, Any] = {
    "Message": "Halo doc",
    "DisableLinkPreview": False,
    "Type": "text",
    "UniqueId": "c1",
    "CreatorEmail": "a@x.com",
    "RoomUniqueId": "r1",
    "CreatedAt": "2017-05-11T19:14:24Z",
    "Payload": None,
    "ParentCommentUniqueId": "",
}
REPLY_PAYLOAD = {"text": "re", "replied_comment_id": 1}
WORLD = KnownForComments(
    comments={"old": StoredComment(70, 10), "elsewhere": StoredComment(71, 20)},
    room_ids={"r1": 10, "r2": 20},
    user_ids={"a@x.com": 1, "b@x.com": 2},
)


def _comment(unique_id: str, room: str = "r1", **extra: Any) -> dict[str, Any]:
    return {**VALID, "UniqueId": unique_id, "RoomUniqueId": room, **extra}


def _reply(unique_id: str, parent: str, room: str = "r1", **extra: Any) -> dict[str, Any]:
    extra.setdefault("Payload", REPLY_PAYLOAD)
    return _comment(unique_id, room, Type="reply", ParentCommentUniqueId=parent, **extra)


def test_the_valid_row_parses_to_its_values() -> None:
    parsed = parse_comment(0, VALID, NOW)
    assert parsed.problems == []
    draft = parsed.draft
    assert (draft.key, draft.unique_id, draft.room_unique_id, draft.creator_email) == (
        "c1",
        "c1",
        "r1",
        "a@x.com",
    )
    assert (draft.type, draft.message, draft.payload, draft.parent_unique_id) == (
        "text",
        "Halo doc",
        None,
        "",
    )
    assert draft.created_at == datetime(2017, 5, 11, 19, 14, 24, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "value", "attribute", "expected"),
    [
        ("DisableLinkPreview", None, "disable_link_preview", False),
        ("DisableLinkPreview", True, "disable_link_preview", True),
        ("Message", None, "message", ""),
        ("Payload", {"any": ["thing"]}, "payload", {"any": ["thing"]}),
        ("Payload", {"text": "a\x00b"}, "payload", {"text": "a\x00b"}),
        ("ParentCommentUniqueId", None, "parent_unique_id", ""),
        ("CreatedAt", None, "created_at", NOW),
    ],
)
def test_optional_fields(field: str, value: Any, attribute: str, expected: Any) -> None:
    parsed = parse_comment(0, {**VALID, field: value}, NOW)
    assert parsed.problems == []
    assert getattr(parsed.draft, attribute) == expected


BAD: list[tuple[str, Any, str, str]] = [
    ("UniqueId", None, "UniqueId", "UniqueId is required"),
    ("UniqueId", "u" * 201, "UniqueId", "over the limit of 200"),
    ("UniqueId", "c\x00", "UniqueId", "UniqueId contains a NUL character"),
    ("RoomUniqueId", "", "RoomUniqueId", "RoomUniqueId is required"),
    ("RoomUniqueId", 1, "RoomUniqueId", "RoomUniqueId must be a string, got a number"),
    ("RoomUniqueId", "r\x00", "RoomUniqueId", "RoomUniqueId contains a NUL character"),
    ("CreatorEmail", None, "CreatorEmail", "CreatorEmail is required"),
    ("CreatorEmail", "\x00", "CreatorEmail", "CreatorEmail contains a NUL character"),
    ("Type", None, "Type", "Type is required"),
    (
        "Type",
        "sticker",
        "Type",
        "Type 'sticker' is not valid: use one of text, reply, file_attachment",
    ),
    ("Type", "te\x00xt", "Type", "Type contains a NUL character"),
    ("Type", deep(1000), "Type", "Type must be a string, got an array"),
    ("Message", 5, "Message", "Message must be a string, got a number"),
    ("Message", "hello\x00", "Message", "Message contains a NUL character (U+0000)"),
    ("DisableLinkPreview", "yes", "DisableLinkPreview", "must be true or false, got a string"),
    ("DisableLinkPreview", 0, "DisableLinkPreview", "must be true or false, got a number"),
    ("DisableLinkPreview", deep(1000), "DisableLinkPreview", "got an array"),
    ("Payload", [], "Payload", "Payload must be a JSON object or null, got an array"),
    ("Payload", "{}", "Payload", "Payload must be a JSON object or null, got a string"),
    (
        "Payload",
        {"d": deep(1000)},
        "Payload",
        "Payload nests objects and arrays more than 100 deep",
    ),
    ("Payload", deep(1000), "Payload", "Payload must be a JSON object or null, got an array"),
    (
        "ParentCommentUniqueId",
        "c0",
        "ParentCommentUniqueId",
        "ParentCommentUniqueId is only used with Type reply, not text",
    ),
    ("CreatedAt", "2017-05-11 19:14", "CreatedAt", "is not an RFC 3339 date-time"),
    (
        "CreatedAt",
        "0001-01-01T00:00:00+05:00",
        "CreatedAt",
        "CreatedAt '0001-01-01T00:00:00+05:00' is out of range",
    ),
]


@pytest.mark.parametrize(("field", "value", "where", "message"), BAD)
def test_one_bad_field_is_one_problem(field: str, value: Any, where: str, message: str) -> None:
    problem_field, problem_message = one_problem(parse_comment, {**VALID, field: value})
    assert problem_field == where
    assert message in problem_message
    assert len(problem_message) < 250


@pytest.mark.parametrize(
    ("raw", "where", "message"),
    [
        (_reply("c", ""), "ParentCommentUniqueId", "ParentCommentUniqueId is required for a reply"),
        (_reply("c", "p\x00"), "ParentCommentUniqueId", "contains a NUL character"),
        (_reply("c", "p", Payload=None), "Payload", "Payload is required for a reply message"),
        (_comment("c", Type="sticker", ParentCommentUniqueId="p"), "Type", "is not valid"),
    ],
)
def test_reply_fields(raw: dict[str, Any], where: str, message: str) -> None:
    problems = parse_comment(0, raw, NOW).problems
    assert problems and problems[0].field == where
    assert message in problems[0].message


def test_a_parent_with_an_unknown_type_is_refused_for_that_type() -> None:
    raw = _comment("c", Type="sticker", ParentCommentUniqueId="p")
    assert [(p.field, p.message) for p in parse_comment(0, raw, NOW).problems][1] == (
        "ParentCommentUniqueId",
        "ParentCommentUniqueId is only used with Type reply, not this type",
    )


def test_a_reply_parent_that_is_not_a_string_is_reported_twice() -> None:
    problems = parse_comment(0, _reply("c", 5), NOW).problems  # type: ignore[arg-type]
    assert [p.message for p in problems] == [
        "ParentCommentUniqueId must be a string, got a number",
        "ParentCommentUniqueId is required for a reply: the UniqueId of the comment it replies to",
    ]


# --- in the file and against the app -----------------------------------------------


def test_unique_ids_rooms_and_creators() -> None:
    rows = [
        _comment("c0"),
        _comment("old"),
        _comment("c0"),
        _comment("c3", "nope", CreatorEmail="ghost@x.com"),
    ]
    _, log = check_rows(comments, parse_comment, rows, WORLD)
    assert [(p.row, p.key, p.field, p.message) for p in log.kept()] == [
        (2, "old", "UniqueId", "a comment with UniqueId 'old' already exists in this app"),
        (3, "c0", "UniqueId", "UniqueId 'c0' is also used by row 1"),
        (4, "c3", "RoomUniqueId", "RoomUniqueId 'nope' is not a room of this app: import it first"),
        (
            4,
            "c3",
            "CreatorEmail",
            "CreatorEmail 'ghost@x.com' is not a user of this app: import it first",
        ),
    ]


def test_reply_parents_in_the_file_and_in_the_app() -> None:
    rows = [
        _comment("c0"),
        _reply("later", "c3"),
        _reply("other-room", "c0", "r2"),
        _comment("c3"),
        _reply("missing", "nowhere"),
        _reply("stored-other-room", "elsewhere"),
        _reply("self", "self"),
        _reply("unknown-room", "elsewhere", "ghost-room"),
    ]
    _, log = check_rows(comments, parse_comment, rows, WORLD)
    assert [(p.row, p.field, p.message) for p in log.kept()] == [
        (
            2,
            "ParentCommentUniqueId",
            "the parent comment 'c3' comes later in the file (row 4): "
            "put a parent before its replies",
        ),
        (3, "ParentCommentUniqueId", "the parent comment 'c0' (row 1) is in another room"),
        (
            5,
            "ParentCommentUniqueId",
            "no comment with UniqueId 'nowhere' exists in this app or earlier in the file",
        ),
        (6, "ParentCommentUniqueId", "the parent comment 'elsewhere' is in another room"),
        (
            7,
            "ParentCommentUniqueId",
            "the comment names itself as its parent comment: a reply's parent is another comment",
        ),
        (8, "RoomUniqueId", "RoomUniqueId 'ghost-room' is not a room of this app: import it first"),
    ]


def test_replies_point_at_earlier_rows_or_stored_comments() -> None:
    rows = [
        _reply("to-old", "old"),
        _comment("p", DisableLinkPreview=True, CreatorEmail="b@x.com"),
        _reply("to-p", "p", Payload={**REPLY_PAYLOAD, "x": "y"}),
        _reply("to-reply", "to-p"),
    ]
    built, log = check_rows(comments, parse_comment, rows, WORLD)
    assert not log
    assert [(r.unique_id, r.parent_id, r.parent_row) for r in built] == [
        ("to-old", 70, None),
        ("p", None, None),
        ("to-p", None, 1),
        ("to-reply", None, 2),
    ]
    assert [(r.room_id, r.user_id, r.type) for r in built][:2] == [
        (10, 1, "reply"),
        (10, 2, "text"),
    ]
    assert built[1].disable_link_preview is True
    assert built[2].payload == {**REPLY_PAYLOAD, "x": "y"}


def test_a_parent_earlier_in_the_file_wins_over_a_stored_one() -> None:
    # The earlier row reuses a stored unique id (its own problem); the reply is not also
    # checked against the stored comment's room.
    rows = [_comment("elsewhere"), _reply("re", "elsewhere")]
    _, log = check_rows(comments, parse_comment, rows, WORLD)
    assert found(log.kept()) == [(1, "elsewhere", "UniqueId")]


@pytest.mark.parametrize("field", comments.FIELDS)
def test_a_1000_deep_value_in_any_field_is_a_short_problem_on_it(field: str) -> None:
    raw = {**_reply("c", "p"), field: deep(1000)}
    problems = parse_comment(0, raw, NOW).problems
    assert field in [p.field for p in problems]
    assert all(len(p.message) < 120 for p in problems)


# --- a file without problems, read a column at a time ------------------------------


class Text(str):
    """A string of a subclass: valid, but left to the row reader."""


LOCATION = {"name": "Monas", "address": "Gambir", "latitude": -6.1, "longitude": 106.8}
PLAIN_ROWS: list[dict[str, Any]] = [
    VALID,
    _reply("re", "c1", DisableLinkPreview=True),
    _comment("nulls", Message=None, DisableLinkPreview=None, ParentCommentUniqueId=None),
    {key: value for key, value in _comment("bare").items() if key not in ("Message", "Payload")},
    _comment("no-time", CreatedAt=""),
    _comment("null-time", CreatedAt=None),
    _comment("offset", CreatedAt="2017-05-11T19:14:24.5+07:00"),
    _comment("space", CreatedAt="2017-05-11 19:14:24.123456-02:30"),
    _comment("text-payload", Payload={"any": ["thing"]}),
    _comment("nul-payload", Payload={"text": "a\x00b"}),
    _comment("u" * 200, Type="location", Payload=LOCATION),
    _comment("a", Type="file_attachment", Payload={"url": "http://x.example/a.jpg"}),
    _comment("b", Type="custom", Payload={"type": "promo", "content": {"n": [1, {"m": 2}]}}),
]


def _read_row_by_row(rows: list[dict[str, Any]]) -> list[comments.CommentDraft]:
    parsed = [parse_comment(i, raw, NOW) for i, raw in enumerate(rows)]
    assert [p.problems for p in parsed] == [[] for _ in rows]
    return [p.draft for p in parsed]


def test_a_file_without_problems_reads_to_the_drafts_of_the_row_reader() -> None:
    assert comments.plain_drafts(PLAIN_ROWS, NOW) == _read_row_by_row(PLAIN_ROWS)
    times = [_comment(f"t{i}", CreatedAt=None) for i in range(3)]
    assert comments.plain_drafts(times, NOW) == _read_row_by_row(times)
    # Optional keys absent from every row (a file without replies, say)
    optional = ("Message", "DisableLinkPreview", "Payload", "ParentCommentUniqueId", "CreatedAt")
    bare = [{k: v for k, v in _comment(f"b{i}").items() if k not in optional} for i in range(3)]
    assert comments.plain_drafts(bare, NOW) == _read_row_by_row(bare)


@pytest.mark.parametrize(("field", "value", "where", "message"), BAD)
def test_a_row_with_a_problem_leaves_the_file_to_the_row_reader(
    field: str, value: Any, where: str, message: str
) -> None:
    rows = [*PLAIN_ROWS, {**_comment("bad"), field: value}]
    assert comments.plain_drafts(rows, NOW) is None


@pytest.mark.parametrize(
    "raw",
    [
        _reply("c", ""),
        _reply("c", "p\x00"),
        _reply("c", "p", Payload=None),
        _reply("c", "p", Payload={"text": "re", "replied_comment_id": 0}),
        _comment("c", Type="location", Payload={**LOCATION, "latitude": 91}),
        _comment("c", Type="location", Payload={**LOCATION, "map_url": "https://a b.example"}),
        _comment("c", Type="file_attachment", Payload={"url": "ftp://x.example/a"}),
        _comment("c", CreatedAt="2017-05-11T19:14:24Z\n"),
        _comment("c", CreatedAt="2017-05-11T19:14:24Z\n2017-05-11T19:14:24Z"),
        _comment("c", CreatedAt="2017-13-11T19:14:24Z"),
        _comment("c", CreatedAt="9999-12-31T23:59:59-01:00"),
        _comment("c", CreatedAt=1494530064),
    ],
)
def test_other_problems_leave_the_file_to_the_row_reader(raw: dict[str, Any]) -> None:
    assert parse_comment(0, raw, NOW).problems
    assert comments.plain_drafts([VALID, raw], NOW) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("CreatedAt", "2017-05-11t19:14:24z"),
        ("CreatedAt", "2017-05-11T19:14:24.123456789Z"),
        ("UniqueId", Text("c9")),
        ("DisableLinkPreview", 0 == 0),
    ],
)
def test_valid_forms_the_column_pass_leaves_to_the_row_reader(field: str, value: Any) -> None:
    rows = [VALID, {**_comment("c9"), field: value}]
    drafts = _read_row_by_row(rows)
    assert comments.plain_drafts(rows, NOW) in (None, drafts)
    built, log = check_rows(comments, parse_comment, rows, WORLD)
    assert not log
    assert [b.created_at for b in built] == [d.created_at for d in drafts]
