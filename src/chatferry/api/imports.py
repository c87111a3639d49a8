"""The import endpoints of the spec, plus fetching one import by id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from chatferry.api.deps import CurrentApp, PageDep, RuntimeDep, run_read
from chatferry.api.paging import paged
from chatferry.api.records import import_record
from chatferry.api.responses import ok
from chatferry.api.schemas import Envelope, ImportPage, OneImport, errors
from chatferry.api.upload import ParsedUpload, file_chunks, read_upload
from chatferry.api.waiting import WaitQuery, read_when_ended
from chatferry.apps import quotas
from chatferry.apps.service import AppContext
from chatferry.db.engine import reading, transaction
from chatferry.imports import service
from chatferry.imports.service import StoredUpload
from chatferry.imports.status import ImportStatus
from chatferry.jobs.events import event_key
from chatferry.runtime import Runtime

router = APIRouter(prefix="/api/v2.1/rest", tags=["imports"])

_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["type", "file"],
                    "properties": {
                        "type": {
                            "type": "string",
                            "enum": ["users", "rooms", "comments"],
                            "description": "The kind of rows in the file.",
                        },
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A JSON array in the import format, at most 4 MB.",
                        },
                        "validate_only": {
                            "type": "boolean",
                            "description": "Extension: check every row, write nothing.",
                        },
                    },
                }
            }
        },
    }
}


def _store(rt: Runtime, app: AppContext, upload: ParsedUpload) -> dict[str, Any]:
    """Stores the file, then records the import and queues its job (or removes the
    file again if that fails)."""
    unique_id = service.new_unique_id()
    key = service.storage_key_for(app.app_id, unique_id)
    rt.store.put_stream(key, file_chunks(upload.file))
    stored = StoredUpload(
        unique_id, upload.resource, upload.filename, upload.size, upload.dry_run, key
    )
    try:
        with transaction(rt.sessions) as session:
            record = service.create_import(session, rt.settings, app, stored)
            quotas.admit(session, rt.settings, app.pk, service.JOB_KIND)
    except BaseException:
        rt.store.delete(key)
        raise
    rt.job_wakeup.set()
    return import_record(record, app)


@router.post(
    "/imports",
    summary="Create an import",
    description=(
        "Uploads a JSON file of users, rooms or comments (multipart: `type`, `file`). "
        "The whole file is checked before a row is written; a failed import lists every "
        "problem in `errors.Data`. Import users, then rooms, then comments."
    ),
    response_model=Envelope[OneImport],
    responses=errors(400, 401, 413, 429),
    openapi_extra=_UPLOAD_DOC,
)
async def create_import(request: Request, app: CurrentApp, rt: RuntimeDep) -> Response:
    parsed = await read_upload(request.headers, request.stream(), app)
    try:
        record = await run_in_threadpool(_store, rt, app, parsed)
    finally:
        parsed.file.close()
    return ok({"backup_history": record})


@router.get(
    "/imports",
    summary="List imports",
    description="The app's imports, newest first, 20 a page.",
    response_model=Envelope[ImportPage],
    responses=errors(400, 401, 429),
)
async def list_imports(app: CurrentApp, page: PageDep, rt: RuntimeDep) -> Response:
    def read() -> Response:
        with reading(rt.engine) as session:
            records = service.list_imports(session, app, page.number, page.size)
            total = service.count_imports(session, app)
            rendered = [import_record(r, app) for r in records]
        return paged("backup_histories", rendered, page, total)

    return await run_read(rt, read)


@router.get(
    "/imports/{unique_id}",
    summary="Get an import by id (extension)",
    description=(
        "`results.backup_history` is the import record: its `status`, `percentage` and, "
        "once failed, every problem in `errors.Data`. Another app's ids are not found."
    ),
    response_model=Envelope[OneImport],
    responses=errors(400, 401, 404, 429),
)
async def get_import(
    unique_id: str, app: CurrentApp, rt: RuntimeDep, wait: WaitQuery = None
) -> Response:
    def read() -> dict[str, Any]:
        with reading(rt.engine) as session:
            record = service.get_import(session, app, unique_id)
            return {"backup_history": import_record(record, app)}

    if wait is None:
        return ok(await run_read(rt, read))
    key = event_key(service.JOB_KIND, unique_id)
    return ok(await read_when_ended(rt, key, read, _pending, wait))


def _pending(results: dict[str, Any]) -> bool:
    return bool(results["backup_history"]["status"] == ImportStatus.STARTED)
