"""Firing periodic export schedules, with the clock passed in: exactly once, no gap
after downtime, pausing, run now, the unique run key and keep_last pruning, on both
backends."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from chatferry.api.records import export_record
from chatferry.apps.service import AppContext, app_context
from chatferry.composition import periodic_tasks
from chatferry.db.engine import transaction
from chatferry.db.models import App, Export, ExportSchedule, Job, table_of
from chatferry.exports.job import ExportJobHandler
from chatferry.exports.status import ExportStatus as status
from chatferry.jobs import queue
from chatferry.jobs.periodic import PeriodicRunner
from chatferry.jobs.status import JobStatus
from chatferry.runtime import Runtime
from chatferry.schedules import service
from chatferry.schedules.requests import ScheduleChange, ScheduleRequest
from chatferry.schedules.scheduler import fire, fire_due, on_export_finished, run_now
from support.apps import create_test_app
from support.exports import stored_files
from support.rows import add_users
from support.waiting import wait_for

_schedules = table_of(ExportSchedule)

# A moment well inside a day in Asia/Jakarta (UTC+7): 2026-05-10 09:00 local.
T0 = datetime(2026, 5, 10, 2, 0, tzinfo=UTC)


def context(rt: Runtime, app_id: str) -> AppContext:
    with transaction(rt.sessions) as session:
        app = session.scalar(select(App).where(App.app_id == app_id))
        assert app is not None
        return app_context(app, rt.settings)


def make_schedule(
    rt: Runtime, now: datetime = T0, timezone: str = "Asia/Jakarta", **body: Any
) -> tuple[AppContext, ExportSchedule]:
    creds = create_test_app(rt, timezone=timezone)
    app = context(rt, creds.app_id)
    fields = {"type": "users", "cron": "0 2 * * *", "window_days": 3, "keep_last": 5, **body}
    request = ScheduleRequest.model_validate(fields)
    with transaction(rt.sessions) as session:
        schedule = service.create_schedule(session, app, request, now=now)
    return app, schedule


def reload(rt: Runtime, schedule_id: int) -> ExportSchedule:
    with transaction(rt.sessions) as session:
        schedule = session.get(ExportSchedule, schedule_id)
        assert schedule is not None
        return schedule


def runs_of(rt: Runtime, schedule_id: int) -> list[Export]:
    with transaction(rt.sessions) as session:
        query = select(Export).where(Export.schedule_id == schedule_id).order_by(Export.id)
        return list(session.scalars(query))


def windows(runs: list[Export]) -> list[tuple[date, date]]:
    return [(r.start_date, r.end_date) for r in runs]


def run_jobs(rt: Runtime) -> int:
    """Runs every due job to the end in this thread (no worker threads involved)."""
    handler = ExportJobHandler(on_finished=on_export_finished)
    done = 0
    while (job := queue.claim_next(rt.engine, "test-runner", 30)) is not None:
        handler.run(rt, job)
        with transaction(rt.sessions) as session:
            queue.finish(session, job, JobStatus.DONE)
        done += 1
    return done


def fail_runs(rt: Runtime, runs: list[Export]) -> None:
    """Fails the runs as their jobs would (the worker's failure path)."""
    with transaction(rt.sessions) as session:
        for run in runs:
            queue.cancel_jobs_for(session, "export", run.id)
            session.execute(
                update(table_of(Export))
                .where(table_of(Export).c.id == run.id)
                .values(status=status.FAILED, error_message="boom")
            )


def test_a_new_schedule_next_runs_at_its_first_time_in_the_app_timezone(
    runtime: Runtime,
) -> None:
    _, schedule = make_schedule(runtime)
    # 02:00 in Jakarta is 19:00 UTC the day before; T0 is 09:00 local, so: tomorrow.
    assert schedule.next_run_at == datetime(2026, 5, 10, 19, 0, tzinfo=UTC)
    assert schedule.paused is False and schedule.last_run_at is None


def test_nothing_fires_before_the_time(runtime: Runtime) -> None:
    _, schedule = make_schedule(runtime)
    assert fire_due(runtime, now=schedule.next_run_at - timedelta(microseconds=1)) == []
    assert runs_of(runtime, schedule.id) == []


def test_a_due_schedule_fires_one_export_of_the_days_before_the_run(runtime: Runtime) -> None:
    app, schedule = make_schedule(runtime)
    due = schedule.next_run_at
    now = due + timedelta(seconds=1)
    created = fire_due(runtime, now=now)
    assert len(created) == 1
    [run] = runs_of(runtime, schedule.id)
    assert run.status == status.STARTED
    assert run.resource_name == "users"
    assert run.scheduled_for == due
    # The run's day is 2026-05-11 in Jakarta: the 3 whole days before it.
    assert (run.start_date, run.end_date) == (date(2026, 5, 8), date(2026, 5, 10))
    record = export_record(run, app, "")
    assert record["schedule_id"] == schedule.unique_id
    assert record["run_at"] == ""
    after = reload(runtime, schedule.id)
    assert after.next_run_at == due + timedelta(days=1)
    assert after.last_run_at == due
    with transaction(runtime.sessions) as session:
        jobs = session.scalars(select(Job).where(Job.target_id == run.id)).all()
    assert [(j.kind, j.status) for j in jobs] == [("export", JobStatus.QUEUED)]
    # The same moment again, and a little later: nothing new.
    assert fire_due(runtime, now=now) == []
    assert fire_due(runtime, now=now + timedelta(hours=1)) == []
    assert len(runs_of(runtime, schedule.id)) == 1


def test_each_run_fires_once_day_after_day(runtime: Runtime) -> None:
    _, schedule = make_schedule(runtime)
    first = schedule.next_run_at
    for day in range(4):
        fire_due(runtime, now=first + timedelta(days=day, minutes=1))
        fire_due(runtime, now=first + timedelta(days=day, minutes=2))
    runs = runs_of(runtime, schedule.id)
    assert [r.scheduled_for for r in runs] == [first + timedelta(days=d) for d in range(4)]
    # The first run exports its 3-day window; each later one the day since: no overlap.
    assert windows(runs) == [
        (date(2026, 5, 8), date(2026, 5, 10)),
        (date(2026, 5, 11), date(2026, 5, 11)),
        (date(2026, 5, 12), date(2026, 5, 12)),
        (date(2026, 5, 13), date(2026, 5, 13)),
    ]


def test_a_scheduler_that_was_down_covers_every_missed_day_once(runtime: Runtime) -> None:
    _, schedule = make_schedule(runtime)
    first = schedule.next_run_at
    fire_due(runtime, now=first)  # May 11 in Jakarta: May 8 to 10
    now = first + timedelta(days=5, hours=3)  # down: the runs of May 12 to 16 missed
    created = fire_due(runtime, now=now)
    latest_missed = first + timedelta(days=5)
    assert {r.scheduled_for for r in created} == {latest_missed}  # one run, fired once
    # From the day after the first run's window (May 11) to the day before this run's
    # day (May 15), in exports of at most window_days (3) days.
    assert windows(created) == [
        (date(2026, 5, 11), date(2026, 5, 13)),
        (date(2026, 5, 14), date(2026, 5, 15)),
    ]
    assert reload(runtime, schedule.id).next_run_at == latest_missed + timedelta(days=1)
    assert fire_due(runtime, now=now + timedelta(minutes=1)) == []


def test_a_first_run_after_downtime_exports_its_own_window(runtime: Runtime) -> None:
    _, schedule = make_schedule(runtime)
    now = schedule.next_run_at + timedelta(days=5, hours=3)
    created = fire_due(runtime, now=now)
    # Coverage starts with the first run that fires: the 3 days before its day, May 16.
    assert windows(created) == [(date(2026, 5, 13), date(2026, 5, 15))]


def test_three_days_of_downtime_on_a_daily_one_day_schedule_cover_three_days(
    runtime: Runtime,
) -> None:
    _, schedule = make_schedule(runtime, window_days=1, timezone="UTC")
    first = schedule.next_run_at  # 2026-05-11 02:00 UTC: covers May 10
    assert len(fire_due(runtime, now=first)) == 1
    assert run_jobs(runtime) == 1
    assert reload(runtime, schedule.id).covered_through == date(2026, 5, 10)
    # Down from May 11 to May 14 02:30: the runs of May 12, 13 and 14 were missed.
    back = first + timedelta(days=3, minutes=30)
    created = fire_due(runtime, now=back)
    assert windows(created) == [(date(2026, 5, d), date(2026, 5, d)) for d in (11, 12, 13)]
    assert run_jobs(runtime) == 3
    assert reload(runtime, schedule.id).covered_through == date(2026, 5, 13)
    # Nothing is covered twice: every day from May 10 on is in exactly one export.
    days = [r.start_date for r in runs_of(runtime, schedule.id)]
    assert days == [date(2026, 5, d) for d in (10, 11, 12, 13)]
    assert fire_due(runtime, now=back + timedelta(hours=1)) == []


def _change(
    rt: Runtime, app: AppContext, schedule: ExportSchedule, now: datetime, **body: Any
) -> ExportSchedule:
    with transaction(rt.sessions) as session:
        change = ScheduleChange.model_validate(body)
        return service.change_schedule(session, app, schedule.unique_id, change, now=now)


def test_a_paused_schedule_does_not_fire_and_its_next_run_covers_the_pause(
    runtime: Runtime,
) -> None:
    app, schedule = make_schedule(runtime)
    first = schedule.next_run_at
    fire_due(runtime, now=first)  # May 8 to 10
    _change(runtime, app, schedule, first, paused=True)
    assert fire_due(runtime, now=first + timedelta(days=3)) == []
    resume_at = first + timedelta(days=3, hours=1)
    resumed = _change(runtime, app, schedule, resume_at, paused=False)
    assert resumed.next_run_at == first + timedelta(days=4)
    assert fire_due(runtime, now=resume_at) == []
    assert len(runs_of(runtime, schedule.id)) == 1
    # The first run after the pause leaves no gap: May 11 to the day before May 15.
    created = fire_due(runtime, now=resumed.next_run_at)
    assert windows(created) == [
        (date(2026, 5, 11), date(2026, 5, 13)),
        (date(2026, 5, 14), date(2026, 5, 14)),
    ]


def test_a_new_cron_moves_the_next_run(runtime: Runtime) -> None:
    app, schedule = make_schedule(runtime)
    changed = _change(runtime, app, schedule, T0, cron="30 5 * * *", name="early", keep_last=9)
    # T0 is 09:00 in Jakarta: 05:30 local comes tomorrow, 22:30 UTC today.
    assert changed.next_run_at == datetime(2026, 5, 10, 22, 30, tzinfo=UTC)
    assert (changed.name, changed.keep_last, changed.window_days) == ("early", 9, 3)


def test_run_now_exports_the_uncovered_days_and_keeps_the_next_run(runtime: Runtime) -> None:
    app, schedule = make_schedule(runtime, window_days=2)
    now = T0 + timedelta(hours=1)  # May 10, 10:00 in Jakarta
    with transaction(runtime.sessions) as session:
        ran, fired = run_now(session, runtime.settings, app, schedule.unique_id, now=now)
    # A first run exports the window_days (2) days before its day (May 10).
    assert windows(fired.exports) == [(date(2026, 5, 8), date(2026, 5, 9))]
    assert ran.next_run_at == schedule.next_run_at
    with transaction(runtime.sessions) as session:
        _, again = run_now(session, runtime.settings, app, schedule.unique_id, now=now)
    assert again.exports == []  # nothing left to cover
    # The regular run then covers the rest, not May 9 again.
    assert windows(fire_due(runtime, now=schedule.next_run_at)) == [
        (date(2026, 5, 10), date(2026, 5, 10))
    ]


def test_fire_loses_the_compare_and_set_when_the_time_moved_on(runtime: Runtime) -> None:
    _, schedule = make_schedule(runtime)
    due = schedule.next_run_at
    with transaction(runtime.sessions) as session:
        assert fire(session, runtime.settings, schedule.id, due, due) is not None
    # A second scheduler that read the same next_run_at before the first committed.
    with transaction(runtime.sessions) as session:
        assert fire(session, runtime.settings, schedule.id, due, due) is None
    assert len(runs_of(runtime, schedule.id)) == 1


def test_the_unique_schedule_time_key_stops_a_run_firing_twice(runtime: Runtime) -> None:
    _, schedule = make_schedule(runtime)
    due = schedule.next_run_at
    fire_due(runtime, now=due)
    # Put the schedule back as if the run had not fired (a restored backup, a bad edit).
    with runtime.engine.begin() as conn:
        conn.execute(
            update(_schedules).where(_schedules.c.id == schedule.id).values(next_run_at=due)
        )
    assert fire_due(runtime, now=due + timedelta(seconds=5)) == []
    assert len(runs_of(runtime, schedule.id)) == 1
    assert reload(runtime, schedule.id).next_run_at == due + timedelta(days=1)


@pytest.mark.parametrize("round_", range(5))
def test_three_schedulers_racing_fire_each_run_exactly_once(runtime: Runtime, round_: int) -> None:
    _, schedule = make_schedule(runtime)
    due = schedule.next_run_at
    barrier = threading.Barrier(3)
    results: list[object] = []
    errors: list[BaseException] = []

    def scheduler() -> None:
        try:
            barrier.wait(10)
            with transaction(runtime.sessions) as session:
                fired = fire(
                    session, runtime.settings, schedule.id, due, due + timedelta(seconds=1)
                )
            results.append(fired)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sum(r is not None for r in results) == 1
    assert len(runs_of(runtime, schedule.id)) == 1


def test_three_scheduler_threads_over_many_due_schedules_fire_each_once(
    runtime: Runtime,
) -> None:
    schedules = [make_schedule(runtime)[1] for _ in range(6)]
    now = max(s.next_run_at for s in schedules) + timedelta(seconds=1)
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def scheduler() -> None:
        try:
            barrier.wait(10)
            for _ in range(3):
                fire_due(runtime, now=now)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert [len(runs_of(runtime, s.id)) for s in schedules] == [1] * 6


def test_keep_last_deletes_older_runs_and_their_files(runtime: Runtime) -> None:
    app, schedule = make_schedule(runtime, keep_last=2, window_days=30)
    add_users(runtime, app.app_id, [T0 + timedelta(days=d) for d in (1, 2, 3)])
    first = schedule.next_run_at
    for day in range(4):
        assert len(fire_due(runtime, now=first + timedelta(days=day, seconds=1))) == 1
        assert run_jobs(runtime) == 1
    runs = runs_of(runtime, schedule.id)
    assert [r.status for r in runs] == [status.FINISHED, status.FINISHED]
    assert [r.scheduled_for for r in runs] == [first + timedelta(days=d) for d in (2, 3)]
    kept_keys = sorted(r.storage_key for r in runs)
    files = stored_files(runtime)
    assert len(files) == 2
    assert sorted(f.name for f in files) == sorted(k.rsplit("/", 1)[1] for k in kept_keys)
    # Each later run exported its one day: the user created that day.
    assert [r.total_rows for r in runs] == [1, 1]
    # Pruned runs still count as covered.
    assert reload(runtime, schedule.id).covered_through == date(2026, 5, 13)


def test_failed_runs_never_push_out_good_backups_and_their_days_are_retried(
    runtime: Runtime,
) -> None:
    _, schedule = make_schedule(runtime, keep_last=1)
    first = schedule.next_run_at
    fire_due(runtime, now=first)
    run_jobs(runtime)
    [good] = runs_of(runtime, schedule.id)
    assert good.status == status.FINISHED
    fail_runs(runtime, fire_due(runtime, now=first + timedelta(days=1)))
    # The next run covers the failed day again, and its own.
    retried = fire_due(runtime, now=first + timedelta(days=2))
    assert windows(retried) == [(date(2026, 5, 11), date(2026, 5, 12))]
    fail_runs(runtime, retried)
    runs = runs_of(runtime, schedule.id)
    assert (runs[0].id, runs[0].status) == (good.id, status.FINISHED)
    assert [r.status for r in runs[1:]] == [status.FAILED] * (len(runs) - 1)
    final = fire_due(runtime, now=first + timedelta(days=3))
    assert windows(final) == [(date(2026, 5, 11), date(2026, 5, 13))]
    assert runs_of(runtime, schedule.id)[0].id == good.id
    assert len(stored_files(runtime)) == 1


def test_deleting_a_schedule_keeps_its_exports_as_ordinary_ones(runtime: Runtime) -> None:
    app, schedule = make_schedule(runtime)
    fire_due(runtime, now=schedule.next_run_at)
    [run] = runs_of(runtime, schedule.id)
    with transaction(runtime.sessions) as session:
        service.delete_schedule(session, app, schedule.unique_id)
    with transaction(runtime.sessions) as session:
        kept = session.get(Export, run.id)
        assert kept is not None
        assert kept.schedule_id is None
        assert export_record(kept, app, "")["schedule_id"] == ""
        assert session.get(ExportSchedule, schedule.id) is None


def test_the_scheduler_task_fires_a_due_schedule(runtime: Runtime) -> None:
    _, schedule = make_schedule(runtime, now=datetime.now(UTC) - timedelta(days=2))
    tasks = PeriodicRunner([t for t in periodic_tasks(runtime) if t.name == "scheduler"])
    tasks.start()
    try:
        wait_for(lambda: runs_of(runtime, schedule.id), timeout=10)
    finally:
        tasks.stop()
    assert {r.scheduled_for for r in runs_of(runtime, schedule.id)} == {
        reload(runtime, schedule.id).last_run_at
    }
    assert reload(runtime, schedule.id).next_run_at > datetime.now(UTC)
