"""Periodic export schedules: create, list, fetch, change, delete, prune old runs.

A schedule runs ``cron`` in its app's timezone. Its runs leave no gap: each run exports
every day from the last covered one (or, for its first run, the ``window_days`` days
before that run's day) up to the day before the run's day, in exports of at most
``window_days`` days (see coverage.py and scheduler.py). After a run finishes, older runs
are deleted with their files so that the newest ``keep_last`` finished exports remain; a
failed or cancelled run is kept only while it is among the newest ``keep_last`` runs.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from chatferry.apps.service import AppContext
from chatferry.clock import utcnow
from chatferry.db.engine import begin_write
from chatferry.db.models import Export, ExportSchedule, table_of
from chatferry.db.types import is_lookup_key
from chatferry.errors import NotFound, show
from chatferry.exports.status import DONE, ExportStatus
from chatferry.runtime import Runtime
from chatferry.schedules.cron import next_run_after
from chatferry.schedules.requests import ScheduleChange, ScheduleRequest

log = logging.getLogger(__name__)

_exports = table_of(Export)
_schedules = table_of(ExportSchedule)


def create_schedule(
    session: Session, app: AppContext, request: ScheduleRequest, now: datetime | None = None
) -> ExportSchedule:
    now = now or utcnow()
    schedule = ExportSchedule(
        unique_id=str(uuid.uuid4()),
        app_pk=app.pk,
        resource_name=request.type,
        name=request.name,
        cron=request.cron,
        window_days=request.window_days,
        keep_last=request.keep_last,
        paused=request.paused,
        next_run_at=next_run_after(request.cron, app.timezone, now),
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
    query = select(ExportSchedule).where(
        ExportSchedule.unique_id == unique_id, ExportSchedule.app_pk == app.pk
    )
    found = query.with_for_update() if for_update else query
    schedule = session.scalar(found) if is_lookup_key(unique_id) else None
    if schedule is None:
        raise NotFound(f"no export schedule with unique_id {show(unique_id)}")
    return schedule


def change_schedule(
    session: Session,
    app: AppContext,
    unique_id: str,
    change: ScheduleChange,
    now: datetime | None = None,
) -> ExportSchedule:
    """Applies a PATCH. A new cron, or a resume, sets the next run to the cron's first
    time after now; the days missed meanwhile are covered by that run (no gap)."""
    changes = change.changes()
    begin_write(session)
    schedule = get_schedule(session, app, unique_id, for_update=True)
    now = now or utcnow()
    resumed = schedule.paused and changes.get("paused") is False
    for name, value in changes.items():
        setattr(schedule, name, value)
    if resumed or "cron" in changes:
        schedule.next_run_at = next_run_after(schedule.cron, app.timezone, now)
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
        .where(_exports.c.schedule_id == schedule_id, _exports.c.status.in_(DONE))
        .order_by(
            _exports.c.scheduled_for.desc(), _exports.c.start_date.desc(), _exports.c.id.desc()
        )
    ).all()
    finished = [row for row in rows if row.status == ExportStatus.FINISHED]
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


def runs_of(session: Session, schedule_id: int, statuses: tuple[str, ...]) -> list[Any]:
    """The (start_date, end_date) of the schedule's runs in these statuses."""
    return list(
        session.execute(
            select(_exports.c.start_date, _exports.c.end_date).where(
                _exports.c.schedule_id == schedule_id, _exports.c.status.in_(statuses)
            )
        ).all()
    )
