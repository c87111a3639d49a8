"""The import job pauses the cyclic garbage collector from the parse to the commit of its
write, and lifts the pause only while plain passwords are hashed (imports/collector.py):
seen from the job's own progress and write statements, on the real worker, database and
file store. Resumed between the checks and the write, the collector's first pass walked
every row still held."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

from chatferry.runtime import Runtime
from support.apps import NewApp
from support.imports import assert_finished, comment, room, run_import, user, user_with_password

Seen = list[tuple[str, bool]]


def _what(statement: str, parameters: Any) -> str | None:
    """The statements watched: the progress writes ("progress 10", "progress 90") and the
    write transaction's claim of the import, right before the rows go in ("finish")."""
    text = " ".join(statement.split()).lower()
    if text.startswith("update imports set status"):
        return "finish"
    if text.startswith("update imports set percentage"):
        values = list(parameters.values() if isinstance(parameters, dict) else parameters)
        return next((f"progress {p}" for p in (10, 90) if p in values), None)
    return None


@contextmanager
def _collector_seen(rt: Runtime) -> Iterator[Seen]:
    """(statement, collector on?) for each watched statement of the job threads."""
    seen: Seen = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        what = _what(statement, parameters)
        if what and threading.current_thread().name.startswith("chatferry-worker"):
            seen.append((what, gc.isenabled()))

    event.listen(rt.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(rt.engine, "before_cursor_execute", before)


def test_paused_from_the_checks_to_the_commit(
    runtime: Runtime, client: TestClient, new_app: NewApp
) -> None:
    creds = new_app()
    assert_finished(run_import(client, creds, "users", [user("gc@example.com")]), 1)
    rooms = [room("gc-room", "gc@example.com", ["gc@example.com"])]
    assert_finished(run_import(client, creds, "rooms", rooms), 1)
    rows = [comment(f"gc-{i}", "gc-room", "gc@example.com") for i in range(3)]
    assert gc.isenabled()
    with _collector_seen(runtime) as seen:
        assert_finished(run_import(client, creds, "comments", rows), 3)
    assert seen == [("progress 90", False), ("finish", False)]
    assert gc.isenabled()


def test_on_while_passwords_are_hashed(
    runtime: Runtime, client: TestClient, new_app: NewApp
) -> None:
    creds = new_app()
    with _collector_seen(runtime) as seen:
        record = run_import(client, creds, "users", [user_with_password("hash@example.com")])
    assert_finished(record, 1)
    assert seen == [("progress 10", True), ("progress 90", False), ("finish", False)]
    assert gc.isenabled()
