"""The rooms rules without a database: a valid row, then one field changed at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from rules_support import NOW, check_rows, deep, found, one_problem

from chatferry.imports.rules import rooms
from chatferry.imports.rules.rooms import KnownForRooms, parse_room

VALID: dict[str, Any] = {
    "Name": "Qiscus Family Super",
    "Type": "group",
    "Options": "",
    "CreatorEmail": "a@x.com",
    "CreatedAt": "2017-05-11T06:35:27Z",
    "AvatarUrl": "",
    "UniqueId": "r1",
    "ParticipantEmails": ["a@x.com", "b@x.com", "c@x.com"],
}
SINGLE = {**VALID, "Type": "single", "ParticipantEmails": ["b@x.com", "a@x.com"]}
PEOPLE = {"a@x.com": 1, "b@x.com": 2, "c@x.com": 3}
EVERYONE = KnownForRooms(unique_ids=set(), user_ids=PEOPLE)


def test_the_valid_row_parses_to_its_values() -> None:
    parsed = parse_room(0, VALID, NOW)
    assert parsed.problems == []
    draft = parsed.draft
    assert (draft.key, draft.unique_id, draft.name, draft.type) == (
        "r1",
        "r1",
        "Qiscus Family Super",
        "group",
    )
    assert draft.participant_emails == ("a@x.com", "b@x.com", "c@x.com")
    assert draft.created_at == datetime(2017, 5, 11, 6, 35, 27, tzinfo=UTC)


def test_a_single_room_is_named_after_its_two_participants() -> None:
    parsed = parse_room(0, {**SINGLE, "Name": "ignored"}, NOW)
    assert parsed.problems == []
    assert parsed.draft.name == "b@x.com a@x.com"


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (None, ""),
        ("", ""),
        ("plain text", "plain text"),
        ({"color": "teal", "n": [1, {"x": None}]}, '{"color":"teal","n":[1,{"x":null}]}'),
        ({"nul": "a\x00b"}, '{"nul":"a\\u0000b"}'),
        ({"d": deep(99)}, orjson.dumps({"d": deep(99)}).decode()),
    ],
)
def test_options_string_or_object(value: Any, stored: str) -> None:
    parsed = parse_room(0, {**VALID, "Options": value}, NOW)
    assert parsed.problems == []
    assert parsed.draft.options == stored


BAD: list[tuple[str, Any, str, str]] = [
    ("UniqueId", None, "UniqueId", "UniqueId is required"),
    ("UniqueId", 5, "UniqueId", "UniqueId must be a string, got a number"),
    ("UniqueId", "u" * 201, "UniqueId", "UniqueId is 201 characters long, over the limit of 200"),
    ("UniqueId", "r\x00", "UniqueId", "UniqueId contains a NUL character"),
    ("CreatorEmail", None, "CreatorEmail", "CreatorEmail is required"),
    ("CreatorEmail", ["a@x.com"], "CreatorEmail", "must be a string, got an array"),
    ("CreatorEmail", "a@x.com\x00", "CreatorEmail", "CreatorEmail contains a NUL character"),
    ("ParticipantEmails", None, "ParticipantEmails", "ParticipantEmails is required"),
    ("ParticipantEmails", "a@x.com", "ParticipantEmails", "must be a list of email strings"),
    ("ParticipantEmails", ["a@x.com", 3], "ParticipantEmails", "must be a list of email strings"),
    ("ParticipantEmails", ["a@x.com", ""], "ParticipantEmails", "must be a list of email strings"),
    ("ParticipantEmails", [deep(1000)], "ParticipantEmails", "must be a list of email strings"),
    ("ParticipantEmails", [], "ParticipantEmails", "ParticipantEmails is empty"),
    (
        "ParticipantEmails",
        ["a@x.com", "a@x.com"],
        "ParticipantEmails",
        "'a@x.com' is listed more than once",
    ),
    (
        "ParticipantEmails",
        ["a@x.com", "b\x00@x.com"],
        "ParticipantEmails",
        "an email of ParticipantEmails contains a NUL character",
    ),
    ("Type", None, "Type", "Type is required"),
    ("Type", "channel", "Type", 'Type \'channel\' is not valid: use "single" or "group"'),
    ("Type", "group\x00", "Type", "Type contains a NUL character"),
    ("Type", "g" * 5000, "Type", "Type '" + "g" * 60 + "\u2026' is not valid"),
    ("Name", 3, "Name", "Name must be a string, got a number"),
    ("Name", "a\x00", "Name", "Name contains a NUL character"),
    ("Options", 5, "Options", "Options must be a string or a JSON object, got a number"),
    ("Options", ["x"], "Options", "Options must be a string or a JSON object, got an array"),
    ("Options", "{\x00}", "Options", "Options contains a NUL character"),
    ("Options", {"d": deep(100)}, "Options", "Options nests objects and arrays more than 100 deep"),
    ("Options", {"d": deep(1000)}, "Options", "more than 100 deep"),
    ("AvatarUrl", "not a url", "AvatarUrl", "AvatarUrl 'not a url' is not an absolute http(s) URL"),
    ("AvatarUrl", "https://a.b/\x00.png", "AvatarUrl", "AvatarUrl contains a NUL character"),
    ("CreatedAt", "yesterday", "CreatedAt", "CreatedAt 'yesterday' is not an RFC 3339 date-time"),
    ("CreatedAt", "9999-12-31T23:59:59-23:59", "CreatedAt", "is out of range"),
    ("CreatedAt", {"at": deep(1000)}, "CreatedAt", "CreatedAt (an object) is not an RFC 3339"),
]


@pytest.mark.parametrize(("field", "value", "where", "message"), BAD)
def test_one_bad_field_is_one_problem(field: str, value: Any, where: str, message: str) -> None:
    problem_field, problem_message = one_problem(parse_room, {**VALID, field: value})
    assert problem_field == where
    assert message in problem_message
    assert len(problem_message) < 250


@pytest.mark.parametrize(
    ("participants", "creator", "where", "message"),
    [
        (
            ["a@x.com", "b@x.com", "c@x.com"],
            "a@x.com",
            "ParticipantEmails",
            "a single room needs exactly 2 participants, this one has 3",
        ),
        (
            ["a@x.com"],
            "a@x.com",
            "ParticipantEmails",
            "a single room needs exactly 2 participants, this one has 1",
        ),
        (
            ["a@x.com", "b@x.com"],
            "c@x.com",
            "CreatorEmail",
            "CreatorEmail 'c@x.com' must be one of the single room's participants",
        ),
    ],
)
def test_single_room_rules(participants: list[str], creator: str, where: str, message: str) -> None:
    raw = {**SINGLE, "ParticipantEmails": participants, "CreatorEmail": creator}
    assert one_problem(parse_room, raw) == (where, message)


def test_every_problem_of_a_row_is_reported_in_field_order() -> None:
    raw = {
        **VALID,
        "UniqueId": "r",
        "ParticipantEmails": ["a@x.com", "a@x.com", "ghost@x.com"],
        "CreatorEmail": "nobody@x.com",
        "CreatedAt": "then",
        "Options": 1,
    }
    rows, log = check_rows(rooms, parse_room, [raw], EVERYONE)
    assert rows == []
    assert [(p.field, p.message) for p in log.kept()] == [
        ("CreatorEmail", "CreatorEmail 'nobody@x.com' is not a user of this app: import it first"),
        ("ParticipantEmails", "'a@x.com' is listed more than once"),
        (
            "ParticipantEmails",
            "participant 'ghost@x.com' is not a user of this app: import it first",
        ),
        ("Options", "Options must be a string or a JSON object, got a number"),
        (
            "CreatedAt",
            "CreatedAt 'then' is not an RFC 3339 date-time: use e.g. 2017-05-10T11:46:30Z",
        ),
    ]


# --- in the file and against the app -----------------------------------------------


def test_unique_ids_are_unique_in_the_file_and_new_to_the_app() -> None:
    known = KnownForRooms(unique_ids={"old"}, user_ids=PEOPLE)
    rows = [{**VALID, "UniqueId": u} for u in ("r0", "old", "r0", "old", "r4")]
    _, log = check_rows(rooms, parse_room, rows, known)
    assert [(p.row, p.key, p.message) for p in log.kept()] == [
        (2, "old", "a room with UniqueId 'old' already exists in this app"),
        # Rows are numbered as the file's reader counts them: the first object is row 1.
        (3, "r0", "UniqueId 'r0' is also used by row 1"),
        (4, "old", "UniqueId 'old' is also used by row 2"),
    ]


def test_creators_and_participants_must_be_users_of_the_app() -> None:
    rows = [
        {**VALID, "CreatorEmail": "ghost@x.com"},
        {**VALID, "UniqueId": "r2", "ParticipantEmails": ["a@x.com", "x@x.com", "y@x.com"]},
    ]
    _, log = check_rows(rooms, parse_room, rows, EVERYONE)
    assert found(log.kept()) == [
        (1, "r1", "CreatorEmail"),
        (2, "r2", "ParticipantEmails"),
        (2, "r2", "ParticipantEmails"),
    ]
    assert [p.message for p in log.kept()][1:] == [
        "participant 'x@x.com' is not a user of this app: import it first",
        "participant 'y@x.com' is not a user of this app: import it first",
    ]


def test_rows_to_write_name_users_by_id_in_participant_order() -> None:
    rows, log = check_rows(rooms, parse_room, [VALID, {**SINGLE, "UniqueId": "s"}], EVERYONE)
    assert not log
    assert [(r.unique_id, r.creator_id, r.participant_ids, r.name) for r in rows] == [
        ("r1", 1, [1, 2, 3], "Qiscus Family Super"),
        ("s", 1, [2, 1], "b@x.com a@x.com"),
    ]


@pytest.mark.parametrize("field", rooms.FIELDS)
def test_a_1000_deep_value_in_any_field_is_a_short_problem_on_it(field: str) -> None:
    problems = parse_room(0, {**VALID, field: deep(1000)}, NOW).problems
    assert [p.field for p in problems] == [field]
    assert len(problems[0].message) < 120
