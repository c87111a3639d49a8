"""What the rules share, without a database: the bounded problem log, how raw values are
shown, nesting depth, the file as a whole and its row cap; and that the rules stay pure."""

from __future__ import annotations

import ast
from pathlib import Path

import orjson
import pytest
from rules_support import deep

from chatferry.imports.rules.common import (
    Problem,
    ProblemLog,
    first_rows,
    firsts,
    repeats,
    row_key,
    shown,
)
from chatferry.imports.rules.fields import is_http_url, nested_deeper_than
from chatferry.imports.rules.file import parse_file
from chatferry.resources import Resource

SRC = Path(__file__).resolve().parents[2] / "src"
PURE = ["common", "fields", "users", "rooms", "comments", "payloads", "file"]
NOT_IN_PURE_RULES = (
    "sqlalchemy",
    "psycopg",
    "fastapi",
    "starlette",
    "chatferry.db",
    "chatferry.api",
    "chatferry.jobs",
    "chatferry.runtime",
    "chatferry.storage",
)


def _problem(index: int | None, field: str = "Email", message: str = "m") -> Problem:
    return Problem(index, None, field, message)


def test_the_log_counts_every_problem_and_keeps_the_first_in_report_order() -> None:
    log = ProblemLog(["Email", "Name"], keep=3)
    for problem in [
        _problem(5, "Name", "a"),
        _problem(2),
        _problem(5, "Email", "b"),
        _problem(9),
        _problem(1, "Other"),
        _problem(5, "Name", "c"),
    ]:
        log.add(problem)
    assert (log.total, log.rows, bool(log)) == (6, 4, True)
    assert [(p.row, p.field, p.message) for p in log.kept()] == [
        (2, "Other", "m"),
        (3, "Email", "m"),
        (6, "Email", "b"),
    ]


def test_a_row_keeps_the_order_its_problems_were_found_in_within_a_field() -> None:
    log = ProblemLog(["Payload"])
    log.extend(_problem(0, "Payload", str(n)) for n in range(5))
    assert [p.message for p in log.kept()] == ["0", "1", "2", "3", "4"]


def test_the_log_of_a_huge_file_keeps_1000_and_sums_up_the_rest() -> None:
    log = ProblemLog(["Email"])
    log.extend(_problem(index) for index in reversed(range(100_000)))
    log.extend(_problem(index, "Name") for index in range(0, 100_000, 2))
    kept = log.kept()
    assert len(kept) == 1000
    assert [p.row for p in kept[:4]] == [1, 1, 2, 3]
    rejected = log.rejection(100_000)
    assert rejected.problems == kept
    assert rejected.message == (
        "the file has 150000 problems in 100000 of 100000 rows (only the first 1000 are "
        "listed); nothing was imported: correct those rows and upload the file again"
    )


def test_a_problem_s_row_counts_from_1_and_a_file_level_problem_has_none() -> None:
    # errors.Data's "row" is the number a person reads: the file's first object is row 1.
    assert Problem(2, "k", "Email", "m").as_dict() == {
        "row": 3,
        "key": "k",
        "field": "Email",
        "message": "m",
    }
    assert Problem(0, None, "", "m").row == 1
    assert Problem(None, None, "", "m").as_dict()["row"] is None


def test_a_file_level_problem_counts_as_one_row() -> None:
    log = ProblemLog()
    log.add(_problem(None))
    log.add(_problem(0))
    assert log.rejection(1).message.startswith("the file has 2 problems in 2 of 1 rows;")
    assert ProblemLog().rejection(3).message.startswith("the file has 0 problems in 0 of 3")
    one = ProblemLog()
    one.add(_problem(0))
    assert one.rejection(1).message.startswith("the file has 1 problem in 1 of 1 rows;")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("ok@x.com", "'ok@x.com'"),
        ("x" * 60, repr("x" * 60)),
        ("x" * 61, "'" + "x" * 60 + "\u2026'"),
        ("a\x00b", "'a\\x00b'"),
        (12, "12"),
        (1.5, "1.5"),
        (True, "true"),  # as JSON writes it: the client sent JSON
        (None, "null"),
        ([1, 2], "(an array)"),
        ({"a": 1}, "(an object)"),
        (deep(100_000), "(an array)"),
    ],
)
def test_raw_values_are_shown_bounded(value: object, text: str) -> None:
    assert shown(value) == text


def test_row_keys_are_strings_cut_when_longer_than_any_valid_key() -> None:
    assert row_key("a@x.com", 320) == "a@x.com"
    assert row_key("k" * 320, 320) == "k" * 320
    assert row_key("k" * 321, 320) == "k" * 60 + "\u2026"
    assert [row_key(v, 320) for v in (None, "", 5, ["a"])] == [None] * 4


def test_repeats_and_firsts_skip_empty_values() -> None:
    values = ["a", "", "b", "a", "", "a", "b"]
    assert list(repeats(values)) == [(3, "a", 0), (5, "a", 0), (6, "b", 2)]
    assert list(firsts(values)) == [(0, "a"), (2, "b")]
    assert first_rows(values) == {"a": 0, "b": 2}
    assert list(repeats(["a", "", "b", ""])) == []
    assert first_rows([]) == {}


