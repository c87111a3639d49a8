"""Export requests: create, list, fetch, delete."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Row, bindparam, delete, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from chatferry.apps.service import AppContext, app_context
from chatferry.clock import rfc3339_in_zone, utcnow
from chatferry.db.engine import begin_write
from chatferry.db.models import App, Export, table_of
from chatferry.db.types import is_lookup_key
from chatferry.errors import BadRequest, NotFound, ServiceUnavailable, show
from chatferry.exports.dates import resolve_window, window_bounds_utc
from chatferry.exports.formats import count_rows
from chatferry.exports.requests import ExportRequest
from chatferry.exports.status import PENDING, ExportStatus
from chatferry.jobs.queue import JobSpec, cancel_jobs_for, enqueue
from chatferry.resources import Resource
from chatferry.settings import Settings
from chatferry.storage.room import low_space_problem
from chatferry.storage.store import FileStore

JOB_KIND = "export"
MAX_RUN_AT_DAYS = 366

# One app's export by its unique_id; built once (every poll of a record runs it).
_EXPORT = select(Export).where(
    Export.unique_id == bindparam("unique_id"), Export.app_pk == bindparam("app_pk")
)
_EXPORT_FOR_UPDATE = _EXPORT.with_for_update()
# The same as a plain row (for a record that is only read: about half the ORM's cost).
_EXPORTS = table_of(Export)
_EXPORT_ROW = select(
    _EXPORTS, Export.schedule_unique_id.expression.label("schedule_unique_id")
).where(_EXPORTS.c.unique_id == bindparam("unique_id"), _EXPORTS.c.app_pk == bindparam("app_pk"))


def row_limit_message(resource: str, rows: int, limit: int, app: AppContext) -> str:
    return (
        f"this export would contain {rows} {resource} rows, over the limit of {limit} rows "
        "for one export: choose a shorter date range with start_date and end_date, or ask "
        f"the operator to raise the limit (CHATFERRY_EXPORT_MAX_{resource.upper()}, or "
        f"'chatferry apps update {app.app_id} --export-max-{resource} N')"
    )


def row_limit_details(resource: str, rows: int, limit: int) -> dict[str, Any]:
    """The row-limit refusal for clients that split windows (extension keys)."""
    return {
        "code": "export_row_limit",
        "resource": resource,
        "rows": rows,
        "limit": limit,
        "setting": f"CHATFERRY_EXPORT_MAX_{resource.upper()}",
    }


def check_run_at(run_at: datetime | None, now: datetime, timezone: str) -> datetime | None:
    """``run_at`` must lie in the future, at most MAX_RUN_AT_DAYS ahead; the refusals
    give the times in the app's timezone and say which times are allowed."""
    if run_at is None:
        return None
    latest = now + timedelta(days=MAX_RUN_AT_DAYS)
    if run_at <= now:
        example = rfc3339_in_zone(now + timedelta(hours=1), timezone)
        raise BadRequest(
            f"the time to run the export (run_at), {in_words(run_at, timezone)}, is not in "
            f"the future (it is now {in_words(now, timezone)}): leave it out to export now, "
            f"or give a later time like {example!r}"
        )
    if run_at > latest:
        raise BadRequest(
            f"the time to run the export (run_at), {in_words(run_at, timezone)}, is more "
            f"than {MAX_RUN_AT_DAYS} days ahead: the latest allowed is "
            f"{in_words(latest, timezone)} ({rfc3339_in_zone(latest, timezone)!r})"
        )
    return run_at


def ensure_storage_room(store: FileStore, settings: Settings) -> None:
    """Refuses a new export (503) while local storage is under its free-space minimum:
    the file could not be written, and a full disk fails every tenant's exports."""
    problem = low_space_problem(store, settings.storage_min_free_bytes)
    if problem is not None:
        raise ServiceUnavailable(
            f"new exports are refused for now: {problem}; try again later",
            {"code": "storage_full"},
            {"Retry-After": "60"},
        )


def in_words(moment: datetime, timezone: str) -> str:
    """``2030-01-05 08:00 Asia/Jakarta (UTC+07:00)``: a time as a person reads it."""
    local = moment.astimezone(ZoneInfo(timezone))
    offset = rfc3339_in_zone(moment, timezone)[19:]
    return f"{local:%Y-%m-%d %H:%M} {timezone} (UTC{offset})"


def export_job(settings: Settings, app: AppContext, export: Export) -> JobSpec:
    """The job that produces ``export``'s file (after its run_at, if any)."""
    return JobSpec(
        kind=JOB_KIND,
        target_id=export.id,
        app_pk=app.pk,
        ref=export.unique_id,
        app_ref=app.app_id,
        max_attempts=settings.job_max_attempts,
        max_crashes=settings.job_max_crashes,
        run_after=export.run_at,
        resource=export.resource_name,
    )


