"""The durable queue itself: claims are exclusive, leases expire, dead jobs are reaped."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import select, update

from chatferry.clock import utcnow
from chatferry.db.engine import transaction
from chatferry.db.models import Job
from chatferry.jobs import queue
from chatferry.runtime import Runtime
from support.waiting import wait_for


def _enqueue(rt: Runtime, count: int, max_attempts: int = 3) -> list[int]:
    with transaction(rt.sessions) as session:
        return [queue.enqueue(session, "test", i, max_attempts).id for i in range(count)]


def _status(rt: Runtime, job_id: int) -> Job:
    with transaction(rt.sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _wait_until_the_lease_ran_out(rt: Runtime, job_id: int) -> None:
    """Waits until the reaper's clock (``utcnow``) is past the job's lease."""
    expires = _status(rt, job_id).lease_expires_at
    assert expires is not None
    wait_for(lambda: utcnow() > expires, timeout=5, interval=0.01)


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
        queue.enqueue(session, "test", 1, 3, run_after=utcnow() + timedelta(hours=1))
    assert queue.claim_next(runtime.engine, "w", 30) is None


def test_expired_lease_is_requeued_and_claimed_again(runtime: Runtime) -> None:
    [job_id] = _enqueue(runtime, 1)
    first = queue.claim_next(runtime.engine, "dead-worker", 0.2)
    assert first is not None and first.attempts == 1
    assert queue.claim_next(runtime.engine, "other", 30) is None
    _wait_until_the_lease_ran_out(runtime, job_id)
    assert queue.reap_expired(runtime.engine) == []
    second = queue.claim_next(runtime.engine, "other", 30)
    assert second is not None and second.id == job_id and second.attempts == 2
    with transaction(runtime.sessions) as session:
        assert not queue.finish(session, first, queue.DONE), "the dead owner lost the job"
        assert queue.finish(session, second, queue.DONE)
    assert _status(runtime, job_id).status == queue.DONE


def test_heartbeat_keeps_the_lease(runtime: Runtime) -> None:
    _enqueue(runtime, 1)
    job = queue.claim_next(runtime.engine, "w", 0.3)
    assert job is not None
    for _ in range(3):  # past the first lease: only the heartbeats keep it
        time.sleep(0.15)
        queue.extend_leases(runtime.engine, "w", [job.id], 0.3)
    assert queue.reap_expired(runtime.engine) == []
    assert _status(runtime, job.id).status == queue.RUNNING


def test_job_out_of_attempts_is_abandoned_not_requeued(runtime: Runtime) -> None:
    [job_id] = _enqueue(runtime, 1, max_attempts=1)
    assert queue.claim_next(runtime.engine, "w", 0.1) is not None
    _wait_until_the_lease_ran_out(runtime, job_id)
    abandoned = queue.reap_expired(runtime.engine)
    assert [job.id for job in abandoned] == [job_id]
    assert _status(runtime, job_id).status == queue.FAILED
    assert queue.claim_next(runtime.engine, "w", 30) is None


def test_cancelled_job_cannot_be_finished_by_its_runner(runtime: Runtime) -> None:
    _enqueue(runtime, 1)
    job = queue.claim_next(runtime.engine, "w", 30)
    assert job is not None
    with transaction(runtime.sessions) as session:
        queue.cancel_jobs_for(session, "test", job.target_id)
    with transaction(runtime.sessions) as session:
        assert not queue.finish(session, job, queue.DONE)
    assert _status(runtime, job.id).status == queue.CANCELLED


def test_claim_order_is_oldest_due_first(runtime: Runtime) -> None:
    ids = _enqueue(runtime, 3)
    with transaction(runtime.sessions) as session:
        session.execute(
            update(Job).where(Job.id == ids[2]).values(run_after=utcnow() - timedelta(minutes=5))
        )
    order = [queue.claim_next(runtime.engine, "w", 30) for _ in ids]
    assert [job.id for job in order if job] == [ids[2], ids[0], ids[1]]
    with transaction(runtime.sessions) as session:
        statuses = set(session.scalars(select(Job.status)))
    assert statuses == {queue.RUNNING}
