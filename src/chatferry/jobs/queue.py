"""Job rows as a queue: enqueue, claim with a lease, heartbeat, finish, reap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from chatferry.clock import utcnow
from chatferry.db.engine import immediate_transaction
from chatferry.db.models import Job, table_of
from chatferry.jobs.notify import notify_jobs

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"

_jobs = table_of(Job)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    target_id: int
    attempts: int
    max_attempts: int
    owner: str


def enqueue(
    session: Session,
    kind: str,
    target_id: int,
    max_attempts: int,
    run_after: datetime | None = None,
) -> Job:
    """Adds a job in the caller's transaction, so it exists only if the caller commits.

    On PostgreSQL it also sends NOTIFY, which idle workers everywhere receive on commit.
    """
    now = utcnow()
    job = Job(
        kind=kind,
        target_id=target_id,
        status=QUEUED,
        attempts=0,
        max_attempts=max_attempts,
        run_after=run_after or now,
        last_error="",
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    session.flush()
    notify_jobs(session, f"{kind}:{job.id}")
    return job


def claim_next(engine: Engine, owner: str, lease_seconds: float) -> ClaimedJob | None:
    """Takes the oldest due job and leases it to ``owner``; None when nothing is due."""
    now = utcnow()
    query = (
        select(_jobs.c.id, _jobs.c.kind, _jobs.c.target_id, _jobs.c.attempts, _jobs.c.max_attempts)
        .where(_jobs.c.status == QUEUED, _jobs.c.run_after <= now)
        .order_by(_jobs.c.run_after, _jobs.c.id)
        .limit(1)
    )
    if engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    with immediate_transaction(engine) as conn:
        row = conn.execute(query).first()
        if row is None:
            return None
        conn.execute(
            update(_jobs)
            .where(_jobs.c.id == row.id)
            .values(
                status=RUNNING,
                attempts=row.attempts + 1,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                updated_at=now,
            )
        )
    return ClaimedJob(row.id, row.kind, row.target_id, row.attempts + 1, row.max_attempts, owner)


def extend_leases(engine: Engine, owner: str, job_ids: list[int], lease_seconds: float) -> None:
    """The heartbeat: pushes out the lease of jobs this owner is still running."""
    if not job_ids:
        return
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            update(_jobs)
            .where(_jobs.c.id.in_(job_ids), _jobs.c.lease_owner == owner, _jobs.c.status == RUNNING)
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
        )


def finish(session: Session, job: ClaimedJob, status: str, error: str = "") -> bool:
    """Records the outcome, if this owner still holds the job; returns whether it did."""
    result = session.execute(
        update(_jobs)
        .where(_jobs.c.id == job.id, _jobs.c.lease_owner == job.owner, _jobs.c.status == RUNNING)
        .values(status=status, last_error=error, lease_expires_at=None, updated_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def retry_later(session: Session, job: ClaimedJob, error: str, run_after: datetime) -> bool:
    """Puts the job back in the queue, due at ``run_after``, if this owner still holds
    it; its attempts stay counted. Returns whether it did."""
    result = session.execute(
        update(_jobs)
        .where(_jobs.c.id == job.id, _jobs.c.lease_owner == job.owner, _jobs.c.status == RUNNING)
        .values(
            status=QUEUED,
            run_after=run_after,
            last_error=error,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=utcnow(),
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def next_due_at(engine: Engine) -> datetime | None:
    """When the earliest queued job becomes due (None if nothing is queued)."""
    with engine.connect() as conn:
        due: datetime | None = conn.scalar(
            select(func.min(_jobs.c.run_after)).where(_jobs.c.status == QUEUED)
        )
    return due


def cancel_jobs_for(session: Session, kind: str, target_id: int) -> None:
    """Marks a target's pending or running jobs cancelled (the runner notices and stops)."""
    session.execute(
        update(_jobs)
        .where(
            _jobs.c.kind == kind,
            _jobs.c.target_id == target_id,
            _jobs.c.status.in_([QUEUED, RUNNING]),
        )
        .values(status=CANCELLED, updated_at=utcnow())
    )


def reap_expired(engine: Engine) -> list[ClaimedJob]:
    """Re-queues running jobs whose lease ran out (their worker died).

    Jobs that already used all their attempts are marked failed instead and returned,
    so the caller can record the failure on the job's target.
    """
    now = utcnow()
    query = select(
        _jobs.c.id,
        _jobs.c.kind,
        _jobs.c.target_id,
        _jobs.c.attempts,
        _jobs.c.max_attempts,
        _jobs.c.lease_owner,
    ).where(_jobs.c.status == RUNNING, _jobs.c.lease_expires_at < now)
    if engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    abandoned: list[ClaimedJob] = []
    with immediate_transaction(engine) as conn:
        rows = conn.execute(query).all()
        for row in rows:
            values: dict[str, Any]
            if row.attempts >= row.max_attempts:
                values = {"status": FAILED, "last_error": "lease expired on the last attempt"}
                abandoned.append(
                    ClaimedJob(
                        row.id,
                        row.kind,
                        row.target_id,
                        row.attempts,
                        row.max_attempts,
                        row.lease_owner or "",
                    )
                )
            else:
                values = {"status": QUEUED, "run_after": now}
            conn.execute(
                update(_jobs)
                .where(_jobs.c.id == row.id)
                .values(lease_owner=None, lease_expires_at=None, updated_at=now, **values)
            )
        if len(rows) > len(abandoned):
            notify_jobs(conn)
    return abandoned