def create_export(
    session: Session,
    settings: Settings,
    app: AppContext,
    request: ExportRequest,
    now: datetime | None = None,
) -> Export:
    """Checks the window and the row limit and queues the export job.

    With ``run_at`` the export waits, ``scheduled``, until then (its job runs after it).
    The dates are fixed now; a missing start_date/end_date defaults from run_at's day
    (in the app's timezone) instead of today's.
    """
    begin_write(session)
    now = now or utcnow()
    run_at = check_run_at(request.run_at, now, app.timezone)
    start, end = resolve_window(
        request.start_date, request.end_date, app.timezone, run_at or now, settings.export_max_days
    )
    resource = request.type
    lower, upper = window_bounds_utc(start, end, app.timezone)
    rows = count_rows(session.connection(), resource, app.pk, lower, upper)
    limit = app.export_max_rows[resource]
    if rows > limit:
        raise BadRequest(
            row_limit_message(resource, rows, limit, app), row_limit_details(resource, rows, limit)
        )
    export = new_export(app, resource, start, end, now, run_at=run_at)
    session.add(export)
    session.flush()
    # A query expression, not set on insert: an export created here has no schedule.
    set_committed_value(export, "schedule_unique_id", None)
    enqueue(session, export_job(settings, app, export))
    return export


def new_export(
    app: AppContext,
    resource: Resource,
    start: date,
    end: date,
    now: datetime,
    run_at: datetime | None = None,
    schedule_id: int | None = None,
    scheduled_for: datetime | None = None,
) -> Export:
    """A new export record: ``scheduled`` if it waits for ``run_at``, else ``started``."""
    return Export(
        unique_id=str(uuid.uuid4()),
        app_pk=app.pk,
        resource_name=resource,
        status=ExportStatus.SCHEDULED if run_at else ExportStatus.STARTED,
        percentage=0,
        total_rows=0,
        size=0,
        error_message="",
        start_date=start,
        end_date=end,
        storage_key="",
        sha256="",
        created_at=now,
        run_at=run_at,
        schedule_id=schedule_id,
        scheduled_for=scheduled_for,
    )


def list_exports(session: Session, app: AppContext, page: int, size: int) -> list[Export]:
    """The app's exports, newest first."""
    query = (
        select(Export)
        .where(Export.app_pk == app.pk)
        .order_by(Export.created_at.desc(), Export.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    )
    return list(session.scalars(query))


def count_exports(session: Session, app: AppContext) -> int:
    return int(session.scalar(select(func.count()).where(Export.app_pk == app.pk)) or 0)


def export_row(conn: Connection, app: AppContext, unique_id: str) -> Row[Any]:
    """The app's export with this id as a plain row with the model's attributes, for
    reading it; NotFound as get_export."""
    row = None
    if is_lookup_key(unique_id):
        row = conn.execute(_EXPORT_ROW, {"unique_id": unique_id, "app_pk": app.pk}).first()
    if row is None:
        raise NotFound(f"no export with unique_id {show(unique_id)}")
    return row


def get_export(
    session: Session, app: AppContext, unique_id: str, for_update: bool = False
) -> Export:
    """The app's export with this id; another app's id is NotFound like an unknown one.

    ``for_update`` locks the row and reads its latest committed version (PostgreSQL).
    """
    if not is_lookup_key(unique_id):
        raise NotFound(f"no export with unique_id {show(unique_id)}")
    query = _EXPORT_FOR_UPDATE if for_update else _EXPORT
    export = session.scalar(query, {"unique_id": unique_id, "app_pk": app.pk})
    if export is None:
        raise NotFound(f"no export with unique_id {show(unique_id)}")
    return export


@dataclass(frozen=True)
class DeletedExport:
    export: Export
    storage_key: str


def delete_export(session: Session, app: AppContext, unique_id: str) -> DeletedExport:
    """Cancels the export's job and deletes the record.

    The caller removes the file at ``storage_key`` after committing, so a failed
    commit never leaves a record without its file.
    """
    begin_write(session)
    # Locked: a job finishing meanwhile must not leave us holding a stale storage_key.
    export = get_export(session, app, unique_id, for_update=True)
    if export.status in PENDING:
        export.status = ExportStatus.CANCELLED
    cancel_jobs_for(session, JOB_KIND, export.id)
    session.execute(delete(Export).where(Export.id == export.id))
    return DeletedExport(export, export.storage_key)


def storage_key_for(app_id: str, unique_id: str) -> str:
    return f"exports/{app_id}/{unique_id}.json"


def original_filename(export: Export | Row[Any], app: AppContext) -> str:
    """``<created_at>_exported_<type>.json``, the file name the spec gives an export."""
    created_at = rfc3339_in_zone(export.created_at, app.timezone)
    return f"{created_at}_exported_{export.resource_name}.json"


def find_downloadable(
    session: Session, unique_id: str, settings: Settings
) -> tuple[Export, AppContext]:
    """A finished export whose file is still stored, with its app (for its file name);
    any app's: the caller has checked the link's signature."""
    found = select(Export).where(Export.unique_id == unique_id)
    export = session.scalar(found) if is_lookup_key(unique_id) else None
    app = session.get(App, export.app_pk) if export else None
    if export is None or app is None or export.status != ExportStatus.FINISHED:
        raise NotFound(f"no finished export with unique_id {show(unique_id)}")
    if not export.storage_key:
        raise NotFound("the export's file is no longer stored: create the export again")
    return export, app_context(app, settings)
