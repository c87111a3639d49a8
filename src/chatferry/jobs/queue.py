"""Job rows as a queue: enqueue, claim with a lease, heartbeat, finish, retry, reap."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, Row, Select, bindparam, event, func, inspect, select, update
from sqlalchemy.orm import Session

from chatferry.clock import utcnow
from chatferry.db.engine import immediate_transaction
from chatferry.db.models import Job, table_of
from chatferry.jobs.failures import backoff_seconds
from chatferry.jobs.notify import notify_jobs
from chatferry.jobs.status import JobStatus
from chatferry.obs.log import log_event

log = logging.getLogger(__name__)
_jobs = table_of(Job)
_running = _jobs.alias("running")

CRASH_MESSAGE = "the worker stopped while running it (lease expired)"


@dataclass(frozen=True)
class JobSpec:
    """A job to enqueue: what to run, for which record and app, with which budgets."""

    kind: str
    target_id: int
    app_pk: int
    ref: str  # the record's public unique_id, for the logs
    app_ref: str  # the app's public id, for the logs
    max_attempts: int
    max_crashes: int
    run_after: datetime | None = None
    resource: str = ""  # the record's type (users, rooms, comments), for the logs


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    target_id: int
    attempts: int  # runs started, this one included
    max_attempts: int  # runs that may end on an error
    owner: str
    ref: str = ""
    app_ref: str = ""
    errors: int = 0
    crashes: int = 0
    resource: str = ""  # the record's type, looked up by the worker for its log lines
    app_pk: int = 0


# Jobs added in a session, logged as "job queued" once that session commits.
_QUEUED = "chatferry_queued_jobs"


def _queued_fields(spec: JobSpec, now: datetime) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "kind": spec.kind,
        "unique_id": spec.ref,
        "app": spec.app_ref,
        "type": spec.resource or None,
    }
    if spec.run_after is not None and spec.run_after > now:
        due = spec.run_after.astimezone(UTC).isoformat(timespec="seconds")
        fields["run_after"] = due.replace("+00:00", "Z")
    return fields


@event.listens_for(Session, "after_commit")
def _log_queued_jobs(session: Session) -> None:
    """Logs the jobs the session's transaction queued, once it is committed (not a
    savepoint: its outer transaction may still roll back; not the jobs a rolled-back
    savepoint dropped)."""
    if session.in_nested_transaction():
        return
    for job, fields in session.info.pop(_QUEUED, []):
        if inspect(job).persistent:
            log_event(log, "job queued", **fields)


@event.listens_for(Session, "after_soft_rollback")
def _forget_queued_jobs(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_QUEUED, None)


def enqueue(session: Session, spec: JobSpec) -> Job:
    """Adds a job in the caller's transaction, so it exists only if the caller commits.

    On PostgreSQL it also sends NOTIFY, which idle workers everywhere receive on commit.
    """
    now = utcnow()
    job = Job(
        kind=spec.kind,
        target_id=spec.target_id,
        app_pk=spec.app_pk,
        ref=spec.ref,
        app_ref=spec.app_ref,
        status=JobStatus.QUEUED,
        attempts=0,
        errors=0,
        crashes=0,
        max_attempts=spec.max_attempts,
        max_crashes=spec.max_crashes,
        run_after=spec.run_after or now,
        last_error="",
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    notify_jobs(session, f"{spec.kind}:{job.id}")
    session.info.setdefault(_QUEUED, []).append((job, _queued_fields(spec, now)))
    return job


@dataclass(frozen=True)
class Lane:
    """Which kinds of job a claimer takes: ``kinds`` only (None: any), never ``exclude``.
    The export/import worker and the webhook sender each have theirs, so deliveries
    never wait behind exports, nor exports behind a slow receiver."""

    kinds: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()

    def where(self, table: Any) -> list[Any]:
        conditions = []
        if self.kinds is not None:
            conditions.append(table.c.kind.in_(self.kinds))
        if self.exclude:
            conditions.append(table.c.kind.not_in(self.exclude))
        return conditions


ANY_LANE = Lane()


def _running_jobs_of_app(lane: Lane) -> Any:
    """How many jobs of the candidate's app run now (anywhere) in the lane: fewer goes
    first."""
    return (
        select(func.count())
        .select_from(_running)
        .where(
            _running.c.status == JobStatus.RUNNING,
            _running.c.app_pk == _jobs.c.app_pk,
            *lane.where(_running),
        )
        .scalar_subquery()
    )


@lru_cache(maxsize=64)
def _claim_query(
    reserve: bool, postgresql: bool, lane: Lane = ANY_LANE, per_app: int = 0
) -> Select[Any]:
    """The next job due at ``:now``: apps with the fewest running jobs first, then
    oldest first. Built once per variant (idle workers run it many times a second).

    ``reserve`` (a worker's last free thread) takes only jobs of apps with nothing
    running, so one app's long jobs never hold every thread while others wait;
    ``per_app`` (if set) skips apps with that many jobs running in the lane.
    """
    busy = _running_jobs_of_app(lane)
    query = select(_jobs).where(
        _jobs.c.status == JobStatus.QUEUED,
        _jobs.c.run_after <= bindparam("now"),
        *lane.where(_jobs),
    )
    if reserve:
        query = query.where(busy == 0)
    if per_app:
        query = query.where(busy < per_app)
    query = query.order_by(busy, _jobs.c.run_after, _jobs.c.id).limit(1)
    return query.with_for_update(skip_locked=True, of=_jobs) if postgresql else query


def _job_of(row: Row[Any], owner: str, attempts: int, crashes: int) -> ClaimedJob:
    return ClaimedJob(
        id=row.id,
        kind=row.kind,
        target_id=row.target_id,
        attempts=attempts,
        max_attempts=row.max_attempts,
        owner=owner,
        ref=row.ref,
        app_ref=row.app_ref,
        errors=row.errors,
        crashes=crashes,
        app_pk=row.app_pk or 0,
    )


def claim_next(
    engine: Engine,
    owner: str,
    lease_seconds: float,
    reserve: bool = False,
    lane: Lane = ANY_LANE,
    per_app: int = 0,
) -> ClaimedJob | None:
    """Takes the next due job of the lane and leases it to ``owner``; None when
    nothing is due."""
    now = utcnow()
    query = _claim_query(reserve, engine.dialect.name == "postgresql", lane, per_app)
    with immediate_transaction(engine) as conn:
        row = conn.execute(query, {"now": now}).first()
        if row is None:
            return None
        conn.execute(
            update(_jobs)
            .where(_jobs.c.id == row.id)
            .values(
                status=JobStatus.RUNNING,
                attempts=row.attempts + 1,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                updated_at=now,
            )
        )
    return _job_of(row, owner, row.attempts + 1, row.crashes)


def extend_leases(engine: Engine, owner: str, job_ids: list[int], lease_seconds: float) -> None:
    """The heartbeat: pushes out the lease of jobs this owner is still running."""
    if not job_ids:
        return
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            update(_jobs)
            .where(
                _jobs.c.id.in_(job_ids),
                _jobs.c.lease_owner == owner,
                _jobs.c.status == JobStatus.RUNNING,
            )
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
        )


def _held(job: ClaimedJob) -> list[Any]:
    """The job is still this owner's running job."""
    return [
        _jobs.c.id == job.id,
        _jobs.c.lease_owner == job.owner,
        _jobs.c.status == JobStatus.RUNNING,
    ]


def finish(session: Session, job: ClaimedJob, status: JobStatus, error: str = "") -> bool:
    """Records the outcome, if this owner still holds the job; returns whether it did."""
    result = session.execute(
        update(_jobs)
        .where(*_held(job))
        .values(status=status, last_error=error, lease_expires_at=None, updated_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def retry_later(session: Session, job: ClaimedJob, error: str, run_after: datetime) -> bool:
    """Puts the job back in the queue after an error, due at ``run_after``, if this owner
    still holds it; the error counts against its budget. Returns whether it did."""
    result = session.execute(
        update(_jobs)
        .where(*_held(job))
        .values(
            status=JobStatus.QUEUED,
            run_after=run_after,
            errors=_jobs.c.errors + 1,
            last_error=error,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=utcnow(),
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def next_due_at(engine: Engine, lane: Lane = ANY_LANE) -> datetime | None:
    """When the lane's earliest queued job becomes due (None if nothing is queued)."""
    with engine.connect() as conn:
        due: datetime | None = conn.scalar(
            select(func.min(_jobs.c.run_after)).where(
                _jobs.c.status == JobStatus.QUEUED, *lane.where(_jobs)
            )
        )
    return due


def cancel_jobs_for(session: Session, kind: str, target_id: int) -> None:
    """Marks a target's pending or running jobs cancelled (the runner notices and stops)."""
    session.execute(
        update(_jobs)
        .where(
            _jobs.c.kind == kind,
            _jobs.c.target_id == target_id,
            _jobs.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        )
        .values(status=JobStatus.CANCELLED, updated_at=utcnow())
    )


@dataclass(frozen=True)
class ReapedJob:
    """A job whose worker vanished: queued again after ``retry_in`` seconds, or given
    up (``retry_in`` None) after its crash budget."""

    job: ClaimedJob
    retry_in: float | None


def _reap_values(
    row: Row[Any], now: datetime, max_backoff: float
) -> tuple[dict[str, Any], float | None]:
    """The update for one expired job, and when it runs again (None: given up)."""
    crashes = row.crashes + 1
    common: dict[str, Any] = {
        "crashes": crashes,
        "last_error": CRASH_MESSAGE,
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": now,
    }
    if crashes >= row.max_crashes:
        return {**common, "status": JobStatus.FAILED}, None
    retry_in = backoff_seconds(crashes, max_backoff)
    run_after = now + timedelta(seconds=retry_in)
    return {**common, "status": JobStatus.QUEUED, "run_after": run_after}, retry_in


def reap_expired(engine: Engine, max_backoff: float) -> list[ReapedJob]:
    """Re-queues running jobs whose lease ran out (their worker died), with backoff;
    a job that used up its crash budget is marked failed instead."""
    now = utcnow()
    query = select(_jobs).where(_jobs.c.status == JobStatus.RUNNING, _jobs.c.lease_expires_at < now)
    if engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    reaped: list[ReapedJob] = []
    with immediate_transaction(engine) as conn:
        for row in conn.execute(query).all():
            values, retry_in = _reap_values(row, now, max_backoff)
            conn.execute(update(_jobs).where(_jobs.c.id == row.id).values(**values))
            job = _job_of(row, row.lease_owner or "", row.attempts, row.crashes + 1)
            reaped.append(ReapedJob(job, retry_in))
        if any(r.retry_in is not None for r in reaped):
            notify_jobs(conn)
    return reaped
