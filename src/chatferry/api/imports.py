"""The import endpoints of the spec, plus fetching one import by id."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from chatferry.api.deps import current_app, get_runtime
from chatferry.api.paging import Page, page_of, paged
from chatferry.api.responses import ok
from chatferry.apps.service import AppContext
from chatferry.db.engine import transaction
from chatferry.imports import service
from chatferry.imports.service import StoredUpload, import_record
from chatferry.imports.upload import ParsedUpload, file_chunks, read_upload

router = APIRouter(prefix="/api/v2.1/rest")


@router.post("/imports")
async def create_import(request: Request, app: AppContext = Depends(current_app)) -> Response:
    rt = get_runtime(request)
    parsed = await read_upload(request.headers, request.stream(), app)

    def create(upload: ParsedUpload) -> dict[str, Any]:
        unique_id = service.new_unique_id()
        key = service.storage_key_for(app.app_id, unique_id)
        rt.store.put_stream(key, file_chunks(upload.file))
        stored = StoredUpload(
            unique_id, upload.resource, upload.filename, upload.size, upload.dry_run, key
        )
        try:
            with transaction(rt.sessions) as session:
                record = service.create_import(session, rt.settings, app, stored)
        except BaseException:
            rt.store.delete(key)
            raise
        rt.job_wakeup.set()
        return import_record(record, app)

    try:
        record = await run_in_threadpool(create, parsed)
    finally:
        parsed.file.close()
    return ok({"backup_history": record})


@router.get("/imports")
def list_imports(
    request: Request,
    app: AppContext = Depends(current_app),
    page: Page = Depends(page_of),
) -> Response:
    rt = get_runtime(request)
    with transaction(rt.sessions) as session:
        records = service.list_imports(session, app, page.number, page.size)
        total = service.count_imports(session, app)
    return paged("backup_histories", [import_record(r, app) for r in records], page, total)


@router.get("/imports/{unique_id}")
def get_import(
    unique_id: str, request: Request, app: AppContext = Depends(current_app)
) -> Response:
    rt = get_runtime(request)
    with transaction(rt.sessions) as session:
        record = service.get_import(session, app, unique_id)
    return ok({"backup_history": import_record(record, app)})
