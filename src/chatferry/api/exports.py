"""The export endpoints of the spec, plus the signed file download."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import Row
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, MalformedRangeHeader, RedirectResponse, Response
from starlette.responses import RangeNotSatisfiable as RangeOutside

from chatferry.api.body import json_body, request_doc
from chatferry.api.deps import CurrentApp, PageDep, RuntimeDep, base_url, run_read
from chatferry.api.paging import paged
from chatferry.api.records import download_url, export_record
from chatferry.api.responses import ok
from chatferry.api.schemas import Envelope, ExportPage, ExportRecord, OneExport, errors
from chatferry.api.waiting import WaitQuery, read_when_ended
from chatferry.apps import quotas
from chatferry.apps.service import AppContext
from chatferry.db.engine import read_connection, reading, transaction
from chatferry.db.models import Export
from chatferry.errors import BadRequest, NotFound, RangeNotSatisfiable
from chatferry.exports import service
from chatferry.exports.dates import RUN_AT_PLACEHOLDER
from chatferry.exports.requests import ExportRequest
from chatferry.exports.status import PENDING, ExportStatus
from chatferry.jobs.events import Ended, event_key
from chatferry.runtime import Runtime
from chatferry.storage.store import content_disposition

router = APIRouter(prefix="/api/v2.1/rest", tags=["exports"])

_EXAMPLE = '{"type": "comments"}'
ExportBody = Annotated[ExportRequest, Depends(json_body(ExportRequest, _EXAMPLE))]


def render(
    rt: Runtime, request: Request, app: AppContext, export: Export | Row[Any]
) -> dict[str, Any]:
    """The record with a fresh download link."""
    url = download_url(
        export, base_url(request), rt.signer, rt.settings.download_url_ttl_seconds, rt.store
    )
    return export_record(export, app, url)


@router.post(
    "/exports",
    summary="Create a backup (export)",
    description=(
        "Queues an export of one resource over whole days in the app's timezone. "
        "`results` is the new record, status `started` (or `scheduled` with `run_at`). "
        "Refused with 400 when the window is over 30 days or holds more rows than the "
        "export limit (1000 users, 1000 rooms, 5000 comments by default)."
    ),
    response_model=Envelope[ExportRecord],
    responses=errors(400, 401, 409, 413, 429, 503),
    openapi_extra=request_doc(
        ExportRequest,
        {
            "spec": {"type": "comments", "start_date": "2017-01-01", "end_date": "2017-01-05"},
            "later": {"type": "users", "run_at": RUN_AT_PLACEHOLDER},
        },
    ),
)
async def create_export(
    request: Request, app: CurrentApp, body: ExportBody, rt: RuntimeDep
) -> Response:
    def create() -> dict[str, Any]:
        service.ensure_storage_room(rt.store, rt.settings)
        with transaction(rt.sessions) as session:
            export = service.create_export(session, rt.settings, app, body)
            quotas.admit(session, rt.settings, app.pk, service.JOB_KIND)
        rt.job_wakeup.set()
        return render(rt, request, app, export)

    return ok(await run_in_threadpool(create))


@router.get(
    "/exports",
    summary="List backups",
    description="The app's exports, newest first, 20 a page (`limit` up to 100).",
    response_model=Envelope[ExportPage],
    responses=errors(400, 401, 429),
)
async def list_exports(
    request: Request, app: CurrentApp, page: PageDep, rt: RuntimeDep
) -> Response:
    def read() -> Response:
        with reading(rt.engine) as session:
            exports = service.list_exports(session, app, page.number, page.size)
            total = service.count_exports(session, app)
            records = [render(rt, request, app, e) for e in exports]
        return paged("backup_histories", records, page, total)

    return await run_read(rt, read)


@router.get(
    "/exports/{unique_id}",
    summary="Get a backup by id",
    description=(
        "`results.backup_history` is the export record; a finished one carries a fresh "
        "signed `download_url`. Another app's ids are not found."
    ),
    response_model=Envelope[OneExport],
    responses=errors(400, 401, 404, 429),
)
async def get_export(
    unique_id: str, request: Request, app: CurrentApp, rt: RuntimeDep, wait: WaitQuery = None
) -> Response:
    def read() -> dict[str, Any]:
        with read_connection(rt.engine) as conn:
            export = service.export_row(conn, app, unique_id)
        return {"backup_history": render(rt, request, app, export)}

    if wait is None:
        return ok(await run_read(rt, read))
    key = event_key(service.JOB_KIND, unique_id)
    return ok(await read_when_ended(rt, key, read, _pending, wait))


def _pending(results: dict[str, Any]) -> bool:
    return bool(results["backup_history"]["status"] in PENDING)


@router.delete(
    "/exports/{unique_id}",
    summary="Delete a backup by id",
    description=(
        "Deletes the record and its file; a running export is cancelled first and "
        "leaves no file. `results.backup_history` is the deleted record."
    ),
    response_model=Envelope[OneExport],
    responses=errors(401, 404, 429),
)
def delete_export(unique_id: str, app: CurrentApp, rt: RuntimeDep) -> Response:
    with transaction(rt.sessions) as session:
        deleted = service.delete_export(session, app, unique_id)
        record = export_record(deleted.export, app, "")
        cancelled = deleted.export.status == ExportStatus.CANCELLED
        if cancelled:  # webhooks and waiting requests hear of it
            export = deleted.export
            ended = Ended(
                service.JOB_KIND, export.id, export.unique_id, app.pk, "cancelled", record
            )
            rt.events.ended(session, ended)
    if cancelled:
        rt.events.publish(event_key(service.JOB_KIND, unique_id))
    if deleted.storage_key:
        rt.store.delete(deleted.storage_key)
    return ok({"backup_history": record})


_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The export file: a JSON array in the import format.",
        "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}},
    },
    206: {"description": "The requested byte range of the file."},
    307: {"description": "On object storage: a redirect to a presigned URL of the file."},
    **errors(400, 403, 404, 416),
}


_FILE_DESCRIPTION = (
    "Serves the file to whoever holds a valid signed link, without app headers. "
    "Supports `Range` and `HEAD`."
)


@router.head(
    "/exports/{unique_id}/file",
    summary="The headers of a backup's file (size, name)",
    description=_FILE_DESCRIPTION,
    responses=_FILE_RESPONSES,
    response_class=Response,
    operation_id="head_export_file",
)
@router.get(
    "/exports/{unique_id}/file",
    summary="Download a backup's file (the signed download_url)",
    description=_FILE_DESCRIPTION,
    responses=_FILE_RESPONSES,
    response_class=Response,
    operation_id="download_export_file",
)
def download_export(
    unique_id: str,
    request: Request,
    rt: RuntimeDep,
    expires: Annotated[str, Query(description="The link's expiry (Unix time).")] = "",
    signature: Annotated[str, Query(description="The link's HMAC-SHA256 (hex).")] = "",
) -> Response:
    rt.signer.check(unique_id, expires, signature, time.time())
    with transaction(rt.sessions) as session:
        export, app = service.find_downloadable(session, unique_id, rt.settings)
    ttl = rt.settings.download_url_ttl_seconds
    presigned = rt.store.presigned_url(export.storage_key, ttl)
    if presigned is not None:  # object storage: the client fetches the object itself
        return RedirectResponse(presigned, status_code=307)
    path = rt.store.local_path(export.storage_key)
    if path is None or not path.is_file():
        raise NotFound("the export's file is no longer stored: create the export again")
    _check_range(request, path.stat().st_size)
    # A plain filename="..." (with an RFC 5987 form only when needed): `curl -OJ` and
    # browsers then save the file under its original name.
    disposition = {
        "content-disposition": content_disposition(service.original_filename(export, app))
    }
    return FileResponse(path, media_type="application/json", headers=disposition)


def _check_range(request: Request, size: int) -> None:
    """A Range the file cannot serve is refused in our envelope (the file response
    itself would answer in plain text)."""
    value = request.headers.get("range")
    if value is None or request.headers.get("if-range") is not None:
        return
    try:
        FileResponse._parse_range_header(value, size)
    except MalformedRangeHeader:
        raise BadRequest(
            "the Range header is not valid: use one byte range like 'bytes=0-1023' or 'bytes=1024-'"
        ) from None
    except RangeOutside:
        raise RangeNotSatisfiable(
            f"the Range starts past the end of the file ({size} bytes)",
            {"code": "range_not_satisfiable", "size": size},
            {"Content-Range": f"bytes */{size}"},
        ) from None
