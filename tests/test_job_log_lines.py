"""The "job queued" line tells the truth: it is logged once the transaction that queued
the job commits, and never for a job whose transaction (or savepoint) rolled back."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from chatferry.db.engine import transaction
from chatferry.jobs.queue import JobSpec, enqueue
from chatferry.obs.log import FIELDS_ATTR
from chatferry.runtime import Runtime


class Rollback(Exception):
    pass


def spec(ref: str, run_after: datetime | None = None) -> JobSpec:
    return JobSpec(
        kind="export",
        target_id=1,
        app_pk=1,
        ref=ref,
        app_ref="app-1",
        max_attempts=3,
        max_crashes=10,
        run_after=run_after,
        resource="comments",
    )


def queued(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [getattr(r, FIELDS_ATTR) for r in caplog.records if r.getMessage() == "job queued"]


def test_job_queued_is_logged_on_commit_only(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    with caplog.at_level(logging.INFO, logger="chatferry.jobs.queue"):
        with transaction(runtime.sessions) as session:
            enqueue(session, spec("now"))
            enqueue(session, spec("later", later))
            assert queued(caplog) == []  # not yet: the transaction may still roll back
        assert queued(caplog) == [
            {"kind": "export", "unique_id": "now", "app": "app-1", "type": "comments"},
            {
                "kind": "export",
                "unique_id": "later",
                "app": "app-1",
                "type": "comments",
                "run_after": later.isoformat().replace("+00:00", "Z"),
            },
        ]


def test_no_job_queued_line_for_a_rolled_back_transaction_or_savepoint(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="chatferry.jobs.queue"):
        with pytest.raises(Rollback), transaction(runtime.sessions) as session:
            enqueue(session, spec("rolled-back"))
            raise Rollback
        with transaction(runtime.sessions) as session:
            enqueue(session, spec("kept"))
            with pytest.raises(Rollback), session.begin_nested():
                enqueue(session, spec("in-a-savepoint"))
                raise Rollback
            with session.begin_nested():
                enqueue(session, spec("in-a-released-savepoint"))
            assert queued(caplog) == []  # a released savepoint is not a commit
    assert [line["unique_id"] for line in queued(caplog)] == ["kept", "in-a-released-savepoint"]
