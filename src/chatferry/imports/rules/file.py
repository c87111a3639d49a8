"""The import file as a whole: UTF-8, JSON, an array of objects, not empty, not over the
row cap. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from chatferry.imports.rules.common import ImportRejected, Problem, ProblemLog, kind, row_number

_BOM = b"\xef\xbb\xbf"


def _decoded(data: bytes) -> Any:
    """The file's JSON value. orjson checks the UTF-8 itself, so the file is only decoded
    again (to say where the bad byte is) when orjson refuses it."""
    text = memoryview(data)[3:] if data.startswith(_BOM) else data  # no copy
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _why_not_json(bytes(text), exc) from None


def _why_not_json(data: bytes, exc: orjson.JSONDecodeError) -> ImportRejected:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return ImportRejected(
            f"the file is not valid UTF-8 text (invalid byte at position {bad.start}): "
            "save it as UTF-8 and upload it again"
        )
    if not data.strip():
        return ImportRejected("the file is not valid JSON: it is empty")
    return ImportRejected(f"the file is not valid JSON: {exc}")


def _check_row_count(rows: int, max_rows: int) -> None:
    if rows > max_rows:
        raise ImportRejected(
            f"the file has {rows:,} rows, over the limit of {max_rows:,} rows per import "
            "file (the CHATFERRY_IMPORT_MAX_ROWS setting): split it into smaller files"
        )


def parse_file(data: bytes, max_rows: int) -> list[dict[str, Any]]:
    """The file's rows; raises ImportRejected naming exactly what is wrong with it.

    The row cap is checked before any per-row work, so a file of millions of tiny rows
    costs no more than decoding it.
    """
    document = _decoded(data)
    if not isinstance(document, list):
        raise ImportRejected(
            f"the file must be a JSON array of objects, but it is {kind(document)}: "
            "wrap the rows in [ ... ]"
        )
    if not document:
        raise ImportRejected("the file is an empty JSON array: there is nothing to import")
    _check_row_count(len(document), max_rows)
    log = ProblemLog()
    for i, item in enumerate(document):
        if not isinstance(item, dict):
            log.add(Problem(i, None, "", f"{row_number(i)} is {kind(item)}, not a JSON object"))
    if log:
        raise ImportRejected(
            f"every element of the array must be a JSON object, but {log.total} "
            f"of {len(document)} are not",
            log.kept(),
            len(document),
        )
    return document
