"""Worker threads that claim jobs, keep their leases alive and reap dead ones."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from chatferry.clock import utcnow
from chatferry.db.engine import transaction
from chatferry.db.outage import log_failure, unless_outage
from chatferry.errors import ChatferryError, new_reference
from chatferry.jobs import queue
from chatferry.jobs.events import Ended
from chatferry.jobs.failures import (
    abandoned_message,
    backoff_seconds,
    failing_part,
    give_up_message,
    internal_error_message,
    is_storage_full,
    is_transient,
    refused_message,
    retry_notice,
    short_error,
    storage_full_message,
)
from chatferry.jobs.handlers import Handlers, JobHandler, JobReport
from chatferry.jobs.notify import Listener, job_listener
from chatferry.jobs.queue import ClaimedJob, ReapedJob
from chatferry.jobs.status import JobStatus
from chatferry.obs import metrics
from chatferry.obs.log import log_event
from chatferry.runtime import Runtime

log = logging.getLogger(__name__)


def job_fields(job: ClaimedJob) -> dict[str, Any]:
    """What identifies a job in the logs: the record's public ``unique_id``, its type
    and its app's id (never our internal integer ids)."""
    return {
        "kind": job.kind,
        "unique_id": job.ref,
        "app": job.app_ref,
        "type": job.resource or None,
        "attempt": job.attempts,
    }


def with_resource(handler: JobHandler | None, rt: Runtime, job: ClaimedJob) -> ClaimedJob:
    """The job with its record's type filled in, for the log lines (as it was if the
    record cannot be read: the run itself will say why)."""
    if handler is None:
        return job
    try:
        return replace(job, resource=handler.records.resource_of(rt.engine, job.target_id))
    except Exception as exc:
        log_failure(log, f"could not read the type of {job.kind} {job.ref}", exc, logging.WARNING)
        return job


def _unrecorded(event: str, exc: BaseException, job: ClaimedJob) -> None:
    """The database did not take the job's outcome: its lease runs out and the job runs
    again. A warning without traceback while the database is out of reach (the outage
    has its own line), an error with the details otherwise."""
    details = unless_outage(exc)
    level = logging.ERROR if details is not None else logging.WARNING
    log_event(log, event, level, details, **job_fields(job), then="the job runs again")


