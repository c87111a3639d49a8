"""The durable queue itself: claims are exclusive and fair between apps, leases expire,
dead jobs are reaped with backoff under their own crash budget."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select, update

from chatferry.clock import utcnow
from chatferry.db.engine import transaction
from chatferry.db.models import Job
from chatferry.jobs import queue
from chatferry.jobs.queue import JobSpec
from chatferry.jobs.status import JobStatus
from chatferry.runtime import Runtime


def spec(target: int, app_pk: int = 1, **overrides: object) -> JobSpec:
    fields: dict[str, object] = {
        "kind": "test",
        "target_id": target,
        "app_pk": app_pk,
        "ref": f"ref-{target}",
        "app_ref": f"app-{app_pk}",
        "max_attempts": 3,
        "max_crashes": 10,
        **overrides,
    }
    return JobSpec(**fields)  # type: ignore[arg-type]


def _enqueue(rt: Runtime, count: int, app_pk: int = 1, **overrides: object) -> list[int]:
    with transaction(rt.sessions) as session:
        return [queue.enqueue(session, spec(i, app_pk, **overrides)).id for i in range(count)]


def _job(rt: Runtime, job_id: int) -> Job:
    with transaction(rt.sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _expire_leases(rt: Runtime) -> None:
    """Makes every running job's lease run out now (its worker died)."""
    with rt.engine.begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.status == JobStatus.RUNNING)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def _make_due(rt: Runtime) -> None:
    with rt.engine.begin() as conn:
        conn.execute(update(Job).values(run_after=utcnow() - timedelta(seconds=1)))


def test_concurrent_claimers_never_take_the_same_job(runtime: Runtime) -> None:
    ids = _enqueue(runtime, 40)
    claimed: list[int] = []
    lock = threading.Lock()

    def claim_all(name: str) -> None:
        while (job := queue.claim_next(runtime.engine, name, 30)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claim_all, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)


