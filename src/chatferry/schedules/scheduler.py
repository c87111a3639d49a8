"""Fires due schedules, exactly once per run however many schedulers run.

Each scheduler (a thread in ``chatferry serve`` and in ``chatferry worker``) reads the
due schedules and fires each with a compare-and-set::

    UPDATE export_schedules SET next_run_at = <next after now>
    WHERE id = ? AND next_run_at = <the value read> AND NOT paused

Only the scheduler whose UPDATE changed the row creates the run's export and job, in
the same transaction; the others see 0 rows and move on. The export's unique
(schedule_id, scheduled_for) key backs this up: a run that somehow fires again fails to
insert and is skipped. A scheduler that was down fires ONE run for the latest missed
time, then continues from the first time after now (no burst of missed runs).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatferry.apps.service import app_context
from chatferry.clock import utcnow
from chatferry.db.engine import begin_write, transaction
from chatferry.db.models import App, Export, ExportSchedule, table_of
from chatferry.exports.service import JOB_KIND, new_export
from chatferry.jobs.queue import enqueue
from chatferry.runtime import Runtime
from chatferry.schedules.cron import latest_run_at_or_before, next_run_after
from chatferry.schedules.service import prune_runs, remove_files, run_window
from chatferry.settings import Settings

log = logging.getLogger(__name__)
_schedules = table_of(ExportSchedule)

DUE_BATCH = 100
MAX_INTERVAL_SECONDS = 1.0


@dataclass
class Fired:
    export: Export
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
    next_at = next_run_after(schedule.cron, ctx.timezone, now)
    won = session.execute(
        update(_schedules)
        .where(
            _schedules.c.id == schedule_id,
            _schedules.c.next_run_at == expected_next_run_at,
            _schedules.c.paused.is_(False),
        )
        .values(next_run_at=next_at, last_run_at=run_for, updated_at=now)
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        return None
    start, end = run_window(run_for, ctx.timezone, schedule.window_days)
    export = new_export(
        ctx,
        schedule.resource_name,
        start,
        end,
        now,
        schedule_id=schedule.id,
        scheduled_for=run_for,
    )
    try:
        with session.begin_nested():
            session.add(export)
            session.flush()
    except IntegrityError:
        log.warning("schedule %s: the run for %s exists already", schedule.unique_id, run_for)
        return None
    enqueue(session, JOB_KIND, export.id, max_attempts=settings.job_max_attempts)
    return Fired(export, prune_runs(session, schedule.id, schedule.keep_last))


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
        except Exception:
            log.exception("could not fire schedule %s; will retry", schedule_id)
            continue
        if fired is not None:
            created.append(fired.export)
            remove_files(rt, fired.pruned_keys)
    if created:
        rt.job_wakeup.set()
    return created


class Scheduler:
    """A thread that runs ``fire_due`` about every second until stopped."""

    def __init__(self, rt: Runtime, interval: float | None = None) -> None:
        self.rt = rt
        self.interval = interval or min(MAX_INTERVAL_SECONDS, rt.settings.job_poll_seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="chatferry-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                fire_due(self.rt)
            except Exception:
                log.exception("the scheduler pass failed; retrying")
            self._stop.wait(self.interval)