class Worker:
    """Runs ``concurrency`` job threads plus one heartbeat/reaper thread."""

    def __init__(
        self, rt: Runtime, concurrency: int, handlers: Handlers, lane: queue.Lane = queue.ANY_LANE
    ) -> None:
        self.rt = rt
        self.lane = lane  # the kinds these threads take (webhooks have their own sender)
        self.concurrency = concurrency
        self.handlers = handlers
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[int, ClaimedJob] = {}
        self._lock = threading.Lock()
        self._owner_prefix = f"{socket.gethostname()}:{os.getpid()}"
        self._listener: Listener | None = None
        # What to do when the reaper gives up a job of a kind run elsewhere (the
        # webhook sender's deliveries): by kind, called with the given-up job.
        self.given_up: dict[str, Callable[[Runtime, ClaimedJob], None]] = {}

    @property
    def listener(self) -> Listener | None:
        """The LISTEN/NOTIFY thread's state (PostgreSQL only)."""
        return self._listener

    def start(self) -> None:
        if self.rt.engine.dialect.name == "postgresql":
            self._listener = job_listener(self.rt.engine, self.rt.job_wakeup, self._stop)
            self._spawn(self._listener.run, "chatferry-job-listener")
        for index in range(self.concurrency):
            self._spawn(self._run_jobs, f"chatferry-worker-{index}")
        self._spawn(self._heartbeat, "chatferry-heartbeat")
        log_event(log, "worker started", threads=self.concurrency, kinds=",".join(self.handlers))

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Stops claiming, lets running jobs finish, then returns."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            while thread.is_alive() and time.monotonic() < deadline:
                # Again and again: an idle thread that had not started waiting yet when
                # another cleared the event would otherwise sleep a whole poll interval.
                self.rt.job_wakeup.set()
                thread.join(0.1)
        with self._lock:
            unfinished = len(self._running)
        log_event(log, "worker stopped", unfinished_jobs=unfinished)

    def _is_reserve(self) -> bool:
        """True for the last free thread of a worker with several: it is kept for apps
        that have no job running, so one app's long jobs never block the others."""
        with self._lock:
            busy = len(self._running)
        return self.concurrency > 1 and busy >= self.concurrency - 1

    def _run_jobs(self) -> None:
        owner = f"{self._owner_prefix}:{threading.current_thread().name}"
        lease = self.rt.settings.job_lease_seconds
        while not self._stop.is_set():
            try:
                job = queue.claim_next(self.rt.engine, owner, lease, self._is_reserve(), self.lane)
            except Exception as exc:
                log_failure(log, "could not claim a job; retrying", exc)
                self._stop.wait(self.rt.settings.job_poll_seconds)
                continue
            if job is None:
                self.rt.job_wakeup.wait(self._idle_wait())
                self.rt.job_wakeup.clear()
                continue
            self._execute(job)

    def _idle_wait(self) -> float:
        """How long an idle worker sleeps unless woken: the poll interval (longer while
        LISTEN/NOTIFY is connected), cut short when a queued job becomes due sooner."""
        settings = self.rt.settings
        wait = settings.job_poll_seconds
        if self._listener is not None and self._listener.connected.is_set():
            wait = max(wait, settings.job_listen_poll_seconds)
        try:
            due = queue.next_due_at(self.rt.engine, self.lane)
        except Exception as exc:
            log_failure(log, "could not read the job queue; retrying", exc)
            return settings.job_poll_seconds
        if due is not None:
            wait = min(wait, max(0.05, (due - utcnow()).total_seconds()))
        return wait

    def _execute(self, job: ClaimedJob) -> None:
        handler = self.handlers.get(job.kind)
        job = with_resource(handler, self.rt, job)
        with self._lock:
            self._running[job.id] = job
        started = time.monotonic()
        log_event(log, "job started", **job_fields(job))
        try:
            if handler is None:
                raise RuntimeError(f"no handler for job kind {job.kind!r}")
            report = handler.run(self.rt, job)
        except Exception as exc:
            self._on_error(handler, job, exc, time.monotonic() - started)
        else:
            self._on_done(job, report, time.monotonic() - started)
        finally:
            with self._lock:
                self._running.pop(job.id, None)

    def _on_done(self, job: ClaimedJob, report: JobReport, seconds: float) -> None:
        try:
            with transaction(self.rt.sessions) as session:
                queue.finish(session, job, JobStatus.DONE)
        except Exception as exc:
            # The lease runs out and the reaper runs the job again (it is idempotent).
            _unrecorded("could not record the job as done", exc, job)
            return
        metrics.job_done(
            job.kind, report.outcome, seconds, report.resource, report.rows, report.bytes
        )
        log_event(
            log,
            f"job {report.outcome}",
            **{**job_fields(job), "type": report.resource or job.resource or None},
            rows=report.rows,
            bytes=report.bytes,
            seconds=round(seconds, 3),
        )

    def _on_error(
        self, handler: JobHandler | None, job: ClaimedJob, exc: Exception, seconds: float
    ) -> None:
        """A transient error queues the job again with backoff while its error budget
        lasts; anything else (or the last try) fails it with a message for the tenant."""
        try:
            if is_transient(exc) and job.errors + 1 < job.max_attempts:
                self._retry(handler, job, exc)
                return
            self._fail(handler, job, exc, seconds)
        except Exception as failure:
            # The database itself is unreachable: the lease runs out and the reaper
            # queues the job again (or fails it after its crash budget).
            _unrecorded("could not record the job's outcome", failure, job)

    def _retry(self, handler: JobHandler | None, job: ClaimedJob, exc: Exception) -> None:
        tries = job.errors + 1
        delay = backoff_seconds(tries, self.rt.settings.job_retry_max_backoff_seconds)
        ref = new_reference()
        log_event(
            log,
            "job retried",
            logging.WARNING,
            unless_outage(exc),  # the details, under the reference the tenant reads
            **job_fields(job),
            error=short_error(exc),
            retry_in=delay,
            reference=ref,
        )
        with transaction(self.rt.sessions) as session:
            queue.retry_later(session, job, short_error(exc), utcnow() + timedelta(seconds=delay))
            if handler is not None:
                notice = retry_notice(handler.noun, exc, tries, job.max_attempts, delay, ref)
                handler.records.note(session, job.target_id, notice)
        metrics.job_retried(job.kind)

    def _fail(
        self, handler: JobHandler | None, job: ClaimedJob, exc: Exception, seconds: float
    ) -> None:
        ref = new_reference()
        log_event(
            log,
            "job failed",
            logging.ERROR,
            # The details, under the ref (a full storage says all in the line).
            None if isinstance(exc, ChatferryError) or is_storage_full(exc) else exc,
            **job_fields(job),
            reference=ref,
            error=short_error(exc),
            seconds=round(seconds, 3),
        )
        message = self._tenant_message(handler, job, exc, ref)
        with transaction(self.rt.sessions) as session:
            failed = queue.finish(session, job, JobStatus.FAILED, short_error(exc))
            ended = None
            if failed and handler:
                ended = self._mark_failed(session, handler, job, message)
                # Before the commit: a client that reads "failed" finds the files gone.
                self._discard(handler, job)
        if ended:
            self.rt.events.publish(ended.key)
        metrics.job_done(job.kind, "failed", seconds)

    def _mark_failed(
        self, session: Session, handler: JobHandler, job: ClaimedJob, message: str
    ) -> Ended | None:
        """Fails the job's record and announces it in the same transaction (webhooks,
        waiting requests); None if the record was no longer pending."""
        if not handler.records.mark_failed(session, job.target_id, message):
            return None
        ended = Ended(handler.kind, job.target_id, job.ref, job.app_pk, handler.records.failed)
        self.rt.events.ended(session, ended)
        return ended

    def _discard(self, handler: JobHandler, job: ClaimedJob) -> None:
        try:
            handler.discard(self.rt, job)
        except Exception as exc:
            fields = job_fields(job)
            log_event(log, "could not remove the failed job's files", logging.ERROR, exc, **fields)

    @staticmethod
    def _tenant_message(
        handler: JobHandler | None, job: ClaimedJob, exc: Exception, ref: str
    ) -> str:
        if isinstance(exc, ChatferryError):
            return exc.message
        noun, redo = (handler.noun, handler.redo) if handler else ("job", "try again")
        if is_storage_full(exc):
            return storage_full_message(noun, redo, ref)
        if is_transient(exc):
            return give_up_message(noun, redo, exc, job.errors + 1, ref)
        if failing_part(exc) != "server":
            return refused_message(noun, redo, exc, ref)
        return internal_error_message(noun, redo, ref)

    def _heartbeat(self) -> None:
        lease = self.rt.settings.job_lease_seconds
        while not self._stop.wait(lease / 3):
            try:
                self._beat(lease)
            except Exception as exc:
                log_failure(log, "heartbeat failed; retrying", exc)

    def _beat(self, lease: float) -> None:
        with self._lock:
            running = list(self._running.values())
        for owner in {job.owner for job in running}:
            ids = [job.id for job in running if job.owner == owner]
            queue.extend_leases(self.rt.engine, owner, ids, lease)
        cap = self.rt.settings.job_retry_max_backoff_seconds
        for reaped in queue.reap_expired(self.rt.engine, cap):
            self._on_reaped(reaped)
        self.rt.job_wakeup.set()

    def _on_reaped(self, reaped: ReapedJob) -> None:
        handler = self.handlers.get(reaped.job.kind)
        job = with_resource(handler, self.rt, reaped.job)
        fields = {**job_fields(job), "crashes": job.crashes}
        if reaped.retry_in is not None:
            log_event(log, "job reaped", logging.WARNING, **fields, retry_in=reaped.retry_in)
            metrics.job_reaped(job.kind, gave_up=False)
            return
        log_event(log, "job failed", logging.ERROR, **fields, error=queue.CRASH_MESSAGE)
        metrics.job_reaped(job.kind, gave_up=True)
        if handler is not None:
            self._discard(handler, job)  # the job is given up: nothing else runs it
            with transaction(self.rt.sessions) as session:
                message = abandoned_message(handler.noun, handler.redo, job.crashes)
                ended = self._mark_failed(session, handler, job, message)
            if ended:
                self.rt.events.publish(ended.key)
        elif job.kind in self.given_up:
            self.given_up[job.kind](self.rt, job)
