"""The export endpoints of the spec, plus the signed file download."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, RedirectResponse, Response

from chatferry.api.deps import base_url, current_app, get_runtime
from chatferry.api.paging import Page, page_of, paged
from chatferry.api.responses import ok
from chatferry.apps.service import AppContext, app_context
from chatferry.db.engine import transaction
from chatferry.db.models import App, Export
from chatferry.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge
from chatferry.exports import service, status
from chatferry.exports.service import export_record
from chatferry.runtime import Runtime
from chatferry.storage.store import content_disposition

router = APIRouter(prefix="/api/v2.1/rest")

MAX_JSON_BODY = 64 * 1024


async def read_json_body(request: Request) -> Any:
    """The request body parsed as JSON, whatever Content-Type the client sent."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise PayloadTooLarge(f"the request body is over {MAX_JSON_BODY // 1024} KB")
    if not body.strip():
        raise BadRequest('the request body is empty: send a JSON object like {"type": "comments"}')
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None


def _render(rt: Runtime, request: Request, app: AppContext, export: Export) -> dict[str, Any]:
    url = service.download_url(
        export, base_url(request), rt.signer, rt.settings.download_url_ttl_seconds, rt.store
    )
    return export_record(export, app, url)


@router.post("/exports")
async def create_export(request: Request, app: AppContext = Depends(current_app)) -> Response:
    rt = get_runtime(request)
    body = await read_json_body(request)

    def create() -> dict[str, Any]:
        with transaction(rt.sessions) as session:
            export = service.create_export(session, rt.settings, app, body)
        rt.job_wakeup.set()
        return _render(rt, request, app, export)

    return ok(await run_in_threadpool(create))


@router.get("/exports")
def list_exports(
    request: Request,
    app: AppContext = Depends(current_app),
    page: Page = Depends(page_of),
) -> Response:
    rt = get_runtime(request)
    with transaction(rt.sessions) as session:
        exports = service.list_exports(session, app, page.number, page.size)
        total = service.count_exports(session, app)
    return paged("backup_histories", [_render(rt, request, app, e) for e in exports], page, total)


@router.get("/exports/{unique_id}")
def get_export(
    unique_id: str, request: Request, app: AppContext = Depends(current_app)
) -> Response:
    rt = get_runtime(request)
    with transaction(rt.sessions) as session:
        export = service.get_export(session, app, unique_id)
    return ok({"backup_history": _render(rt, request, app, export)})


@router.delete("/exports/{unique_id}")
def delete_export(
    unique_id: str, request: Request, app: AppContext = Depends(current_app)
) -> Response:
    rt = get_runtime(request)
    with transaction(rt.sessions) as session:
        deleted = service.delete_export(session, app, unique_id)
    if deleted.storage_key:
        rt.store.delete(deleted.storage_key)
    record = export_record(deleted.export, app, "")
    return ok({"backup_history": record})


@router.get("/exports/{unique_id}/file")
def download_export(
    unique_id: str,
    request: Request,
    expires: str = "",
    signature: str = "",
) -> Response:
    """Serves the file to whoever holds a valid signed link (no app headers needed)."""
    rt = get_runtime(request)
    # signer.check calls int(expires): refuse what int() cannot take ("²", 5000 digits).
    if not expires.isascii() or len(expires) > 20:
        raise Forbidden("the download link's signature is not valid: fetch the export again")
    rt.signer.check(unique_id, expires, signature, time.time())
    with transaction(rt.sessions) as session:
        export = session.scalar(select(Export).where(Export.unique_id == unique_id))
        app = session.get(App, export.app_pk) if export else None
    if export is None or app is None or export.status != status.FINISHED:
        raise NotFound(f"no finished export with unique_id {unique_id!r}")
    if not export.storage_key:
        raise NotFound("the export's file is no longer stored: create the export again")
    presigned = rt.store.presigned_url(export.storage_key, rt.settings.download_url_ttl_seconds)
    if presigned is not None:  # object storage: the client fetches the object itself
        return RedirectResponse(presigned, status_code=307)
    path = rt.store.local_path(export.storage_key)
    if path is None or not path.is_file():
        raise NotFound("the export's file is no longer stored: create the export again")
    filename = service.original_filename(export, app_context(app, rt.settings))
    # A plain filename="..." (with an RFC 5987 form only when needed): `curl -OJ` and
    # browsers then save the file under its original name.
    disposition = {"content-disposition": content_disposition(filename)}
    return FileResponse(path, media_type="application/json", headers=disposition)
