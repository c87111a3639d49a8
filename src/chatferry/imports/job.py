"""The import job: checks the whole file, then writes every row in one transaction.

The order of work:

1. the file's content (UTF-8, JSON, an array of objects, not empty);
2. the spec's rules for every row, against what the app already holds; every problem
   is collected, and one problem anywhere fails the import with nothing written;
3. plain passwords are hashed (in parallel, outside any transaction);
4. one transaction claims the import (``started`` -> ``finished``) and inserts the rows.

Step 4 makes a rerun after a crash safe: either the transaction committed (the import
is ``finished``, and the rerun stops at once) or it did not (nothing was written, and
the rerun does the work again). Two imports racing for the same email or unique id are
decided by the database's unique constraints: the loser rolls back and fails with the
duplicates listed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatferry.apps.service import AppContext, app_context
from chatferry.clock import utcnow
from chatferry.db.engine import begin_write, transaction
from chatferry.db.models import App, Import, table_of
from chatferry.imports.passwords import hash_many
from chatferry.imports.rules.common import MAX_KEPT_PROBLEMS, ImportRejected, Problem
from chatferry.imports.rules.file import parse_file
from chatferry.imports.rules.importers import importer_for
from chatferry.imports.service import FAILED, FINISHED, JOB_KIND, STARTED
from chatferry.jobs.queue import ClaimedJob
from chatferry.runtime import Runtime

log = logging.getLogger(__name__)
_imports = table_of(Import)

# At most this many problems are stored and shown; the summary gives the full count.
MAX_REPORTED_PROBLEMS = MAX_KEPT_PROBLEMS
_PROGRESS_INTERVAL_SECONDS = 0.5


@dataclass(frozen=True)
class ImportPlan:
    import_id: int
    unique_id: str
    resource: str
    dry_run: bool
    storage_key: str
    app: AppContext


def _load_plan(rt: Runtime, import_id: int) -> ImportPlan | None:
    with transaction(rt.sessions) as session:
        record = session.get(Import, import_id)
        if record is None or record.status != STARTED:
            return None
        app = session.get(App, record.app_pk)
        assert app is not None
        return ImportPlan(
            record.id,
            record.unique_id,
            record.resource_name,
            record.dry_run,
            record.storage_key,
            app_context(app, rt.settings),
        )


def _set_progress(rt: Runtime, import_id: int, percentage: int) -> None:
    with rt.engine.begin() as conn:
        conn.execute(
            update(_imports)
            .where(_imports.c.id == import_id, _imports.c.status == STARTED)
            .values(percentage=percentage)
        )


def mark_failed(
    session: Session, import_id: int, message: str, problems: list[Problem] | None
) -> None:
    data = (
        orjson.dumps([p.as_dict() for p in problems[:MAX_REPORTED_PROBLEMS]]).decode()
        if problems
        else None
    )
    session.execute(
        update(_imports)
        .where(_imports.c.id == import_id, _imports.c.status == STARTED)
        .values(status=FAILED, error_message=message, error_data=data, finished_at=utcnow())
    )


def _finish(session: Session, plan: ImportPlan, rows: int) -> bool:
    """Claims the import as finished in the caller's transaction; False if already done."""
    result = session.execute(
        update(_imports)
        .where(_imports.c.id == plan.import_id, _imports.c.status == STARTED)
        .values(status=FINISHED, percentage=100, total_rows=rows, finished_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _check(rt: Runtime, plan: ImportPlan, rows: list[dict[str, Any]]) -> list[Any]:
    """The checked rows ready to write; raises ImportRejected listing every problem."""
    importer = importer_for(plan.resource)
    with transaction(rt.sessions) as session:
        checked, problems = importer.check(session.connection(), plan.app.pk, rows, utcnow())
    if problems:
        raise problems.rejection(len(rows))
    return checked


def _hash_passwords(rt: Runtime, plan: ImportPlan, checked: list[Any]) -> list[str]:
    plain = importer_for(plan.resource).plain_passwords(checked)
    if not plain:
        return []
    last = time.monotonic()

    def progress(done: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= _PROGRESS_INTERVAL_SECONDS:
            last = now
            _set_progress(rt, plan.import_id, 10 + done * 80 // len(plain))

    return hash_many(plain, progress)


def _write(rt: Runtime, plan: ImportPlan, checked: list[Any], hashes: list[str]) -> None:
    with transaction(rt.sessions) as session:
        # One import of an app writes at a time: BEGIN IMMEDIATE on SQLite, the app's
        # row locked FOR NO KEY UPDATE on PostgreSQL. Without it, two imports inserting
        # some of the same emails or unique ids in different orders deadlock, and the
        # victim fails with "deadlock detected" instead of listing the duplicates.
        begin_write(session)
        session.execute(select(App.id).where(App.id == plan.app.pk).with_for_update(key_share=True))
        if not _finish(session, plan, len(checked)):
            log.info("import %s was already finished; nothing to do", plan.unique_id)
            return
        importer_for(plan.resource).write(session, plan.app.pk, checked, hashes)


def _run(rt: Runtime, plan: ImportPlan) -> None:
    data = rt.store.read_bytes(plan.storage_key)
    rows = parse_file(data, rt.settings.import_max_rows)
    checked = _check(rt, plan, rows)
    _set_progress(rt, plan.import_id, 10)
    if plan.dry_run:
        with transaction(rt.sessions) as session:
            _finish(session, plan, len(checked))
        return
    hashes = _hash_passwords(rt, plan, checked)
    _set_progress(rt, plan.import_id, 90)
    try:
        _write(rt, plan, checked, hashes)
    except IntegrityError as exc:
        # Another import wrote the same email, token or unique id since the check.
        log.info("import %s lost a race on a unique constraint: %s", plan.unique_id, exc.orig)
        try:
            _check(rt, plan, rows)
        except ImportRejected as rejected:
            raise ImportRejected(
                "another import added some of the same rows while this one ran; "
                + rejected.message,
                rejected.problems,
            ) from None
        raise ImportRejected(
            "the rows conflict with data written while this import ran "
            f"({exc.orig}); nothing was imported: upload the file again"
        ) from None


class ImportJobHandler:
    kind = JOB_KIND

    def run(self, rt: Runtime, job: ClaimedJob) -> None:
        plan = _load_plan(rt, job.target_id)
        if plan is None:
            return
        try:
            _run(rt, plan)
        except ImportRejected as exc:
            with transaction(rt.sessions) as session:
                mark_failed(session, plan.import_id, exc.message, exc.problems)

    def fail(self, session: Session, job: ClaimedJob, message: str) -> None:
        mark_failed(session, job.target_id, message, None)
