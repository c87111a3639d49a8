"""The import job: checks the whole file, then writes every row in one transaction.

The order of work:

1. the file's content (UTF-8, JSON, an array of objects, not empty);
2. the spec's rules for every row, against what the app already holds; every problem
   is collected, and one problem anywhere fails the import with nothing written;
3. plain passwords are hashed (in parallel, outside any transaction);
4. one transaction claims the import (``started`` -> ``finished``), inserts the rows and,
   right before it commits, deletes the uploaded file.

Step 4 makes a rerun after a crash safe: either the transaction committed (the import
is ``finished``, and the rerun stops at once) or it did not (nothing was written, and
the rerun does the work again, or, when the crash came between the file's deletion and
the commit, fails saying the file must be uploaded again). Every final status (finished,
failed, dry run) is committed after the upload is deleted and together with clearing its
key, so a client that reads a final status never finds the upload still stored. Two
imports racing for the same email or unique id are decided by the database's unique
constraints: the loser rolls back and fails with the duplicates listed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatferry.apps.service import AppContext, app_context
from chatferry.clock import utcnow
from chatferry.db.engine import begin_write, transaction
from chatferry.db.models import App, Import, table_of
from chatferry.errors import new_reference
from chatferry.imports.collector import Pause, collector_paused
from chatferry.imports.passwords import hash_many
from chatferry.imports.rules.common import MAX_KEPT_PROBLEMS, ImportRejected
from chatferry.imports.rules.file import parse_file
from chatferry.imports.rules.importers import importer_for
from chatferry.imports.service import JOB_KIND, storage_key_for
from chatferry.imports.status import ImportStatus
from chatferry.jobs.events import Ended, event_key
from chatferry.jobs.handlers import JobReport
from chatferry.jobs.queue import ClaimedJob
from chatferry.jobs.records import TrackedRecords
from chatferry.runtime import Runtime

log = logging.getLogger(__name__)
_imports = table_of(Import)

IMPORT_RECORDS = TrackedRecords(
    _imports,
    running=ImportStatus.STARTED,
    pending=(ImportStatus.STARTED,),
    failed=ImportStatus.FAILED,
)

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
    size: int


def _load_plan(rt: Runtime, import_id: int) -> ImportPlan | None:
    with transaction(rt.sessions) as session:
        record = session.get(Import, import_id)
        if record is None or record.status != ImportStatus.STARTED:
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
            record.size,
        )


def mark_rejected(
    rt: Runtime, session: Session, plan: ImportPlan, rejected: ImportRejected
) -> None:
    """Fails the import with the file's problems listed in ``errors.Data`` (the upload
    must be deleted already: its key is cleared)."""
    problems = rejected.problems
    data = (
        orjson.dumps([p.as_dict() for p in problems[:MAX_REPORTED_PROBLEMS]]).decode()
        if problems
        else None
    )
    failed = IMPORT_RECORDS.mark_failed(
        session,
        plan.import_id,
        rejected.message,
        error_data=data,
        storage_key="",
        total_rows=rejected.checked_rows,
    )
    if failed:
        _announce(rt, session, plan, ImportStatus.FAILED)


def _announce(rt: Runtime, session: Session, plan: ImportPlan, status: str) -> None:
    """The import ended: webhooks and waiting requests hear it (in the transaction that
    ended it; the caller publishes the event in this process once it committed)."""
    rt.events.ended(session, Ended(JOB_KIND, plan.import_id, plan.unique_id, plan.app.pk, status))


def _finish(rt: Runtime, session: Session, plan: ImportPlan, rows: int) -> bool:
    """Claims the import as finished in the caller's transaction; False if already done."""
    result = session.execute(
        update(_imports)
        .where(_imports.c.id == plan.import_id, _imports.c.status == ImportStatus.STARTED)
        .values(
            status=ImportStatus.FINISHED,
            percentage=100,
            total_rows=rows,
            error_message="",
            finished_at=utcnow(),
            storage_key="",
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    _announce(rt, session, plan, ImportStatus.FINISHED)
    return True


def _check(rt: Runtime, plan: ImportPlan, rows: list[dict[str, Any]]) -> list[Any]:
    """The checked rows ready to write; raises ImportRejected listing every problem."""
    importer = importer_for(plan.resource)
    with transaction(rt.sessions) as session:
        checked, problems = importer.check(session.connection(), plan.app.pk, rows, utcnow())
    if problems:
        raise problems.rejection(len(rows))
    return checked


def _hash_passwords(rt: Runtime, plan: ImportPlan, checked: list[Any], pause: Pause) -> list[str]:
    """The hashes of the rows' plain passwords, progress going from 10 to 90 meanwhile
    (outside the collector's pause: hashing takes seconds)."""
    plain = importer_for(plan.resource).plain_passwords(checked)
    if not plain:
        return []
    with pause.lifted():
        IMPORT_RECORDS.set_progress(rt.engine, plan.import_id, 10)
        last = time.monotonic()

        def progress(done: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= _PROGRESS_INTERVAL_SECONDS:
                last = now
                IMPORT_RECORDS.set_progress(rt.engine, plan.import_id, 10 + done * 80 // len(plain))

        return hash_many(plain, progress)


def _write(rt: Runtime, plan: ImportPlan, checked: list[Any], hashes: list[str]) -> None:
    with transaction(rt.sessions) as session:
        # One import of an app writes at a time: BEGIN IMMEDIATE on SQLite, the app's
        # row locked FOR NO KEY UPDATE on PostgreSQL. Without it, two imports inserting
        # some of the same emails or unique ids in different orders deadlock, and the
        # victim fails with "deadlock detected" instead of listing the duplicates.
        begin_write(session)
        session.execute(select(App.id).where(App.id == plan.app.pk).with_for_update(key_share=True))
        if not _finish(rt, session, plan, len(checked)):
            log.info("import %s was already finished; nothing to do", plan.unique_id)
            return
        importer_for(plan.resource).write(session, plan.app.pk, checked, hashes)
        session.flush()
        _delete_upload(rt, plan)  # before the commit that makes it "finished"


def _run(rt: Runtime, plan: ImportPlan) -> int:
    """Checks and writes the file; returns its row count."""
    data = _read_upload(rt, plan)
    with collector_paused() as pause:
        # The rows live in _check_and_write only: gone before the collector resumes.
        return _check_and_write(rt, plan, data, pause)


def _check_and_write(rt: Runtime, plan: ImportPlan, data: bytes, pause: Pause) -> int:
    """The import's work; its end is published as soon as the final status is committed,
    before the rows are let go of (5 ms for the 4 MB comments file)."""
    rows = parse_file(data, rt.settings.import_max_rows)
    checked = _check(rt, plan, rows)
    if plan.dry_run:
        _delete_upload(rt, plan)
        with transaction(rt.sessions) as session:
            _finish(rt, session, plan, len(checked))
    else:
        hashes = _hash_passwords(rt, plan, checked, pause)
        IMPORT_RECORDS.set_progress(rt.engine, plan.import_id, 90)
        try:
            _write(rt, plan, checked, hashes)
        except IntegrityError as exc:
            _lost_race(rt, plan, rows, exc)
    rt.events.publish(event_key(JOB_KIND, plan.unique_id))
    return len(checked)


def _read_upload(rt: Runtime, plan: ImportPlan) -> bytes:
    """The uploaded file; ImportRejected if a run that crashed while committing its
    final status had deleted it already."""
    if not plan.storage_key or not rt.store.exists(plan.storage_key):
        raise ImportRejected(
            "the uploaded file is no longer stored (the worker running this import stopped "
            "while finishing it); nothing was imported: upload the file again"
        )
    return rt.store.read_bytes(plan.storage_key)


def _delete_upload(rt: Runtime, plan: ImportPlan) -> None:
    """Deletes the uploaded file (it may hold plain passwords) before the transaction
    that commits the import's final status, which also clears its key."""
    if plan.storage_key:
        rt.store.delete(plan.storage_key)


def _lost_race(
    rt: Runtime, plan: ImportPlan, rows: list[dict[str, Any]], exc: IntegrityError
) -> NoReturn:
    """Another import wrote the same email, token or unique id since the check: the
    file is checked again to list the duplicates (the SQL stays in the log)."""
    ref = new_reference()
    log.info(
        "import %s lost a race on a unique constraint (reference %s): %s",
        plan.unique_id,
        ref,
        exc.orig,
    )
    try:
        _check(rt, plan, rows)
    except ImportRejected as rejected:
        raise ImportRejected(
            "another import added some of the same rows while this one ran; " + rejected.message,
            rejected.problems,
            rejected.checked_rows,
        ) from None
    raise ImportRejected(
        "the rows conflict with data written while this import ran; nothing was "
        f"imported: upload the file again (reference {ref})"
    ) from None


class ImportJobHandler:
    kind = JOB_KIND
    noun = "import"
    redo = "upload the file again"
    records = IMPORT_RECORDS

    def run(self, rt: Runtime, job: ClaimedJob) -> JobReport:
        plan = _load_plan(rt, job.target_id)
        if plan is None:
            return JobReport(outcome="skipped")
        try:
            rows = _run(rt, plan)
        except ImportRejected as exc:
            _delete_upload(rt, plan)  # before the status a client waits for
            with transaction(rt.sessions) as session:
                mark_rejected(rt, session, plan, exc)
            rt.events.publish(event_key(JOB_KIND, plan.unique_id))
            return JobReport(outcome="failed", resource=plan.resource)
        outcome = "validated" if plan.dry_run else "finished"
        return JobReport(outcome, plan.resource, rows, plan.size)

    def discard(self, rt: Runtime, job: ClaimedJob) -> None:
        """A failed import keeps no uploaded file (it may hold plain passwords)."""
        rt.store.delete(storage_key_for(job.app_ref, job.ref))
