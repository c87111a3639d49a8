"""Fires due schedules, exactly once per run however many schedulers run.

Each scheduler (a periodic task in ``chatferry serve`` and ``chatferry worker``) reads
the due schedules and fires each with a compare-and-set::

    UPDATE export_schedules SET next_run_at = <next after now>
    WHERE id = ? AND next_run_at = <the value read> AND NOT paused

Only the scheduler whose UPDATE changed the row creates the run's exports and jobs, in
the same transaction; the others see 0 rows and move on. The exports' unique
(schedule_id, scheduled_for, start_date) key backs this up. A run covers every day since
the last covered one (see coverage.py), so a scheduler that was down fires one run for
the latest missed time, and that run exports every day it missed, each exactly once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatferry.apps.service import AppContext, app_context
from chatferry.clock import utcnow
from chatferry.db.engine import begin_write, read_connection, transaction
from chatferry.db.models import App, Export, ExportSchedule, table_of
from chatferry.db.outage import log_failure
from chatferry.exports.service import export_job, new_export
from chatferry.exports.status import ExportStatus
from chatferry.jobs.queue import enqueue
from chatferry.obs.log import log_event
from chatferry.resources import Resource
from chatferry.runtime import Runtime
from chatferry.schedules import coverage
from chatferry.schedules.cron import latest_run_at_or_before, next_run_after
from chatferry.schedules.service import get_schedule, prune_runs, remove_files, runs_of
from chatferry.settings import Settings

log = logging.getLogger(__name__)
_schedules = table_of(ExportSchedule)
_exports = table_of(Export)
_SCHEDULE_ID = select(_exports.c.schedule_id).where(_exports.c.id == bindparam("export_id"))

DUE_BATCH = 100
# Runs that hold their days: in flight or done well.
_HOLDING = (ExportStatus.SCHEDULED, ExportStatus.STARTED, ExportStatus.FINISHED)


@dataclass
class Fired:
    exports: list[Export]
    pruned_keys: list[str] = field(default_factory=list)


def due_schedules(
    session: Session, now: datetime, limit: int = DUE_BATCH
) -> list[tuple[int, datetime]]:
    """(id, next_run_at) of schedules due at ``now``, earliest first."""
    rows = session.execute(
        select(_schedules.c.id, _schedules.c.next_run_at)
        .where(_schedules.c.paused.is_(False), _schedules.c.next_run_at <= now)
        .order_by(_schedules.c.next_run_at, _schedules.c.id)
        .limit(limit)
    ).all()
    return [(row.id, row.next_run_at) for row in rows]


def _run_day(moment: datetime, timezone: str) -> date:
    return moment.astimezone(ZoneInfo(timezone)).date()


def run_window(run_for: datetime, timezone: str, window_days: int) -> coverage.DayRange:
    """A first run's window: the ``window_days`` whole days before the run's local day."""
    return coverage.first_window(_run_day(run_for, timezone), window_days)


def plan_run(
    session: Session, schedule: ExportSchedule, run_for: datetime, timezone: str
) -> list[coverage.DayRange]:
    """The windows the run at ``run_for`` exports; sets the schedule's first day on
    its first run."""
    run_day = _run_day(run_for, timezone)
    if schedule.coverage_start is None:
        schedule.coverage_start = run_window(run_for, timezone, schedule.window_days)[0]
    lower = schedule.coverage_start
    if schedule.covered_through is not None:
        lower = max(lower, schedule.covered_through + coverage.DAY)
    taken = [(row.start_date, row.end_date) for row in runs_of(session, schedule.id, _HOLDING)]
    return coverage.windows_to_export(lower, run_day, schedule.window_days, taken)


def _add_runs(
    session: Session,
    settings: Settings,
    ctx: AppContext,
    schedule: ExportSchedule,
    run_for: datetime,
    now: datetime,
) -> list[Export]:
    """Creates the run's exports and their jobs; none if every day is covered."""
    created: list[Export] = []
    for start, end in plan_run(session, schedule, run_for, ctx.timezone):
        export = new_export(
            ctx,
            Resource(schedule.resource_name),
            start,
            end,
            now,
            schedule_id=schedule.id,
            scheduled_for=run_for,
        )
        session.add(export)
        session.flush()
        enqueue(session, export_job(settings, ctx, export))
        created.append(export)
    return created