def test_a_job_due_later_is_not_claimed_yet(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        queue.enqueue(session, spec(1, run_after=utcnow() + timedelta(hours=1)))
    assert queue.claim_next(runtime.engine, "w", 30) is None


def test_a_claimed_job_carries_its_record_and_app_for_the_logs(runtime: Runtime) -> None:
    _enqueue(runtime, 1, app_pk=7)
    job = queue.claim_next(runtime.engine, "w", 30)
    assert job is not None
    assert (job.kind, job.ref, job.app_ref, job.attempts) == ("test", "ref-0", "app-7", 1)


def test_an_expired_lease_is_requeued_with_backoff_and_claimed_again(runtime: Runtime) -> None:
    [job_id] = _enqueue(runtime, 1)
    first = queue.claim_next(runtime.engine, "dead-worker", 30)
    assert first is not None and first.attempts == 1
    assert queue.claim_next(runtime.engine, "other", 30) is None
    _expire_leases(runtime)
    [reaped] = queue.reap_expired(runtime.engine, max_backoff=300)
    assert (reaped.job.id, reaped.job.crashes, reaped.retry_in) == (job_id, 1, 2.0)
    # Backoff: not claimable at once.
    assert queue.claim_next(runtime.engine, "other", 30) is None
    assert _job(runtime, job_id).run_after > utcnow()
    _make_due(runtime)
    second = queue.claim_next(runtime.engine, "other", 30)
    assert second is not None and second.id == job_id and second.attempts == 2
    with transaction(runtime.sessions) as session:
        assert not queue.finish(session, first, JobStatus.DONE), "the dead owner lost the job"
        assert queue.finish(session, second, JobStatus.DONE)
    assert _job(runtime, job_id).status == JobStatus.DONE


def test_heartbeat_keeps_the_lease(runtime: Runtime) -> None:
    _enqueue(runtime, 1)
    job = queue.claim_next(runtime.engine, "w", 0.001)
    assert job is not None
    queue.extend_leases(runtime.engine, "w", [job.id], 30)
    assert queue.reap_expired(runtime.engine, max_backoff=300) == []
    assert _job(runtime, job.id).status == JobStatus.RUNNING


def test_crashes_have_their_own_budget_apart_from_errors(runtime: Runtime) -> None:
    [job_id] = _enqueue(runtime, 1, max_attempts=1, max_crashes=3)
    for crash in (1, 2):
        assert queue.claim_next(runtime.engine, "w", 30) is not None
        _expire_leases(runtime)
        [reaped] = queue.reap_expired(runtime.engine, max_backoff=300)
        assert (reaped.job.crashes, reaped.retry_in) == (crash, float(2**crash))
        _make_due(runtime)
    assert queue.claim_next(runtime.engine, "w", 30) is not None
    _expire_leases(runtime)
    [given_up] = queue.reap_expired(runtime.engine, max_backoff=300)
    assert (given_up.job.crashes, given_up.retry_in) == (3, None)
    assert _job(runtime, job_id).status == JobStatus.FAILED
    assert queue.claim_next(runtime.engine, "w", 30) is None


def test_an_error_retry_counts_against_the_error_budget(runtime: Runtime) -> None:
    [job_id] = _enqueue(runtime, 1)
    job = queue.claim_next(runtime.engine, "w", 30)
    assert job is not None and job.errors == 0
    with transaction(runtime.sessions) as session:
        assert queue.retry_later(session, job, "storage down", utcnow())
    again = queue.claim_next(runtime.engine, "w", 30)
    assert again is not None and (again.errors, again.attempts) == (1, 2)
    assert _job(runtime, job_id).last_error == "storage down"


def test_cancelled_job_cannot_be_finished_by_its_runner(runtime: Runtime) -> None:
    _enqueue(runtime, 1)
    job = queue.claim_next(runtime.engine, "w", 30)
    assert job is not None
    with transaction(runtime.sessions) as session:
        queue.cancel_jobs_for(session, "test", job.target_id)
    with transaction(runtime.sessions) as session:
        assert not queue.finish(session, job, JobStatus.DONE)
    assert _job(runtime, job.id).status == JobStatus.CANCELLED


def test_claim_order_is_oldest_due_first(runtime: Runtime) -> None:
    ids = _enqueue(runtime, 3)
    with transaction(runtime.sessions) as session:
        session.execute(
            update(Job).where(Job.id == ids[2]).values(run_after=utcnow() - timedelta(minutes=5))
        )
    # One app at a time would go first to whichever app runs the least: all one app here.
    order = [queue.claim_next(runtime.engine, "w", 30) for _ in ids]
    assert [job.id for job in order if job] == [ids[2], ids[0], ids[1]]
    with transaction(runtime.sessions) as session:
        statuses = set(session.scalars(select(Job.status)))
    assert statuses == {JobStatus.RUNNING}


def test_an_app_with_running_jobs_goes_after_an_app_with_none(runtime: Runtime) -> None:
    busy = _enqueue(runtime, 3, app_pk=1)
    assert queue.claim_next(runtime.engine, "w1", 30) is not None  # app 1 now runs one
    [waiting] = _enqueue(runtime, 1, app_pk=2)  # queued after app 1's other jobs
    job = queue.claim_next(runtime.engine, "w2", 30)
    assert job is not None and job.id == waiting
    job = queue.claim_next(runtime.engine, "w3", 30)
    assert job is not None and job.id == busy[1]


def test_a_reserve_thread_only_takes_apps_with_nothing_running(runtime: Runtime) -> None:
    _enqueue(runtime, 2, app_pk=1)
    assert queue.claim_next(runtime.engine, "w1", 30, reserve=True) is not None
    # App 1 now runs a job: its second job is not for the reserve thread...
    assert queue.claim_next(runtime.engine, "w2", 30, reserve=True) is None
    # ...but another app's is, and an ordinary thread still takes app 1's.
    [other] = _enqueue(runtime, 1, app_pk=2)
    job = queue.claim_next(runtime.engine, "w2", 30, reserve=True)
    assert job is not None and job.id == other
    assert queue.claim_next(runtime.engine, "w3", 30) is not None
