"""Import requests: create (after the upload is stored), list, fetch."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chatferry.apps.service import AppContext
from chatferry.clock import utcnow
from chatferry.db.models import Import
from chatferry.db.types import is_lookup_key
from chatferry.errors import NotFound, show
from chatferry.imports.status import ImportStatus
from chatferry.jobs.queue import JobSpec, enqueue
from chatferry.resources import Resource
from chatferry.settings import Settings

JOB_KIND = "import"


@dataclass(frozen=True)
class StoredUpload:
    """An uploaded file, already in the file store under ``storage_key``."""

    unique_id: str
    resource: Resource
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
        status=ImportStatus.STARTED,
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
    spec = JobSpec(
        kind=JOB_KIND,
        target_id=record.id,
        app_pk=app.pk,
        ref=record.unique_id,
        app_ref=app.app_id,
        max_attempts=settings.job_max_attempts,
        max_crashes=settings.job_max_crashes,
        resource=upload.resource,
    )
    enqueue(session, spec)
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
    query = select(Import).where(Import.unique_id == unique_id, Import.app_pk == app.pk)
    record = session.scalar(query) if is_lookup_key(unique_id) else None
    if record is None:
        raise NotFound(f"no import with unique_id {show(unique_id)}")
    return record