def fire(
    session: Session,
    settings: Settings,
    schedule_id: int,
    expected_next_run_at: datetime,
    now: datetime,
) -> Fired | None:
    """Fires the run due at ``expected_next_run_at`` if this caller wins the
    compare-and-set; returns None if another scheduler did (or it is not due).

    Runs in the caller's transaction, which must commit for the run to exist; the caller
    then removes ``pruned_keys`` from the store.
    """
    begin_write(session)
    schedule = session.get(ExportSchedule, schedule_id, populate_existing=True)
    if (
        schedule is None
        or schedule.paused
        or schedule.next_run_at != expected_next_run_at
        or expected_next_run_at > now
    ):
        return None
    app = session.get(App, schedule.app_pk)
    assert app is not None
    ctx = app_context(app, settings)
    # After downtime: one run, for the latest time missed, and on from the next after now.
    latest = latest_run_at_or_before(schedule.cron, ctx.timezone, now)
    run_for = max(expected_next_run_at, latest) if latest else expected_next_run_at
    won = session.execute(
        update(_schedules)
        .where(
            _schedules.c.id == schedule_id,
            _schedules.c.next_run_at == expected_next_run_at,
            _schedules.c.paused.is_(False),
        )
        .values(
            next_run_at=next_run_after(schedule.cron, ctx.timezone, now),
            last_run_at=run_for,
            updated_at=now,
        )
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.refresh(schedule)
    return _fire_runs(session, settings, ctx, schedule, run_for, now)


def _fire_runs(
    session: Session,
    settings: Settings,
    ctx: AppContext,
    schedule: ExportSchedule,
    run_for: datetime,
    now: datetime,
) -> Fired | None:
    try:
        with session.begin_nested():
            exports = _add_runs(session, settings, ctx, schedule, run_for, now)
    except IntegrityError:
        log.warning("schedule %s: the run for %s exists already", schedule.unique_id, run_for)
        return None
    log_event(
        log,
        "schedule fired",
        schedule=schedule.unique_id,
        app=ctx.app_id,
        run_for=run_for.isoformat(),
        exports=len(exports),
        windows=",".join(f"{e.start_date}..{e.end_date}" for e in exports) or None,
    )
    return Fired(exports, prune_runs(session, schedule.id, schedule.keep_last))


def fire_due(rt: Runtime, now: datetime | None = None) -> list[Export]:
    """One scheduler pass: fires every schedule due at ``now``; returns the new exports."""
    now = now or utcnow()
    with transaction(rt.sessions) as session:
        due = due_schedules(session, now)
    created: list[Export] = []
    for schedule_id, expected in due:
        try:
            with transaction(rt.sessions) as session:
                fired = fire(session, rt.settings, schedule_id, expected, now)
        except Exception as exc:
            log_failure(log, f"could not fire schedule {schedule_id}; will retry", exc)
            continue
        if fired is not None:
            created.extend(fired.exports)
            remove_files(rt, fired.pruned_keys)
    if created:
        rt.job_wakeup.set()
    return created


def run_now(
    session: Session,
    settings: Settings,
    app: AppContext,
    unique_id: str,
    now: datetime | None = None,
) -> tuple[ExportSchedule, Fired]:
    """Fires the schedule at once (paused or not): every day not covered yet up to
    yesterday is exported. Its regular next run stays as it was."""
    begin_write(session)
    schedule = get_schedule(session, app, unique_id, for_update=True)
    now = now or utcnow()
    exports = _add_runs(session, settings, app, schedule, now, now)
    schedule.last_run_at = now
    schedule.updated_at = now
    log_event(
        log, "schedule run now", schedule=schedule.unique_id, app=app.app_id, exports=len(exports)
    )
    return schedule, Fired(exports, prune_runs(session, schedule.id, schedule.keep_last))


def on_export_finished(rt: Runtime, export_id: int) -> None:
    """The finished-export hook: if the export is a schedule's run, moves the
    schedule's covered day on and applies its keep_last."""
    if not _is_schedule_run(rt, export_id):
        return
    with transaction(rt.sessions) as session:
        begin_write(session)
        schedule = _schedule_of_export(session, export_id)
        if schedule is None:
            return
        _advance_coverage(session, schedule)
        keys = prune_runs(session, schedule.id, schedule.keep_last)
    remove_files(rt, keys)


def _is_schedule_run(rt: Runtime, export_id: int) -> bool:
    """Whether the export has a schedule, read without SQLite's write lock: most exports
    (every one a backup makes) have none, and taking the lock for each made them wait
    on the API's writes. An export's schedule is set when it is created and only ever
    cleared (the schedule deleted), so a None read here stays None."""
    with read_connection(rt.engine) as conn:
        return conn.execute(_SCHEDULE_ID, {"export_id": export_id}).scalar() is not None


def _schedule_of_export(session: Session, export_id: int) -> ExportSchedule | None:
    schedule_id = session.scalar(select(_exports.c.schedule_id).where(_exports.c.id == export_id))
    if schedule_id is None:
        return None
    query = select(ExportSchedule).where(ExportSchedule.id == schedule_id).with_for_update()
    return session.scalar(query)


def _advance_coverage(session: Session, schedule: ExportSchedule) -> None:
    """Moves ``covered_through`` on over the finished runs that now join up with it
    (the days already covered count even if their runs were pruned since)."""
    if schedule.coverage_start is None:
        return
    finished = [
        (row.start_date, row.end_date)
        for row in runs_of(session, schedule.id, (ExportStatus.FINISHED,))
    ]
    if schedule.covered_through is not None:
        finished.append((schedule.coverage_start, schedule.covered_through))
    through = coverage.covered_through(schedule.coverage_start, finished)
    if through is not None:
        schedule.covered_through = through
