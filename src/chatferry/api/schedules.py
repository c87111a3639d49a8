"""Periodic export schedules (an extension): create, list, fetch, change, run, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from chatferry.api.body import json_body, request_doc
from chatferry.api.deps import CurrentApp, PageDep, RuntimeDep, run_read
from chatferry.api.exports import render
from chatferry.api.paging import paged
from chatferry.api.records import schedule_record
from chatferry.api.responses import ok
from chatferry.api.schemas import Envelope, OneSchedule, SchedulePage, ScheduleRun, errors
from chatferry.apps import quotas
from chatferry.db.engine import reading, transaction
from chatferry.schedules import service
from chatferry.schedules.requests import ScheduleChange, ScheduleRequest
from chatferry.schedules.scheduler import run_now
from chatferry.schedules.service import remove_files

router = APIRouter(prefix="/api/v2.1/rest", tags=["schedules"])

_CREATE_EXAMPLE = '{"type": "comments", "cron": "@daily", "window_days": 1, "keep_last": 7}'
CreateBody = Annotated[ScheduleRequest, Depends(json_body(ScheduleRequest, _CREATE_EXAMPLE))]
ChangeBody = Annotated[ScheduleChange, Depends(json_body(ScheduleChange, '{"paused": true}'))]


@router.post(
    "/export_schedules",
    summary="Create a periodic export",
    description=(
        "Runs `cron` in the app's timezone. Runs leave no gap: each exports every day "
        "since the last covered one up to the day before it runs (the first run, the "
        "`window_days` days before), in exports of at most `window_days` days."
    ),
    response_model=Envelope[OneSchedule],
    responses=errors(400, 401, 413, 429),
    openapi_extra=request_doc(
        ScheduleRequest,
        {"nightly": {"type": "comments", "cron": "0 2 * * *", "window_days": 1, "keep_last": 7}},
    ),
)
async def create_schedule(app: CurrentApp, body: CreateBody, rt: RuntimeDep) -> Response:
    def create() -> dict[str, Any]:
        with transaction(rt.sessions) as session:
            schedule = service.create_schedule(session, app, body)
        return schedule_record(schedule, app)

    return ok({"export_schedule": await run_in_threadpool(create)})


@router.get(
    "/export_schedules",
    summary="List periodic exports",
    description="The app's schedules, newest first, 20 a page (`limit` up to 100).",
    response_model=Envelope[SchedulePage],
    responses=errors(400, 401, 429),
)
async def list_schedules(app: CurrentApp, page: PageDep, rt: RuntimeDep) -> Response:
    def read() -> Response:
        with reading(rt.engine) as session:
            schedules = service.list_schedules(session, app, page.number, page.size)
            total = service.count_schedules(session, app)
            rendered = [schedule_record(s, app) for s in schedules]
        return paged("export_schedules", rendered, page, total)

    return await run_read(rt, read)


@router.get(
    "/export_schedules/{unique_id}",
    summary="Get a periodic export",
    description="`covered_through` is the last day up to which every day is backed up.",
    response_model=Envelope[OneSchedule],
    responses=errors(401, 404, 429),
)
async def get_schedule(unique_id: str, app: CurrentApp, rt: RuntimeDep) -> Response:
    def read() -> dict[str, Any]:
        with reading(rt.engine) as session:
            schedule = service.get_schedule(session, app, unique_id)
            return {"export_schedule": schedule_record(schedule, app)}

    return ok(await run_read(rt, read))


@router.patch(
    "/export_schedules/{unique_id}",
    summary="Change, pause or resume a periodic export",
    description="Any of `paused`, `name`, `cron`, `window_days`, `keep_last`.",
    response_model=Envelope[OneSchedule],
    responses=errors(400, 401, 404, 413, 429),
    openapi_extra=request_doc(
        ScheduleChange, {"pause": {"paused": True}, "rename": {"name": "nightly comments"}}
    ),
)
async def change_schedule(
    unique_id: str, app: CurrentApp, body: ChangeBody, rt: RuntimeDep
) -> Response:
    def change() -> dict[str, Any]:
        with transaction(rt.sessions) as session:
            schedule = service.change_schedule(session, app, unique_id, body)
        return schedule_record(schedule, app)

    return ok({"export_schedule": await run_in_threadpool(change)})


@router.post(
    "/export_schedules/{unique_id}/run",
    summary="Run a periodic export now",
    description=(
        "Exports every day not covered yet, up to yesterday, at once (also when paused); "
        "`backup_histories` lists the exports it created (none if all is covered)."
    ),
    response_model=Envelope[ScheduleRun],
    responses=errors(401, 404, 409, 429),
)
def run_schedule(unique_id: str, request: Request, app: CurrentApp, rt: RuntimeDep) -> Response:
    with transaction(rt.sessions) as session:
        schedule, fired = run_now(session, rt.settings, app, unique_id)
        if fired.exports:  # asked for by the app: its quotas apply
            quotas.admit(session, rt.settings, app.pk, "export", added=len(fired.exports))
        record = schedule_record(schedule, app)
        exports = [render(rt, request, app, export) for export in fired.exports]
    remove_files(rt, fired.pruned_keys)
    rt.job_wakeup.set()
    return ok({"export_schedule": record, "backup_histories": exports})


@router.delete(
    "/export_schedules/{unique_id}",
    summary="Delete a periodic export",
    description="Its exports stay, as ordinary exports.",
    response_model=Envelope[OneSchedule],
    responses=errors(401, 404, 429),
)
def delete_schedule(unique_id: str, app: CurrentApp, rt: RuntimeDep) -> Response:
    with transaction(rt.sessions) as session:
        schedule = service.delete_schedule(session, app, unique_id)
        record = schedule_record(schedule, app)
    return ok({"export_schedule": record})
