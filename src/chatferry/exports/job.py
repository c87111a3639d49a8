"""The export job: streams rows from the database into the stored file."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from chatferry.apps.service import AppContext, app_context
from chatferry.clock import utcnow
from chatferry.db.engine import transaction
from chatferry.db.models import App, Export, table_of
from chatferry.errors import ChatferryError
from chatferry.exports import status
from chatferry.exports.dates import window_bounds_utc
from chatferry.exports.formats import BatchReader, Page, count_rows
from chatferry.exports.service import (
    JOB_KIND,
    original_filename,
    row_limit_message,
    storage_key_for,
)
from chatferry.jobs.queue import ClaimedJob
from chatferry.runtime import Runtime
from chatferry.schedules.service import prune_runs_of_export

log = logging.getLogger(__name__)
_exports = table_of(Export)

# Least time between two progress writes of one export (cancellation is checked after
# every batch regardless).
PROGRESS_INTERVAL_SECONDS = 0.25


class ExportStopped(Exception):
    """The export was deleted or cancelled while it ran."""


class ExportFailed(ChatferryError):
    """The export cannot finish; the message tells the user why and what to do."""


@dataclass
class ExportPlan:
    export_id: int
    unique_id: str
    resource: str
    app: AppContext
    lower: datetime
    upper: datetime
    expected_rows: int
    filename: str


@dataclass
class StreamTotals:
    rows: int = 0
    size: int = 0
    sha256: str = ""


def _load_plan(rt: Runtime, export_id: int) -> ExportPlan | None:
    # A run_at export waits as `scheduled` until its job runs: its time has come.
    with rt.engine.begin() as conn:
        conn.execute(
            update(_exports)
            .where(_exports.c.id == export_id, _exports.c.status == status.SCHEDULED)
            .values(status=status.STARTED)
        )
    with transaction(rt.sessions) as session:
        export = session.get(Export, export_id)
        if export is None or export.status != status.STARTED:
            return None
        app = session.get(App, export.app_pk)
        assert app is not None
        ctx = app_context(app, rt.settings)
        lower, upper = window_bounds_utc(export.start_date, export.end_date, ctx.timezone)
        rows = count_rows(session.connection(), export.resource_name, ctx.pk, lower, upper)
        return ExportPlan(
            export.id,
            export.unique_id,
            export.resource_name,
            ctx,
            lower,
            upper,
            rows,
            original_filename(export, ctx),
        )


def _set_progress(rt: Runtime, export_id: int, percentage: int) -> None:
    """Records progress; raises ExportStopped if the export is no longer running."""
    with rt.engine.begin() as conn:
        result = conn.execute(
            update(_exports)
            .where(_exports.c.id == export_id, _exports.c.status == status.STARTED)
            .values(percentage=percentage)
        )
    if not result.rowcount:
        raise ExportStopped


def _file_chunks(rt: Runtime, plan: ExportPlan, totals: StreamTotals) -> Iterator[bytes]:
    """The file as a JSON array, one object a line, one chunk per database batch."""
    digest = hashlib.sha256()
    limit = plan.app.export_max_rows[plan.resource]
    reader = _batch_reader(rt, plan)
    progress = _Progress(rt, plan)
    first = True
    for page in _pages(rt, reader):
        totals.rows += len(page.rows)
        if totals.rows > limit:
            raise ExportFailed(row_limit_message(plan.resource, totals.rows, limit, plan.app))
        chunk = (b"[\n" if first else b",\n") + reader.format(page)
        first = False
        digest.update(chunk)
        totals.size += len(chunk)
        yield chunk
        progress.report(totals.rows)
        if rt.settings.export_batch_delay_seconds:
            time.sleep(rt.settings.export_batch_delay_seconds)
    tail = b"[]\n" if first else b"\n]\n"
    digest.update(tail)
    totals.size += len(tail)
    totals.sha256 = digest.hexdigest()
    yield tail


def _batch_reader(rt: Runtime, plan: ExportPlan) -> BatchReader:
    return BatchReader(
        rt.engine.dialect,
        plan.resource,
        plan.app.pk,
        plan.lower,
        plan.upper,
        rt.settings.export_batch_size,
    )


def _pages(rt: Runtime, reader: BatchReader) -> Iterator[Page]:
    """The export's pages in keyset order, each read on a pooled connection."""
    after: tuple[datetime, int] | None = None
    while True:
        with rt.engine.connect() as conn:
            page = reader.fetch(conn, after)
        if page is None:
            return
        yield page
        after = page.last


