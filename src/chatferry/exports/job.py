"""The export job: streams rows from the database into the stored file."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, update

from chatferry.apps.service import AppContext, app_context
from chatferry.clock import utcnow
from chatferry.db.models import App, Export, table_of
from chatferry.errors import ChatferryError
from chatferry.exports.dates import window_bounds_utc
from chatferry.exports.days import day_bounds, encode_day_rows, rows_per_day
from chatferry.exports.formats import Piece, Window
from chatferry.exports.halves import pieces_in_halves, window_snapshot
from chatferry.exports.service import (
    JOB_KIND,
    original_filename,
    row_limit_details,
    row_limit_message,
    storage_key_for,
)
from chatferry.exports.status import PENDING, ExportStatus
from chatferry.jobs.events import Ended, event_key
from chatferry.jobs.handlers import JobReport
from chatferry.jobs.queue import ClaimedJob
from chatferry.jobs.records import TrackedRecords
from chatferry.resources import Resource
from chatferry.runtime import Runtime

log = logging.getLogger(__name__)
_exports = table_of(Export)
_apps = table_of(App)
# What a run needs of its export record (read as a plain row: no ORM, no schedule id).
_PLAN_COLUMNS = (
    "id", "unique_id", "app_pk", "status", "resource_name", "created_at", "start_date", "end_date"
)  # fmt: skip
_EXPORT_BY_ID = select(*[_exports.c[name] for name in _PLAN_COLUMNS]).where(
    _exports.c.id == bindparam("export_id")
)
_APP_BY_PK = select(_apps).where(_apps.c.id == bindparam("app_pk"))

EXPORT_RECORDS = TrackedRecords(
    _exports, running=ExportStatus.STARTED, pending=PENDING, failed=ExportStatus.FAILED
)

# Least time between two progress writes (and cancellation checks) of one export.
PROGRESS_INTERVAL_SECONDS = 0.25

# Called with the export's id after its file is stored and the record finished.
FinishedHook = Callable[[Runtime, int], None]


class ExportStopped(Exception):
    """The export was deleted or cancelled while it ran."""


class ExportFailed(ChatferryError):
    """The export cannot finish; the message tells the user why and what to do."""


@dataclass
class ExportPlan:
    export_id: int
    unique_id: str
    resource: Resource
    app: AppContext
    lower: datetime
    upper: datetime
    filename: str
    start: date
    end: date

    @property
    def window(self) -> Window:
        return Window(self.resource, self.app.pk, self.lower, self.upper)

    @property
    def row_limit(self) -> int:
        return self.app.export_max_rows[self.resource]

    def over_limit(self, rows: int) -> ExportFailed:
        return ExportFailed(
            row_limit_message(self.resource, rows, self.row_limit, self.app),
            row_limit_details(self.resource, rows, self.row_limit),
        )


@dataclass
class StreamTotals:
    rows: int = 0
    size: int = 0
    sha256: str = ""
    day_rows: str | None = None


def _load_plan(rt: Runtime, export_id: int) -> ExportPlan | None:
    """What the export's run needs, read in one transaction with plain rows; a run_at
    export that waited as `scheduled` becomes `started`: its time has come."""
    with rt.engine.begin() as conn:
        conn.execute(
            update(_exports)
            .where(_exports.c.id == export_id, _exports.c.status == ExportStatus.SCHEDULED)
            .values(status=ExportStatus.STARTED)
        )
        export = conn.execute(_EXPORT_BY_ID, {"export_id": export_id}).one_or_none()
        if export is None or export.status != ExportStatus.STARTED:
            return None
        app = conn.execute(_APP_BY_PK, {"app_pk": export.app_pk}).one()
    ctx = app_context(app, rt.settings)
    lower, upper = window_bounds_utc(export.start_date, export.end_date, ctx.timezone)
    resource = Resource(export.resource_name)
    filename = original_filename(export, ctx)
    return ExportPlan(
        export.id, export.unique_id, resource, ctx, lower, upper, filename, *_days(export)
    )


def _days(export: Row[Any]) -> tuple[date, date]:
    return export.start_date, export.end_date


def _count_days(conn: Connection, plan: ExportPlan, totals: StreamTotals) -> int:
    """The window's rows per day, kept for the record (coverage compares them with the
    days' rows later); their sum is the file's row count (the same snapshot)."""
    bounds = day_bounds(plan.start, plan.end, plan.app.timezone)
    counts = rows_per_day(conn, plan.resource, plan.app.pk, bounds)
    totals.day_rows = encode_day_rows(counts)
    return sum(counts)


class _Progress:
    """Writes the percentage at most every PROGRESS_INTERVAL_SECONDS (so a fast export
    is not a stream of commits); the guarded write also tells whether the export still
    runs, so a cancelled export stops within that interval."""

    def __init__(self, rt: Runtime, plan: ExportPlan, expected_rows: int) -> None:
        self._rt = rt
        self._plan = plan
        self._expected_rows = expected_rows
        # The first write after an interval: a small export finishes before it is due.
        self._written_at = time.monotonic()

    def report(self, rows: int) -> None:
        """Raises ExportStopped if the export was cancelled or deleted meanwhile."""
        now = time.monotonic()
        if now - self._written_at < PROGRESS_INTERVAL_SECONDS:
            return
        percentage = min(99, rows * 100 // max(self._expected_rows, rows))
        if not EXPORT_RECORDS.set_progress(self._rt.engine, self._plan.export_id, percentage):
            raise ExportStopped
        self._written_at = now


class ExportJobHandler:
    """Runs export jobs. ``on_finished`` runs after an export finished (the schedules
    prune their old runs there); ``after_batch`` is a test hook that runs after each
    batch (e.g. a pause, so a test can act while the export is mid-way)."""

    kind = JOB_KIND
    noun = "export"
    redo = "create the export again"
    records = EXPORT_RECORDS

    def __init__(
        self,
        on_finished: FinishedHook | None = None,
        after_batch: Callable[[], None] | None = None,
    ) -> None:
        self._on_finished = on_finished
        self._after_batch = after_batch

    def run(self, rt: Runtime, job: ClaimedJob) -> JobReport:
        plan = _load_plan(rt, job.target_id)
        if plan is None:
            return JobReport(outcome="skipped")
        key = storage_key_for(plan.app.app_id, plan.unique_id)
        totals = StreamTotals()
        try:
            # The count checked against the limit and the file's rows: one snapshot.
            with window_snapshot(rt.engine, plan.window, plan.row_limit) as snap:
                rows = _count_days(snap.conn, plan, totals)
                if rows > plan.row_limit:
                    raise plan.over_limit(rows)
                progress = _Progress(rt, plan, rows)
                batch = rt.settings.export_batch_size
                spool_dir = rt.settings.data_dir / "tmp"
                # closing: the readers (a streamed statement on PostgreSQL, a thread on
                # SQLite) stop at once when the export stops early.
                read = pieces_in_halves(snap, plan.window, batch, rows, spool_dir)
                with closing(read) as pieces:
                    chunks = self._file_chunks(plan, pieces, progress, totals)
                    rt.store.put_stream(key, chunks, filename=plan.filename)
        except ExportStopped:
            log.info("export %s was cancelled while running; no file kept", plan.unique_id)
            rt.store.delete(key)
            return JobReport(outcome="cancelled", resource=plan.resource)
        if _mark_finished(rt, plan, key, totals) and self._on_finished is not None:
            self._on_finished(rt, plan.export_id)
        return JobReport("finished", plan.resource, totals.rows, totals.size)

    def discard(self, rt: Runtime, job: ClaimedJob) -> None:
        """A failed export keeps no file and no staging file."""
        rt.store.delete(storage_key_for(job.app_ref, job.ref))

    def _file_chunks(
        self,
        plan: ExportPlan,
        pieces: Iterable[Piece],
        progress: _Progress,
        totals: StreamTotals,
    ) -> Iterator[bytes]:
        """The file as a JSON array, one object a line, a page of rows at a time."""
        digest = hashlib.sha256()
        first = True
        for piece in pieces:
            totals.rows += piece.rows
            chunk = (b"[\n" if first else b",\n") + piece.data
            first = False
            digest.update(chunk)
            totals.size += len(chunk)
            yield chunk
            progress.report(totals.rows)
            if self._after_batch is not None:
                self._after_batch()
        tail = b"[]\n" if first else b"\n]\n"
        digest.update(tail)
        totals.size += len(tail)
        totals.sha256 = digest.hexdigest()
        yield tail


def _mark_finished(rt: Runtime, plan: ExportPlan, key: str, totals: StreamTotals) -> bool:
    """Marks the export finished; True if this run did. If it was deleted meanwhile,
    removes the new file (unless another run of this job finished the same file)."""
    with rt.engine.begin() as conn:
        result = conn.execute(
            update(_exports)
            .where(_exports.c.id == plan.export_id, _exports.c.status == ExportStatus.STARTED)
            .values(
                status=ExportStatus.FINISHED,
                percentage=100,
                total_rows=totals.rows,
                size=totals.size,
                sha256=totals.sha256,
                storage_key=key,
                error_message="",
                finished_at=utcnow(),
                day_rows=totals.day_rows,
            )
        )
        done = bool(result.rowcount)
        if done:
            ended = Ended(JOB_KIND, plan.export_id, plan.unique_id, plan.app.pk, "finished")
            rt.events.ended(conn, ended)
        else:  # the record is read only then: a small export's every query counts
            kept = _finished_elsewhere(conn, plan.export_id)
    if done:
        rt.events.publish(event_key(JOB_KIND, plan.unique_id))
    elif not kept:
        rt.store.delete(key)
    return done


def _finished_elsewhere(conn: Connection, export_id: int) -> bool:
    """Another run of the job finished the export (with the same file)."""
    status = conn.scalar(select(_exports.c.status).where(_exports.c.id == export_id))
    return bool(status == ExportStatus.FINISHED)
