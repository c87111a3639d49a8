"""Each exported row's JSON object, rendered by the database.

The export's hot loop was Python building a dict and calling orjson for every row; the
database can do that work in C while it reads the row, and hand over one finished text
per row. The output is byte for byte what orjson wrote (keys in the declared order, no
spaces, strings escaped the same way, UTC times as ``2017-05-11T19:14:24Z`` with
microseconds only when set, stored JSON written as it is); a test compares both.

- SQLite: ``json_object(...)`` (its string quoting matches orjson's exactly), cast to a
  BLOB so the driver hands over bytes without decoding them. Stored JSON (a comment's
  Payload) is spliced in as it is between json_object runs: ``json()`` would rewrite it.
- PostgreSQL: text concatenation with ``to_json(value)::text`` for strings
  (``json_build_object`` would add spaces), as bytes (``convert_to``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Dialect,
    LargeBinary,
    Select,
    String,
    Text,
    case,
    cast,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from chatferry.exports.columns import ExportColumn, Kind, ResourceExport


def _sql_text(text: str) -> ColumnElement[str]:
    """A constant string inlined in the statement (keys and punctuation are ours)."""
    return literal_column("'" + text.replace("'", "''") + "'", String())


def _raw_text(value: Any) -> ColumnElement[str]:
    """A column read as the text the driver stores (no type processing)."""
    return type_coerce(value, String())


def _concat(*parts: ColumnElement[Any]) -> ColumnElement[str]:
    """``a || b || ...`` (spelled out: ``+`` on untyped functions would add numbers)."""
    return reduce(lambda left, right: left.op("||", return_type=String())(right), parts)


def _text_func(name: str, *args: Any) -> ColumnElement[str]:
    function: ColumnElement[str] = getattr(func, name)(*args, type_=String())
    return function


# --- SQLite ---------------------------------------------------------------------------


def _sqlite_time(value: Any) -> ColumnElement[str]:
    """Stored ``2017-05-11 19:14:24.000000`` -> ``2017-05-11T19:14:24Z`` (and
    ``.123456`` kept when the microseconds are not zero): "." only appears there."""
    with_t = _text_func("replace", _raw_text(value), _sql_text(" "), _sql_text("T"))
    whole = _text_func("replace", with_t, _sql_text(".000000"), _sql_text(""))
    return _concat(whole, _sql_text("Z"))


def _sqlite_array(rows: Select[Any]) -> ColumnElement[Any]:
    ordered = rows.subquery("ordered")
    return func.json(select(func.json_group_array(ordered.c.element)).scalar_subquery())


def _sqlite_value(column: ExportColumn) -> ColumnElement[Any]:
    value = column.value
    if column.kind is Kind.TEXT_ARRAY:
        assert isinstance(value, Select)
        return _sqlite_array(value)
    assert not isinstance(value, Select)
    if column.kind is Kind.BOOL:
        # json() of a constant is computed once per statement, not per row.
        truth, falsity = func.json(_sql_text("true")), func.json(_sql_text("false"))
        return case((value, truth), else_=falsity)
    if column.kind is Kind.TIME:
        return _sqlite_time(value)
    return value


def _segments(columns: tuple[ExportColumn, ...]) -> list[list[ExportColumn]]:
    """The columns in runs: each stored-JSON column alone, the others together."""
    runs: list[list[ExportColumn]] = []
    for column in columns:
        raw = column.kind is Kind.RAW_JSON
        if raw or not runs or runs[-1][0].kind is Kind.RAW_JSON:
            runs.append([column])
        else:
            runs[-1].append(column)
    return runs


def _sqlite_segment(run: list[ExportColumn], first: bool, last: bool) -> ColumnElement[str]:
    """One run's text inside the row's object (its braces only at the row's ends)."""
    if run[0].kind is Kind.RAW_JSON:
        opening = "{" if first else ","
        stored = _text_func("coalesce", _raw_text(run[0].value), _sql_text("null"))
        parts = [_sql_text(f'{opening}"{run[0].key}":'), stored]
        return _concat(*parts, _sql_text("}")) if last else _concat(*parts)
    pairs = [part for c in run for part in (_sql_text(c.key), _sqlite_value(c))]
    text: ColumnElement[str] = _text_func("json_object", *pairs)
    # A run's object ends in a string, true, false, null or ]: never in a second }.
    if not last:
        text = _text_func("rtrim", text, _sql_text("}"))
    if not first:
        text = _concat(_sql_text(","), _text_func("ltrim", text, _sql_text("{")))
    return text


def sqlite_row(resource: ResourceExport) -> ColumnElement[bytes]:
    runs = _segments(resource.columns)
    last = len(runs) - 1
    parts = [_sqlite_segment(run, i == 0, i == last) for i, run in enumerate(runs)]
    return cast(parts[0] if len(parts) == 1 else _concat(*parts), LargeBinary())


# --- PostgreSQL -----------------------------------------------------------------------


def _pg_string(value: Any) -> ColumnElement[str]:
    return _raw_text(func.to_json(_raw_text(value)).cast(Text()))


def _pg_time(value: Any) -> ColumnElement[str]:
    moment = type_coerce(value, DateTime())
    whole = _text_func("to_char", moment, _sql_text('YYYY-MM-DD"T"HH24:MI:SS'))
    fraction = case(
        (moment == func.date_trunc(_sql_text("second"), moment), _sql_text("")),
        else_=_text_func("to_char", moment, _sql_text(".US")),
    )
    return _concat(_sql_text('"'), whole, fraction, _sql_text('Z"'))


def _pg_array(rows: Select[Any]) -> ColumnElement[str]:
    ordered = rows.subquery("ordered")
    separator = aggregate_order_by(_sql_text(","), ordered.c.position)
    elements = _text_func("string_agg", _pg_string(ordered.c.element), separator)
    joined = _concat(_sql_text("["), elements, _sql_text("]"))
    return select(_text_func("coalesce", joined, _sql_text("[]"))).scalar_subquery()


def _pg_value(column: ExportColumn) -> ColumnElement[str]:
    value = column.value
    if column.kind is Kind.TEXT_ARRAY:
        assert isinstance(value, Select)
        return _pg_array(value)
    assert not isinstance(value, Select)
    if column.kind is Kind.BOOL:
        return case((value, _sql_text("true")), else_=_sql_text("false"))
    if column.kind is Kind.TIME:
        return _pg_time(value)
    if column.kind is Kind.RAW_JSON:
        return _text_func("coalesce", _raw_text(value), _sql_text("null"))
    return _pg_string(value)


def postgresql_row(resource: ResourceExport) -> ColumnElement[bytes]:
    parts: list[ColumnElement[str]] = []
    for index, column in enumerate(resource.columns):
        opening = "{" if index == 0 else ","
        parts += [_sql_text(f'{opening}"{column.key}":'), _pg_value(column)]
    parts.append(_sql_text("}"))
    return func.convert_to(_concat(*parts), _sql_text("UTF8"), type_=LargeBinary())


RENDERERS: dict[str, Callable[[ResourceExport], ColumnElement[bytes]]] = {
    "sqlite": sqlite_row,
    "postgresql": postgresql_row,
}


def row_json(resource: ResourceExport, dialect: Dialect) -> ColumnElement[bytes]:
    """The expression whose value is one row's JSON object, as UTF-8 bytes."""
    return RENDERERS[dialect.name](resource).label("row_json")
