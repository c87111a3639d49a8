"""Import requests: create (after the upload is stored), list, fetch, and their records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chatferry.apps.service import AppContext
from chatferry.clock import rfc3339_in_zone, utcnow
from chatferry.db.models import Import
from chatferry.errors import NotFound
from chatferry.jobs.queue import enqueue
from chatferry.settings import Settings

JOB_KIND = "import"

STARTED = "started"
FINISHED = "finished"
FAILED = "failed"


@dataclass(frozen=True)
class StoredUpload:
    """An uploaded file, already in the file store under ``storage_key``."""

    unique_id: str
    resource: str
    filename: str
    size: int
    dry_run: bool
    storage_key: str


def new_unique_id() -> str:
    return str(uuid.uuid4())


def storage_key_for(app_id: str, unique_id: str) -> str:
    return f"imports/{app_id}/{unique_id}.json"


def create_import(
    session: Session, settings: Settings, app: AppContext, upload: StoredUpload
) -> Import:
    """Records the import and queues its job, in the caller's transaction."""
    record = Import(
        unique_id=upload.unique_id,
        app_pk=app.pk,
        resource_name=upload.resource,
        status=STARTED,
        dry_run=upload.dry_run,
        percentage=0,
        total_rows=0,
        size=upload.size,
        original_filename=upload.filename,
        storage_key=upload.storage_key,
        error_message="",
        error_data=None,
        created_at=utcnow(),
    )
    session.add(record)
    session.flush()
    enqueue(session, JOB_KIND, record.id, max_attempts=settings.job_max_attempts)
    return record


def list_imports(session: Session, app: AppContext, page: int, size: int) -> list[Import]:
    """The app's imports, newest first."""
    query = (
        select(Import)
        .where(Import.app_pk == app.pk)
        .order_by(Import.created_at.desc(), Import.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    )
    return list(session.scalars(query))


def count_imports(session: Session, app: AppContext) -> int:
    return int(session.scalar(select(func.count()).where(Import.app_pk == app.pk)) or 0)


def get_import(session: Session, app: AppContext, unique_id: str) -> Import:
    """The app's import with this id; another app's id is NotFound like an unknown one."""
    record = session.scalar(
        select(Import).where(Import.unique_id == unique_id, Import.app_pk == app.pk)
    )
    if record is None:
        raise NotFound(f"no import with unique_id {unique_id!r}")
    return record


def import_record(record: Import, app: AppContext) -> dict[str, Any]:
    """The record as the spec shows it, plus extension keys after the spec's own."""
    data = orjson.loads(record.error_data) if record.error_data else None
    return {
        "created_at": rfc3339_in_zone(record.created_at, app.timezone),
        "errors": {"Message": record.error_message, "Data": data},
        "original_filename": record.original_filename,
        "resource_name": record.resource_name,
        "size": record.size,
        "status": record.status,
        "total_rows": record.total_rows,
        "unique_id": record.unique_id,
        "percentage": record.percentage,
        "dry_run": record.dry_run,
        "finished_at": (
            rfc3339_in_zone(record.finished_at, app.timezone) if record.finished_at else ""
        ),
    }
