"""The users rules without a database: a valid row, then one field changed at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rules_support import NOW, check_rows, deep, found, one_problem

from chatferry.imports.rules import users
from chatferry.imports.rules.users import KnownUsers, parse_user

ARGON = (
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
    "CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GDPPc"
)
BCRYPT = "$2b$12$" + "a" * 53
VALID: dict[str, Any] = {
    "Email": "mymail@mymail.com",
    "Name": "Nama",
    "AvatarUrl": "https://placehold.it/20x20",
    "AuthenticationToken": "randomstring",
    "Password": "password",
    "CreateAt": "2017-05-10T11:46:30Z",
}
NOBODY = KnownUsers(emails=set(), tokens=set())


def test_the_valid_row_parses_to_its_values() -> None:
    parsed = parse_user(0, VALID, NOW)
    assert parsed.problems == []
    draft = parsed.draft
    assert (draft.key, draft.email, draft.name) == ("mymail@mymail.com",) * 2 + ("Nama",)
    assert draft.avatar_url == "https://placehold.it/20x20"
    assert (draft.authentication_token, draft.password) == ("randomstring", "password")
    assert draft.created_at == datetime(2017, 5, 10, 11, 46, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("Name", None, ""),
        ("Name", "", ""),
        ("AvatarUrl", "", ""),
        ("AvatarUrl", "http://a.b/c.png", "http://a.b/c.png"),
        ("Password", None, ""),
        ("AuthenticationToken", None, ""),
        ("CreateAt", None, NOW),
        ("CreateAt", "", NOW),
        ("CreateAt", "2020-02-03T04:05:06.5+07:00", datetime(2020, 2, 2, 21, 5, 6, 500000, UTC)),
        ("CreateAt", "2020-02-03t04:05:06z", datetime(2020, 2, 3, 4, 5, 6, tzinfo=UTC)),
        ("CreateAt", "2020-02-03 04:05:06.123456789Z", datetime(2020, 2, 3, 4, 5, 6, 123456, UTC)),
        ("CreateAt", "0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("CreateAt", "9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("CreateAt", "0001-01-01T05:00:00+05:00", datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_optional_fields_and_defaults(field: str, value: Any, expected: Any) -> None:
    parsed = parse_user(0, {**VALID, field: value}, NOW)
    assert parsed.problems == []
    attribute = {
        "AvatarUrl": "avatar_url",
        "AuthenticationToken": "authentication_token",
        "CreateAt": "created_at",
    }.get(field, field.lower())
    assert getattr(parsed.draft, attribute) == expected


@pytest.mark.parametrize("stored_hash", [ARGON, ARGON.replace("argon2id", "argon2i"), BCRYPT])
def test_a_stored_hash_instead_of_a_password(stored_hash: str) -> None:
    raw = {**{k: v for k, v in VALID.items() if k != "Password"}, "PasswordHash": stored_hash}
    parsed = parse_user(0, raw, NOW)
    assert parsed.problems == []
    assert (parsed.draft.password, parsed.draft.password_hash) == ("", stored_hash)


def test_unknown_keys_are_ignored() -> None:
    assert parse_user(0, {**VALID, "Ignored": deep(1000), "Role": "admin"}, NOW).problems == []


LONG = "x" * 5000
BAD: list[tuple[str, Any, str, str]] = [
    ("Email", None, "Email", "Email is required"),
    ("Email", "", "Email", "Email is required"),
    ("Email", 42, "Email", "Email must be a string, got a number"),
    ("Email", ["a@b.co"], "Email", "Email must be a string, got an array"),
    ("Email", "not-an-email", "Email", "Email 'not-an-email' is not a valid email address"),
    ("Email", "a@b", "Email", "is not a valid email address"),
    ("Email", "a b@x.com", "Email", "is not a valid email address"),
    ("Email", "a" * 320 + "@x.com", "Email", "Email is 326 characters long, over the limit of 320"),
    ("Email", "a\x00@x.com", "Email", "Email contains a NUL character (U+0000)"),
    ("AuthenticationToken", 7, "AuthenticationToken", "must be a string, got a number"),
    (
        "AuthenticationToken",
        "t" * 201,
        "AuthenticationToken",
        "201 characters long, over the limit of 200",
    ),
    ("AuthenticationToken", "t\x00", "AuthenticationToken", "contains a NUL character"),
    ("Password", True, "Password", "Password must be a string, got a boolean"),
    ("Password", "pass\x00word", "Password", "Password contains a NUL character"),
    ("Name", 42, "Name", "Name must be a string, got a number"),
    ("Name", {"first": "A"}, "Name", "Name must be a string, got an object"),
    ("Name", "Na\x00ma", "Name", "Name contains a NUL character (U+0000), which cannot be stored"),
    (
        "AvatarUrl",
        "ftp://x/y.png",
        "AvatarUrl",
        "AvatarUrl 'ftp://x/y.png' is not an absolute http(s) URL",
    ),
    ("AvatarUrl", "https://a b/c", "AvatarUrl", "is not an absolute http(s) URL"),
    ("AvatarUrl", "/relative.png", "AvatarUrl", "is not an absolute http(s) URL"),
    ("AvatarUrl", "https://x/\x00", "AvatarUrl", "contains a NUL character"),
    ("CreateAt", "10/05/2017", "CreateAt", "CreateAt '10/05/2017' is not an RFC 3339 date-time"),
    ("CreateAt", "2017-05-10", "CreateAt", "is not an RFC 3339 date-time"),
    ("CreateAt", "2017-05-10T11:46:30", "CreateAt", "is not an RFC 3339 date-time"),
    ("CreateAt", "2017-13-10T11:46:30Z", "CreateAt", "is not an RFC 3339 date-time"),
    ("CreateAt", "2017-05-10T11:46:30+24:00", "CreateAt", "is not an RFC 3339 date-time"),
    ("CreateAt", "0000-01-01T00:00:00Z", "CreateAt", "is not an RFC 3339 date-time"),
    ("CreateAt", "٢٠١٧-05-10T11:46:30Z", "CreateAt", "is not an RFC 3339 date-time"),
    ("CreateAt", 1494416790, "CreateAt", "CreateAt 1494416790 is not an RFC 3339 date-time"),
    (
        "CreateAt",
        "9999-12-31T23:59:59-23:59",
        "CreateAt",
        "CreateAt '9999-12-31T23:59:59-23:59' is out of range: in UTC it must fall between "
        "0001-01-01 and 9999-12-31",
    ),
    ("CreateAt", "0001-01-01T00:00:00+05:00", "CreateAt", "is out of range"),
    ("CreateAt", "9999-12-31T20:00:00-05:00", "CreateAt", "is out of range"),
    ("CreateAt", LONG, "CreateAt", "CreateAt '" + "x" * 60 + "\u2026' is not an RFC 3339"),
    ("CreateAt", deep(1000), "CreateAt", "CreateAt (an array) is not an RFC 3339 date-time"),
]


@pytest.mark.parametrize(("field", "value", "where", "message"), BAD)
def test_one_bad_field_is_one_problem(field: str, value: Any, where: str, message: str) -> None:
    problem_field, problem_message = one_problem(parse_user, {**VALID, field: value})
    assert problem_field == where
    assert message in problem_message
    assert len(problem_message) < 250


@pytest.mark.parametrize(
    ("password_hash", "message"),
    [
        ("md5:abc", "PasswordHash is not a supported password hash: use an Argon2 hash"),
        ("$argon2id$v=19$m=1,t=1,p=1$$", "is not a supported password hash"),
        (ARGON.replace("m=19456", "m=x"), "is not a supported password hash"),
        ("$2b$12$short", "is not a supported password hash"),
        (12, "PasswordHash must be a string, got a number"),
        (ARGON + "\x00", "PasswordHash contains a NUL character"),
    ],
)
def test_bad_password_hashes(password_hash: Any, message: str) -> None:
    raw = {**{k: v for k, v in VALID.items() if k != "Password"}, "PasswordHash": password_hash}
    field, problem = one_problem(parse_user, raw)
    assert field == "PasswordHash"
    assert message in problem


def test_a_password_and_a_hash_together() -> None:
    field, message = one_problem(parse_user, {**VALID, "PasswordHash": BCRYPT})
    assert (field, message) == (
        "Password",
        "send either Password (plain) or PasswordHash, not both",
    )


def test_every_problem_of_a_row_is_reported_in_field_order() -> None:
    raw = {"Email": "bad", "AuthenticationToken": 1, "Name": 2, "AvatarUrl": "x", "CreateAt": "y"}
    rows, log = check_rows(users, parse_user, [raw], NOBODY)
    assert rows == []
    assert [p.field for p in log.kept()] == [
        "Email",
        "AuthenticationToken",
        "Name",
        "AvatarUrl",
        "CreateAt",
    ]
    assert log.kept()[0].key == "bad"


def test_a_huge_value_is_shown_short_and_its_key_cut() -> None:
    email = "a" * 1_000_000 + "@x.com"
    problems = parse_user(0, {**VALID, "Email": email}, NOW).problems
    assert [p.field for p in problems] == ["Email"]
    assert problems[0].key == "a" * 60 + "\u2026"
    assert len(problems[0].message) < 100


# --- in the file and against the app -----------------------------------------------


def _row(email: str, **extra: Any) -> dict[str, Any]:
    return {"Email": email, **extra}


def test_emails_and_tokens_are_unique_in_the_file() -> None:
    rows = [
        _row("a@x.com", AuthenticationToken="t1"),
        _row("b@x.com", AuthenticationToken="t1"),
        _row("a@x.com"),
        _row("a@x.com"),
        _row("bad"),
        _row("bad"),
        _row("c@x.com", AuthenticationToken=""),
        _row("d@x.com", AuthenticationToken=""),
    ]
    _, log = check_rows(users, parse_user, rows, NOBODY)
    assert found(log.kept()) == [
        (2, "b@x.com", "AuthenticationToken"),
        (3, "a@x.com", "Email"),
        (4, "a@x.com", "Email"),
        (5, "bad", "Email"),
        (6, "bad", "Email"),
    ]
    messages = [p.message for p in log.kept()]
    assert messages[:3] == [
        "AuthenticationToken is also used by row 1",
        "Email 'a@x.com' is also used by row 1",
        "Email 'a@x.com' is also used by row 1",
    ]
    assert messages[3] == messages[4] == "Email 'bad' is not a valid email address"


def test_emails_and_tokens_are_new_to_the_app() -> None:
    known = KnownUsers(emails={"taken@x.com"}, tokens={"used"})
    rows = [_row("taken@x.com"), _row("taken@x.com"), _row("n@x.com", AuthenticationToken="used")]
    _, log = check_rows(users, parse_user, rows, known)
    assert [(p.row, p.field, p.message) for p in log.kept()] == [
        (1, "Email", "a user with Email 'taken@x.com' already exists in this app"),
        (2, "Email", "Email 'taken@x.com' is also used by row 1"),
        (
            3,
            "AuthenticationToken",
            "a user with this AuthenticationToken already exists in this app",
        ),
    ]


def test_rows_to_write_get_a_token_and_keep_the_password_to_hash() -> None:
    rows, log = check_rows(
        users,
        parse_user,
        [_row("a@x.com", Password="pw"), _row("b@x.com", PasswordHash=BCRYPT), _row("c@x.com")],
        NOBODY,
    )
    assert not log
    assert [r.password for r in rows] == ["pw", None, None]
    assert [r.password_hash for r in rows] == ["", BCRYPT, ""]
    tokens = [r.authentication_token for r in rows]
    assert len(set(tokens)) == 3 and all(len(t) == 32 for t in tokens)
    assert users.plain_passwords(rows) == ["pw"]


@pytest.mark.parametrize("field", users.FIELDS)
def test_a_1000_deep_value_in_any_field_is_a_short_problem_on_it(field: str) -> None:
    problems = parse_user(0, {**VALID, field: deep(1000)}, NOW).problems
    assert [p.field for p in problems] == [field]
    assert len(problems[0].message) < 120