class _Progress:
    """After every batch: checks that the export still runs (a read), and writes the
    percentage at most every PROGRESS_INTERVAL_SECONDS, so a fast export is not a
    stream of commits."""

    def __init__(self, rt: Runtime, plan: ExportPlan) -> None:
        self._rt = rt
        self._plan = plan
        self._written_at = -PROGRESS_INTERVAL_SECONDS  # the first batch writes at once

    def report(self, rows: int) -> None:
        """Raises ExportStopped if the export was cancelled or deleted meanwhile."""
        now = time.monotonic()
        if now - self._written_at < PROGRESS_INTERVAL_SECONDS:
            with self._rt.engine.connect() as conn:
                if not _still_running(conn, self._plan.export_id):
                    raise ExportStopped
            return
        expected = max(self._plan.expected_rows, rows)
        _set_progress(self._rt, self._plan.export_id, min(99, rows * 100 // expected))
        self._written_at = now


def _still_running(conn: Connection, export_id: int) -> bool:
    found = conn.scalar(select(_exports.c.status).where(_exports.c.id == export_id))
    return found == status.STARTED


def _mark_finished(rt: Runtime, plan: ExportPlan, key: str, totals: StreamTotals) -> None:
    """Marks the export finished; if it was deleted meanwhile, removes the new file."""
    with rt.engine.begin() as conn:
        result = conn.execute(
            update(_exports)
            .where(_exports.c.id == plan.export_id, _exports.c.status == status.STARTED)
            .values(
                status=status.FINISHED,
                percentage=100,
                total_rows=totals.rows,
                size=totals.size,
                sha256=totals.sha256,
                storage_key=key,
                finished_at=utcnow(),
            )
        )
        still_wanted = bool(result.rowcount) or _finished_elsewhere(conn, plan.export_id)
    if not still_wanted:
        rt.store.delete(key)


def _finished_elsewhere(conn: Connection, export_id: int) -> bool:
    """True if another run of this job already finished the same file."""
    found = conn.scalar(select(_exports.c.status).where(_exports.c.id == export_id))
    return found == status.FINISHED


def mark_failed(session: Session, export_id: int, message: str) -> None:
    session.execute(
        update(_exports)
        .where(
            _exports.c.id == export_id,
            _exports.c.status.in_([status.STARTED, status.SCHEDULED]),
        )
        .values(status=status.FAILED, error_message=message, finished_at=utcnow())
    )


class ExportJobHandler:
    kind = JOB_KIND

    def run(self, rt: Runtime, job: ClaimedJob) -> None:
        plan = _load_plan(rt, job.target_id)
        if plan is None:
            return
        limit = plan.app.export_max_rows[plan.resource]
        if plan.expected_rows > limit:
            raise ExportFailed(
                row_limit_message(plan.resource, plan.expected_rows, limit, plan.app)
            )
        key = storage_key_for(plan.app.app_id, plan.unique_id)
        totals = StreamTotals()
        try:
            rt.store.put_stream(key, _file_chunks(rt, plan, totals), filename=plan.filename)
        except ExportStopped:
            log.info("export %s was cancelled while running; no file kept", plan.unique_id)
            return
        _mark_finished(rt, plan, key, totals)
        prune_runs_of_export(rt, plan.export_id)

    def fail(self, session: Session, job: ClaimedJob, message: str) -> None:
        mark_failed(session, job.target_id, message)
