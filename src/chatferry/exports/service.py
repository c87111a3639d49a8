"""Export requests: create, list, fetch, delete, and their records on the wire."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from chatferry.apps.service import RESOURCES, AppContext
from chatferry.clock import rfc3339_in_zone, utcnow
from chatferry.db.engine import begin_write
from chatferry.db.models import Export
from chatferry.errors import BadRequest, NotFound
from chatferry.exports import status
from chatferry.exports.dates import resolve_window, window_bounds_utc
from chatferry.exports.formats import count_rows
from chatferry.jobs.queue import cancel_jobs_for, enqueue
from chatferry.settings import Settings
from chatferry.storage.signing import LinkSigner
from chatferry.storage.store import FileStore

JOB_KIND = "export"


def check_resource(value: Any) -> str:
    if value is None or value == "":
        raise BadRequest('type is required: one of "users", "rooms", "comments"')
    if value not in RESOURCES:
        raise BadRequest(f'type {value!r} is not valid: use one of "users", "rooms", "comments"')
    return str(value)


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


def create_export(
    session: Session, settings: Settings, app: AppContext, body: Any, now: datetime | None = None
) -> Export:
    """Validates the request, checks the row limit and queues the export job.

    With ``run_at`` the export waits, ``scheduled``, until then (its job runs after it).
    The dates are fixed now; a missing start_date/end_date defaults from run_at's day
    (in the app's timezone) instead of today's.
    """
    begin_write(session)
    if not isinstance(body, dict):
        raise BadRequest('the request body must be a JSON object like {"type": "comments"}')
    resource = check_resource(body.get("type"))
    now = now or utcnow()
    run_at = parse_run_at(body.get("run_at"), now)
    start, end = resolve_window(
        body.get("start_date"),
        body.get("end_date"),
        app.timezone,
        run_at or now,
        settings.export_max_days,
    )
    lower, upper = window_bounds_utc(start, end, app.timezone)
    rows = count_rows(session.connection(), resource, app.pk, lower, upper)
    limit = app.export_max_rows[resource]
    if rows > limit:
        raise BadRequest(
            row_limit_message(resource, rows, limit, app),
            row_limit_details(resource, rows, limit),
        )
    export = new_export(app, resource, start, end, now, run_at=run_at)
    session.add(export)
    session.flush()
    session.refresh(export, ["schedule_unique_id"])  # a query expression: not set on insert
    enqueue(session, JOB_KIND, export.id, max_attempts=settings.job_max_attempts, run_after=run_at)
    return export


def new_export(
    app: AppContext,
    resource: str,
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
        status=status.SCHEDULED if run_at else status.STARTED,
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


# RFC 3339 date-time with a required offset ("Z" or +hh:mm); fractions of a second allowed.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
MAX_RUN_AT_DAYS = 366


def parse_run_at(value: Any, now: datetime) -> datetime | None:
    """``run_at``: an RFC 3339 time with offset, in the future (at most a year ahead)."""
    if value is None or value == "":
        return None
    example = (now + timedelta(hours=1)).replace(microsecond=0).isoformat()
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise BadRequest(
            f"run_at {value!r} is not an RFC 3339 time with a UTC offset: "
            f"use e.g. {example!r} or '2030-01-05T02:00:00+07:00'"
        )
    text = value.upper().replace("Z", "+00:00")
    whole, _, rest = text.partition(".")
    if rest:  # fromisoformat takes at most 6 fraction digits
        digits = rest[: len(rest) - 6]
        text = f"{whole}.{digits[:6].ljust(6, '0')}{rest[-6:]}"
    try:
        moment = datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadRequest(f"run_at {value!r} is not a valid date and time") from None
    if moment <= now:
        raise BadRequest(
            f"run_at {value!r} is not in the future: leave it out to export now, "
            f"or give a later time like {example!r}"
        )
    if moment > now + timedelta(days=MAX_RUN_AT_DAYS):
        raise BadRequest(f"run_at {value!r} is more than {MAX_RUN_AT_DAYS} days ahead")
    return moment


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


def get_export(
    session: Session, app: AppContext, unique_id: str, for_update: bool = False
) -> Export:
    """The app's export with this id; another app's id is NotFound like an unknown one.

    ``for_update`` locks the row and reads its latest committed version (PostgreSQL).
    """
    if "\x00" in unique_id:  # PostgreSQL refuses NUL in text: it can match nothing
        raise NotFound(f"no export with unique_id {unique_id!r}")
    query = select(Export).where(Export.unique_id == unique_id, Export.app_pk == app.pk)
    export = session.scalar(query.with_for_update() if for_update else query)
    if export is None:
        raise NotFound(f"no export with unique_id {unique_id!r}")
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
    if export.status in (status.STARTED, status.SCHEDULED):
        export.status = status.CANCELLED
    cancel_jobs_for(session, JOB_KIND, export.id)
    session.execute(delete(Export).where(Export.id == export.id))
    return DeletedExport(export, export.storage_key)


def storage_key_for(app_id: str, unique_id: str) -> str:
    return f"exports/{app_id}/{unique_id}.json"


def download_path(export: Export) -> str:
    return f"/api/v2.1/rest/exports/{quote(export.unique_id)}/file"


def download_url(
    export: Export,
    base_url: str,
    signer: LinkSigner,
    ttl_seconds: int,
    store: FileStore | None = None,
) -> str:
    """An absolute link that expires ``ttl_seconds`` from now: on object storage a
    presigned URL of the object itself, else a signed link to the API's file route."""
    if export.status != status.FINISHED or not export.storage_key:
        return ""
    if store is not None:
        presigned = store.presigned_url(export.storage_key, ttl_seconds)
        if presigned is not None:
            return presigned
    expires = int(time.time()) + ttl_seconds
    signature = signer.signature(export.unique_id, expires)
    return f"{base_url.rstrip('/')}{download_path(export)}?expires={expires}&signature={signature}"


def original_filename(export: Export, app: AppContext) -> str:
    """``<created_at>_exported_<type>.json``, the file name the spec gives an export."""
    created_at = rfc3339_in_zone(export.created_at, app.timezone)
    return f"{created_at}_exported_{export.resource_name}.json"


def export_record(export: Export, app: AppContext, url: str) -> dict[str, Any]:
    """The record as the spec shows it, plus extension keys after the spec's own."""
    created_at = rfc3339_in_zone(export.created_at, app.timezone)
    return {
        "created_at": created_at,
        "download_url": url,
        "error_message": export.error_message,
        "original_filename": original_filename(export, app),
        "percentage": export.percentage,
        "resource_name": export.resource_name,
        "size": export.size,
        "status": export.status,
        "total_rows": export.total_rows,
        "unique_id": export.unique_id,
        "start_date": export.start_date.isoformat(),
        "end_date": export.end_date.isoformat(),
        "finished_at": (
            rfc3339_in_zone(export.finished_at, app.timezone) if export.finished_at else ""
        ),
        "sha256": export.sha256,
        "run_at": rfc3339_in_zone(export.run_at, app.timezone) if export.run_at else "",
        "schedule_id": export.schedule_unique_id or "",
        "expired_at": (
            rfc3339_in_zone(export.expired_at, app.timezone) if export.expired_at else ""
        ),
    }