@pytest.mark.parametrize(
    ("value", "limit", "deeper"),
    [
        ("text", 0, False),
        ({}, 1, False),
        ({}, 0, True),
        ({"a": [1, {"b": []}]}, 4, False),
        ({"a": [1, {"b": []}]}, 3, True),
        (deep(100), 100, False),
        (deep(101), 100, True),
        (deep(100_000), 100, True),
        ([deep(10)] * 1000, 11, False),
        ([deep(10)] * 1000, 10, True),
    ],
)
def test_nesting_depth(value: object, limit: int, deeper: bool) -> None:
    assert nested_deeper_than(value, limit) is deeper


def test_resources_are_the_spec_types() -> None:
    assert [r.value for r in Resource] == ["users", "rooms", "comments"]
    assert Resource("rooms") is Resource.ROOMS


# --- the file ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfe[]", "the file is not valid UTF-8 text (invalid byte at position 0)"),
        # Bad bytes inside a string, after the JSON, a surrogate, a BOM then a bad byte.
        (b'[{"Name": "\xc3"}]', "the file is not valid UTF-8 text (invalid byte at position 11)"),
        (b"[1]\xff", "the file is not valid UTF-8 text (invalid byte at position 3)"),
        (b'["\xed\xa0\x80"]', "the file is not valid UTF-8 text (invalid byte at position 2)"),
        (b"\xef\xbb\xbf[\xff]", "the file is not valid UTF-8 text (invalid byte at position 1)"),
        (b"\xef\xbb\xbf", "the file is not valid JSON: it is empty"),
        (b"[{]", "the file is not valid JSON: "),
        (b"  \n", "the file is not valid JSON: it is empty"),
        (b'{"Email": "a@b.c"}', "must be a JSON array of objects, but it is an object"),
        (b"null", "must be a JSON array of objects, but it is null"),
        (b"[]", "the file is an empty JSON array: there is nothing to import"),
        (b"[" * 5000 + b"]" * 5000, "the file is not valid JSON"),
    ],
)
def test_whole_file_problems(content: bytes, expected: str) -> None:
    with pytest.raises(Exception) as raised:
        parse_file(content, 10)
    assert expected in str(raised.value)
    assert getattr(raised.value, "problems", None) is None


def test_a_bom_is_skipped_and_rows_come_back() -> None:
    assert parse_file(b'\xef\xbb\xbf[{"Email": "a@x.com"}]', 10) == [{"Email": "a@x.com"}]


def test_the_row_cap_is_checked_before_any_row() -> None:
    content = b"[" + b",".join([b"1"] * 12) + b"]"  # not objects, but over the cap first
    with pytest.raises(Exception) as raised:
        parse_file(content, 11)
    assert str(raised.value) == (
        "the file has 12 rows, over the limit of 11 rows per import file (the "
        "CHATFERRY_IMPORT_MAX_ROWS setting): split it into smaller files"
    )
    assert len(parse_file(b"[" + b",".join([b"{}"] * 11) + b"]", 11)) == 11


def test_elements_that_are_not_objects_are_listed_up_to_1000() -> None:
    content = orjson.dumps([{}, 1, "x", [], None] + [2] * 1500)
    with pytest.raises(Exception) as raised:
        parse_file(content, 10_000)
    problems = raised.value.problems  # type: ignore[attr-defined]
    assert str(raised.value) == (
        "every element of the array must be a JSON object, but 1504 of 1505 are not"
    )
    assert len(problems) == 1000
    assert [(p.row, p.field, p.message) for p in problems[:4]] == [
        (2, "", "row 2 is a number, not a JSON object"),
        (3, "", "row 3 is a string, not a JSON object"),
        (4, "", "row 4 is an array, not a JSON object"),
        (5, "", "row 5 is null, not a JSON object"),
    ]


# --- purity ------------------------------------------------------------------------


def _imports(module: str) -> set[str]:
    path = SRC / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = SRC / module.replace(".", "/") / "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _reachable(start: list[str]) -> set[str]:
    """Every module the start modules import, following chatferry's own modules."""
    seen: set[str] = set()
    pending = list(start)
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in _imports(module):
            is_module = (SRC / (name.replace(".", "/") + ".py")).exists() or (
                SRC / name.replace(".", "/") / "__init__.py"
            ).exists()
            if name.startswith("chatferry") and is_module:
                pending.append(name)
            else:
                seen.add(name)
    return seen


def test_the_rules_import_no_database_web_or_job_code() -> None:
    packages = ["chatferry", "chatferry.imports", "chatferry.imports.rules"]
    reached = _reachable(packages + [f"chatferry.imports.rules.{name}" for name in PURE])
    assert "chatferry.imports.passwords" in reached  # the walk does follow our modules
    bad = sorted(m for m in reached if m.startswith(NOT_IN_PURE_RULES))
    assert bad == []


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("https://a.example/x", True),
        ("http://x", True),
        ("https://maps.example.com/?q=-6.1754,106.8272", True),
        ("https://a.example:8443/x#f", True),
        ("HTTPS://a.example/x", True),  # not plain: urlparse says
        ("https://[::1]/", True),
        ("https://a.example:/x", True),
        ("https://ä.example/", True),
        ("https://a.example/\x01", True),
        ("https://a b.example", False),
        ("https://a.example/\u00a0", False),
        ("https://a.example/\n", False),
        ("ftp://a.example/x", False),
        ("https:///x", False),
        ("a.example/x", False),
    ],
)
def test_http_urls(value: str, valid: bool) -> None:
    assert is_http_url(value) is valid
