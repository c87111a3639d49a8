"""Periodic export schedules: /export_schedules (create, list, fetch, pause, delete)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from chatferry.api.deps import current_app, get_runtime
from chatferry.api.exports import read_json_body
from chatferry.api.paging import Page, page_of, paged
from chatferry.api.responses import ok
from chatferry.apps.service import AppContext
from chatferry.db.engine import transaction
from chatferry.schedules import service
from chatferry.schedules.service import schedule_record

router = APIRouter(prefix="/api/v2.1/rest")


@router.post("/export_schedules")
async def create_schedule(request: Request, app: AppContext = Depends(current_app)) -> Response:
    rt = get_runtime(request)
    body = await read_json_body(request)

    def create() -> dict[str, Any]:
        with transaction(rt.sessions) as session:
            schedule = service.create_schedule(session, app, body)
        return schedule_record(schedule, app)

    return ok({"export_schedule": await run_in_threadpool(create)})


@router.get("/export_schedules")
def list_schedules(
    request: Request,
    app: AppContext = Depends(current_app),
    page: Page = Depends(page_of),
) -> Response:
    rt = get_runtime(request)
    with transaction(rt.sessions) as session:
        schedules = service.list_schedules(session, app, page.number, page.size)
        total = service.count_schedules(session, app)
    return paged("export_schedules", [schedule_record(s, app) for s in schedules], page, total)


@router.get("/export_schedules/{unique_id}")
def get_schedule(
    unique_id: str, request: Request, app: AppContext = Depends(current_app)
) -> Response:
    rt = get_runtime(request)
    with transaction(rt.sessions) as session:
        schedule = service.get_schedule(session, app, unique_id)
    return ok({"export_schedule": schedule_record(schedule, app)})


@router.patch("/export_schedules/{unique_id}")
async def pause_schedule(
    unique_id: str, request: Request, app: AppContext = Depends(current_app)
) -> Response:
    rt = get_runtime(request)
    body = await read_json_body(request)

    def patch() -> dict[str, Any]:
        with transaction(rt.sessions) as session:
            schedule = service.set_paused(session, app, unique_id, body)
        return schedule_record(schedule, app)

    return ok({"export_schedule": await run_in_threadpool(patch)})


@router.delete("/export_schedules/{unique_id}")
def delete_schedule(
    unique_id: str, request: Request, app: AppContext = Depends(current_app)
) -> Response:
    rt = get_runtime(request)
    with transaction(rt.sessions) as session:
        schedule = service.delete_schedule(session, app, unique_id)
    return ok({"export_schedule": schedule_record(schedule, app)})
