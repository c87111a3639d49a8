"""Periodic export schedules: create, list, fetch, pause/resume, delete, prune old runs.

A schedule runs ``cron`` in its app's timezone. Each run is an ordinary export of the
``window_days`` whole days before the run's day (in the app's timezone), recorded with
``schedule_id`` and ``scheduled_for`` (see scheduler.py for how runs fire). After a run
finishes, older runs are deleted with their files so that the newest ``keep_last``
finished exports remain; a failed or cancelled run is kept only while it is among the
newest ``keep_last`` runs, so failures never push out good backups.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from chatferry.apps.service import AppContext
from chatferry.clock import rfc3339_in_zone, utcnow
from chatferry.db.engine import begin_write, transaction
from chatferry.db.models import Export, ExportSchedule, table_of
from chatferry.errors import BadRequest, NotFound
from chatferry.exports import status
from chatferry.exports.service import check_resource
from chatferry.runtime import Runtime
from chatferry.schedules.cron import next_run_after, parse_cron

log = logging.getLogger(__name__)

MAX_WINDOW_DAYS = 30
MAX_KEEP_LAST = 1000
DONE_STATUSES = (status.FINISHED, status.FAILED, status.CANCELLED)

_exports = table_of(Export)
_schedules = table_of(ExportSchedule)


def _whole_number(value: Any, name: str, low: int, high: int, meaning: str) -> int:
    # bool is an int in Python, but true is not a number of days.
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(
            f"{name} must be a whole number from {low} to {high} ({meaning}), got {value!r}"
        )
    if not low <= value <= high:
        raise BadRequest(f"{name} {value} is out of range: use {low} to {high} ({meaning})")
    return value


def parse_window_days(value: Any) -> int:
    if value is None:
        raise BadRequest(
            f"window_days is required: each run exports that many whole days before "
            f"the run's day, 1 to {MAX_WINDOW_DAYS}"
        )
    return _whole_number(
        value, "window_days", 1, MAX_WINDOW_DAYS, "the whole days before each run to export"
    )


def parse_keep_last(value: Any) -> int:
    if value is None:
        raise BadRequest(
            "keep_last is required: how many finished exports of this schedule to keep "
            "(older ones are deleted with their files)"
        )
    return _whole_number(
        value, "keep_last", 1, MAX_KEEP_LAST, "how many finished exports of the schedule to keep"
    )


def run_window(scheduled_for: datetime, timezone: str, window_days: int) -> tuple[date, date]:
    """The ``window_days`` whole days before the run's day in the app's timezone."""
    day = scheduled_for.astimezone(ZoneInfo(timezone)).date()
    return day - timedelta(days=window_days), day - timedelta(days=1)


def create_schedule(
    session: Session, app: AppContext, body: Any, now: datetime | None = None
) -> ExportSchedule:
    if not isinstance(body, dict):
        raise BadRequest(
            "the request body must be a JSON object like "
            '{"type": "comments", "cron": "@daily", "window_days": 1, "keep_last": 7}'
        )
    resource = check_resource(body.get("type"))
    cron = parse_cron(body.get("cron"))
    window_days = parse_window_days(body.get("window_days"))
    keep_last = parse_keep_last(body.get("keep_last"))
    paused = body.get("paused", False)
    if not isinstance(paused, bool):
        raise BadRequest(f"paused must be true or false, got {paused!r}")
    now = now or utcnow()
    schedule = ExportSchedule(
        unique_id=str(uuid.uuid4()),
        app_pk=app.pk,
        resource_name=resource,
        cron=cron,
        window_days=window_days,
        keep_last=keep_last,
        paused=paused,
        next_run_at=next_run_after(cron, app.timezone, now),
        last_run_at=None,
        created_at=now,
        updated_at=now,
    )
    session.add(schedule)
    session.flush()
    return schedule


def list_schedules(session: Session, app: AppContext, page: int, size: int) -> list[ExportSchedule]:
    """The app's schedules, newest first."""
    query = (
        select(ExportSchedule)
        .where(ExportSchedule.app_pk == app.pk)
        .order_by(ExportSchedule.created_at.desc(), ExportSchedule.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    )
    return list(session.scalars(query))


def count_schedules(session: Session, app: AppContext) -> int:
    query = select(func.count()).where(ExportSchedule.app_pk == app.pk)
    return int(session.scalar(query) or 0)


def get_schedule(
    session: Session, app: AppContext, unique_id: str, for_update: bool = False
) -> ExportSchedule:
    """The app's schedule with this id; another app's id is NotFound like an unknown one."""
    if "\x00" in unique_id:  # PostgreSQL refuses NUL in text: it can match nothing
        raise NotFound(f"no export schedule with unique_id {unique_id!r}")
    query = select(ExportSchedule).where(
        ExportSchedule.unique_id == unique_id, ExportSchedule.app_pk == app.pk
    )
    schedule = session.scalar(query.with_for_update() if for_update else query)
    if schedule is None:
        raise NotFound(f"no export schedule with unique_id {unique_id!r}")
    return schedule


def set_paused(
    session: Session, app: AppContext, unique_id: str, body: Any, now: datetime | None = None
) -> ExportSchedule:
    """Pauses or resumes; a resumed schedule next runs at its first time after now
    (runs missed while paused are not made up)."""
    if not isinstance(body, dict) or set(body) != {"paused"}:
        raise BadRequest('send {"paused": true} to pause the schedule or {"paused": false}')
    paused = body["paused"]
    if not isinstance(paused, bool):
        raise BadRequest(f"paused must be true or false, got {paused!r}")
    begin_write(session)
    schedule = get_schedule(session, app, unique_id, for_update=True)
    now = now or utcnow()
    if schedule.paused and not paused:
        schedule.next_run_at = next_run_after(schedule.cron, app.timezone, now)
    schedule.paused = paused
    schedule.updated_at = now
    session.flush()
    return schedule


def delete_schedule(session: Session, app: AppContext, unique_id: str) -> ExportSchedule:
    """Deletes the schedule; its exports stay, as ordinary exports (schedule_id "")."""
    begin_write(session)
    schedule = get_schedule(session, app, unique_id, for_update=True)
    # The foreign key does this too (ON DELETE SET NULL); said here, not relied upon.
    session.execute(
        update(_exports).where(_exports.c.schedule_id == schedule.id).values(schedule_id=None)
    )
    session.execute(delete(_schedules).where(_schedules.c.id == schedule.id))
    return schedule


def prune_runs(session: Session, schedule_id: int, keep_last: int) -> list[str]:
    """Deletes the schedule's old done runs; returns their files' keys to remove
    after the caller commits (so a failed commit never leaves a record without its file).
    """
    rows = session.execute(
        select(_exports.c.id, _exports.c.status, _exports.c.storage_key)
        .where(_exports.c.schedule_id == schedule_id, _exports.c.status.in_(DONE_STATUSES))
        .order_by(_exports.c.scheduled_for.desc(), _exports.c.id.desc())
    ).all()
    finished = [row for row in rows if row.status == status.FINISHED]
    keep = {row.id for row in finished[:keep_last]} | {row.id for row in rows[:keep_last]}
    doomed = [row for row in rows if row.id not in keep]
    if not doomed:
        return []
    session.execute(delete(_exports).where(_exports.c.id.in_([row.id for row in doomed])))
    return [row.storage_key for row in doomed if row.storage_key]


def remove_files(rt: Runtime, keys: list[str]) -> None:
    for key in keys:
        try:
            rt.store.delete(key)
        except Exception:
            log.exception("could not delete the pruned export file %s", key)


def prune_runs_of_export(rt: Runtime, export_id: int) -> None:
    """After a run of a schedule finished: applies the schedule's keep_last."""
    with rt.engine.connect() as conn:
        row = conn.execute(
            select(_schedules.c.id, _schedules.c.keep_last)
            .select_from(_exports.join(_schedules, _exports.c.schedule_id == _schedules.c.id))
            .where(_exports.c.id == export_id)
        ).first()
    if row is None:
        return
    with transaction(rt.sessions) as session:
        begin_write(session)
        keys = prune_runs(session, row.id, row.keep_last)
    remove_files(rt, keys)


def schedule_record(schedule: ExportSchedule, app: AppContext) -> dict[str, Any]:
    def moment(value: datetime | None) -> str:
        return rfc3339_in_zone(value, app.timezone) if value else ""

    return {
        "unique_id": schedule.unique_id,
        "type": schedule.resource_name,
        "cron": schedule.cron,
        "timezone": app.timezone,
        "window_days": schedule.window_days,
        "keep_last": schedule.keep_last,
        "paused": schedule.paused,
        "next_run_at": moment(schedule.next_run_at),
        "last_run_at": moment(schedule.last_run_at),
        "created_at": moment(schedule.created_at),
        "updated_at": moment(schedule.updated_at),
    }
