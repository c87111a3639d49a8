"""Shared by the rule unit tests: runs a resource's pure steps as the importer does, with
what the app holds given as data instead of read from a database."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from chatferry.imports.rules.common import Problem, ProblemLog

NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def deep(levels: int) -> list[Any]:
    """An array nested ``levels`` deep: [[[...]]]."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def found(problems: Iterable[Problem]) -> list[tuple[int | None, str | None, str]]:
    return [(p.row, p.key, p.field) for p in problems]


def one_problem(
    parse: Callable[[int, dict[str, Any], datetime], Any], raw: dict[str, Any]
) -> tuple[str, str]:
    """The (field, message) of the only problem of one parsed row."""
    problems = parse(0, raw, NOW).problems
    assert len(problems) == 1, problems
    return problems[0].field, problems[0].message


def check_rows(
    rules: ModuleType, parse: Callable[..., Any], rows: Sequence[dict[str, Any]], known: Any
) -> tuple[list[Any], ProblemLog]:
    """What Importer.check does, with ``known`` in place of the database look-up."""
    log = ProblemLog(rules.FIELDS)
    plain = getattr(rules, "plain_drafts", None)  # the resources that have the column pass
    drafts = plain(rows, NOW) if plain is not None else None
    if drafts is None:
        drafts = []
        for index, raw in enumerate(rows):
            parsed = parse(index, raw, NOW)
            log.extend(parsed.problems)
            drafts.append(parsed.draft)
    log.extend(rules.in_file(drafts))
    log.extend(rules.against_app(drafts, known))
    return ([] if log else rules.build_rows(drafts, known)), log
