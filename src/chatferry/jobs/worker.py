"""Worker threads that claim jobs, keep their leases alive and reap dead ones."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta
from typing import Protocol

from sqlalchemy.orm import Session

from chatferry.clock import utcnow
from chatferry.db.engine import transaction
from chatferry.errors import ChatferryError
from chatferry.jobs import queue
from chatferry.jobs.notify import JobListener
from chatferry.jobs.queue import ClaimedJob
from chatferry.jobs.retry import backoff_seconds, is_transient, short_error
from chatferry.runtime import Runtime

log = logging.getLogger(__name__)


class JobHandler(Protocol):
    kind: str

    def run(self, rt: Runtime, job: ClaimedJob) -> None:
        """Does the work; raises to fail the job (the message of a known error is kept)."""

    def fail(self, session: Session, job: ClaimedJob, message: str) -> None:
        """Records on the job's target that it failed, and why."""


def default_handlers() -> dict[str, JobHandler]:
    from chatferry.exports.job import ExportJobHandler
    from chatferry.imports.job import ImportJobHandler

    handlers: list[JobHandler] = [ExportJobHandler(), ImportJobHandler()]
    return {h.kind: h for h in handlers}


def failure_message(exc: BaseException) -> str:
    if isinstance(exc, ChatferryError):
        return str(exc)
    return (
        f"the job stopped on an internal error ({type(exc).__name__}: {exc}); "
        "try again, and if it fails again report it to the operator with this message"
    )


TRANSIENT_MESSAGE = (
    "the job failed {attempts} times on a temporary error ({error}); check that the "
    "database and the file storage are reachable, then start it again (create the "
    "export or upload the file again)"
)

# The least time between two retention sweeps of one worker process.
RETENTION_SWEEP_SECONDS = 60.0

ABANDONED_MESSAGE = (
    "the worker running this job stopped {attempts} times before it could finish "
    "(it crashed or was shut down); start it again (create the export or upload the "
    "file again), and if this repeats ask the operator to check the workers' logs"
)


class Worker:
    """Runs ``concurrency`` job threads plus one heartbeat/reaper thread."""

    def __init__(
        self,
        rt: Runtime,
        concurrency: int,
        handlers: dict[str, JobHandler] | None = None,
    ) -> None:
        self.rt = rt
        self.concurrency = concurrency
        self.handlers = handlers or default_handlers()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: dict[int, ClaimedJob] = {}
        self._lock = threading.Lock()
        self._owner_prefix = f"{socket.gethostname()}:{os.getpid()}"
        self._listener: JobListener | None = None
        self._last_sweep = -RETENTION_SWEEP_SECONDS  # the first heartbeat sweeps

    @property
    def listener(self) -> JobListener | None:
        """The LISTEN/NOTIFY thread's state (PostgreSQL only)."""
        return self._listener

    def start(self) -> None:
        if self.rt.engine.dialect.name == "postgresql":
            self._listener = JobListener(self.rt.engine, self.rt.job_wakeup, self._stop)
            self._spawn(self._listener.run, "chatferry-job-listener")
        for index in range(self.concurrency):
            self._spawn(self._run_jobs, f"chatferry-worker-{index}")
        self._spawn(self._heartbeat, "chatferry-heartbeat")

    def _spawn(self, target: object, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
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

    def _run_jobs(self) -> None:
        owner = f"{self._owner_prefix}:{threading.current_thread().name}"
        settings = self.rt.settings
        while not self._stop.is_set():
            try:
                job = queue.claim_next(self.rt.engine, owner, settings.job_lease_seconds)
            except Exception:
                log.exception("could not claim a job; retrying")
                self._stop.wait(settings.job_poll_seconds)
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
            due = queue.next_due_at(self.rt.engine)
        except Exception:
            log.exception("could not read the job queue; retrying")
            return settings.job_poll_seconds
        if due is not None:
            wait = min(wait, max(0.05, (due - utcnow()).total_seconds()))
        return wait

    def _execute(self, job: ClaimedJob) -> None:
        handler = self.handlers.get(job.kind)
        with self._lock:
            self._running[job.id] = job
        try:
            if handler is None:
                raise RuntimeError(f"no handler for job kind {job.kind!r}")
            handler.run(self.rt, job)
        except Exception as exc:
            self._on_error(handler, job, exc)
        else:
            try:
                with transaction(self.rt.sessions) as session:
                    queue.finish(session, job, queue.DONE)
            except Exception:
                # The lease runs out and the reaper runs the job again (it is idempotent).
                log.exception("could not record job %s as done", job.id)
        finally:
            with self._lock:
                self._running.pop(job.id, None)

    def _on_error(self, handler: JobHandler | None, job: ClaimedJob, exc: Exception) -> None:
        """A transient error queues the job again with backoff while attempts remain;
        anything else (or the last attempt) fails it with a message for the user."""
        transient = is_transient(exc)
        try:
            if transient and job.attempts < job.max_attempts:
                cap = self.rt.settings.job_retry_max_backoff_seconds
                delay = backoff_seconds(job.attempts, cap)
                log.warning(
                    "job %s (%s %s) attempt %s/%s hit a temporary error, retrying in %ss: %s",
                    job.id,
                    job.kind,
                    job.target_id,
                    job.attempts,
                    job.max_attempts,
                    delay,
                    short_error(exc),
                )
                with transaction(self.rt.sessions) as session:
                    queue.retry_later(
                        session, job, short_error(exc), utcnow() + timedelta(seconds=delay)
                    )
                return
            log.error("job %s (%s %s) failed", job.id, job.kind, job.target_id, exc_info=exc)
            message = (
                TRANSIENT_MESSAGE.format(attempts=job.attempts, error=short_error(exc))
                if transient
                else failure_message(exc)
            )
            self._record_failure(handler, job, message)
        except Exception:
            # The database itself is unreachable: the lease runs out and the reaper
            # queues the job again (or fails it after its last attempt).
            log.exception("could not record the outcome of job %s", job.id)

    def _record_failure(self, handler: JobHandler | None, job: ClaimedJob, message: str) -> None:
        with transaction(self.rt.sessions) as session:
            if queue.finish(session, job, queue.FAILED, message) and handler is not None:
                handler.fail(session, job, message)

    def _heartbeat(self) -> None:
        lease = self.rt.settings.job_lease_seconds
        interval = min(lease / 3, RETENTION_SWEEP_SECONDS)
        while not self._stop.wait(interval):
            try:
                self._beat(lease)
            except Exception:
                log.exception("heartbeat failed; retrying")
            try:
                self._sweep()
            except Exception:
                log.exception("retention sweep failed; retrying later")

    def _sweep(self) -> None:
        """Deletes expired export files, at most once every RETENTION_SWEEP_SECONDS."""
        if not self.rt.settings.export_retention_days:
            return
        now = time.monotonic()
        if now - self._last_sweep < RETENTION_SWEEP_SECONDS:
            return
        self._last_sweep = now
        from chatferry.exports.retention import sweep_expired_exports

        sweep_expired_exports(self.rt)

    def _beat(self, lease: float) -> None:
        with self._lock:
            running = list(self._running.values())
        for owner in {job.owner for job in running}:
            ids = [job.id for job in running if job.owner == owner]
            queue.extend_leases(self.rt.engine, owner, ids, lease)
        for job in queue.reap_expired(self.rt.engine):
            handler = self.handlers.get(job.kind)
            if handler is not None:
                with transaction(self.rt.sessions) as session:
                    handler.fail(session, job, ABANDONED_MESSAGE.format(attempts=job.attempts))
        self.rt.job_wakeup.set()
