"""An import's final status is committed only once its uploaded file is deleted.

A client that reads ``finished`` or ``failed`` must find the job's cleanup done (issue 22,
point 7: the status used to be committed first, so a test that looked at the store right
after the final status sometimes found the upload still there). A SQLAlchemy event on the
test's engine notes each transaction that sets an import's final status and, when that
transaction commits, which files the store still holds: an observation only, the jobs run
the real code on the real database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from chatferry.runtime import Runtime
from support.apps import NewApp
from support.exports import stored_files
from support.imports import run_import, user


class FinalCommits:
    """The files stored at each commit that set an import's final status."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.seen: list[list[Path]] = []

    def after_execute(self, conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().startswith("UPDATE imports") and _sets_final_status(params):
            conn.info["final_status"] = True

    def on_commit(self, conn: Any) -> None:
        if conn.info.pop("final_status", False):
            self.seen.append(stored_files(self.runtime))

    def on_rollback(self, conn: Any) -> None:
        conn.info.pop("final_status", None)


def _sets_final_status(params: Any) -> bool:
    values = params.values() if isinstance(params, dict) else params
    return any(v in ("finished", "failed") for v in values if isinstance(v, str))


@pytest.fixture
def final_commits(runtime: Runtime) -> Iterator[FinalCommits]:
    watch = FinalCommits(runtime)
    engine = runtime.engine
    event.listen(engine, "after_cursor_execute", watch.after_execute)
    event.listen(engine, "commit", watch.on_commit)
    event.listen(engine, "rollback", watch.on_rollback)
    yield watch
    event.remove(engine, "after_cursor_execute", watch.after_execute)
    event.remove(engine, "commit", watch.on_commit)
    event.remove(engine, "rollback", watch.on_rollback)


@pytest.mark.parametrize(
    ("content", "validate_only", "status"),
    [
        ([user("a@x.com"), user("b@x.com")], None, "finished"),
        ([user("a@x.com"), user("b@x.com")], "true", "finished"),  # a dry run
        ([user("a@x.com"), user("a@x.com")], None, "failed"),  # problems in the rows
        (b"[" + b"{}," * 200_000 + b"{}]", None, "failed"),  # over the row cap
    ],
    ids=["finished", "dry-run", "rows-rejected", "row-cap"],
)
def test_the_upload_is_gone_when_the_final_status_commits(
    client: TestClient,
    new_app: NewApp,
    runtime: Runtime,
    final_commits: FinalCommits,
    content: Any,
    validate_only: str | None,
    status: str,
) -> None:
    record = run_import(client, new_app(), "users", content, validate_only=validate_only)
    assert record["status"] == status
    assert final_commits.seen == [[]]  # one final commit, and no file stored at that time
    assert stored_files(runtime) == []
