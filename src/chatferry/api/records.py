"""Records as they go on the wire: the spec's keys first, our extensions after them."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import orjson
from sqlalchemy import Row

from chatferry.apps.service import AppContext
from chatferry.clock import rfc3339_in_zone
from chatferry.db.models import Export, ExportSchedule, Import
from chatferry.exports.service import original_filename
from chatferry.exports.status import ExportStatus
from chatferry.security.signing import LinkSigner
from chatferry.storage.store import FileStore


def _moment(value: Any, app: AppContext) -> str:
    return rfc3339_in_zone(value, app.timezone) if value else ""


def download_path(unique_id: str) -> str:
    return f"/api/v2.1/rest/exports/{quote(unique_id)}/file"


def download_url(
    export: Export | Row[Any], base_url: str, signer: LinkSigner, ttl_seconds: int, store: FileStore
) -> str:
    """An absolute link that expires ``ttl_seconds`` from now: on object storage a
    presigned URL of the object itself, else a signed link to the API's file route."""
    if export.status != ExportStatus.FINISHED or not export.storage_key:
        return ""
    presigned = store.presigned_url(export.storage_key, ttl_seconds)
    if presigned is not None:
        return presigned
    expires = int(time.time()) + ttl_seconds
    signature = signer.signature(export.unique_id, expires)
    path = download_path(export.unique_id)
    return f"{base_url.rstrip('/')}{path}?expires={expires}&signature={signature}"


def export_record(export: Export | Row[Any], app: AppContext, url: str) -> dict[str, Any]:
    """The export record as the spec shows it, plus extension keys."""
    return {
        "created_at": rfc3339_in_zone(export.created_at, app.timezone),
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
        "finished_at": _moment(export.finished_at, app),
        "sha256": export.sha256,
        "run_at": _moment(export.run_at, app),
        "schedule_id": export.schedule_unique_id or "",
        "expired_at": _moment(export.expired_at, app),
    }


def import_record(record: Import, app: AppContext) -> dict[str, Any]:
    """The import record as the spec shows it, plus extension keys."""
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
        "finished_at": _moment(record.finished_at, app),
    }


def schedule_record(schedule: ExportSchedule, app: AppContext) -> dict[str, Any]:
    """A schedule (an extension of ours: the spec has none)."""
    return {
        "unique_id": schedule.unique_id,
        "name": schedule.name,
        "type": schedule.resource_name,
        "cron": schedule.cron,
        "timezone": app.timezone,
        "window_days": schedule.window_days,
        "keep_last": schedule.keep_last,
        "paused": schedule.paused,
        "next_run_at": _moment(schedule.next_run_at, app),
        "last_run_at": _moment(schedule.last_run_at, app),
        "covered_through": (
            schedule.covered_through.isoformat() if schedule.covered_through else ""
        ),
        "created_at": _moment(schedule.created_at, app),
        "updated_at": _moment(schedule.updated_at, app),
    }
