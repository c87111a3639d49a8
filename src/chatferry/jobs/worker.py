"""Worker threads that claim jobs, keep their leases alive and reap dead ones."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Protocol

from sqlalchemy.orm import Session

from chatferry.db.engine import transaction
from chatferry.errors import ChatferryError
from chatferry.jobs import queue
from chatferry.jobs.queue import ClaimedJob
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

    def start(self) -> None:
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
        self.rt.job_wakeup.set()
        for thread in self._threads:
            thread.join(timeout)

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
                self.rt.job_wakeup.wait(settings.job_poll_seconds)
                self.rt.job_wakeup.clear()
                continue
            self._execute(job)

    def _execute(self, job: ClaimedJob) -> None:
        handler = self.handlers.get(job.kind)
        with self._lock:
            self._running[job.id] = job
        try:
            if handler is None:
                raise RuntimeError(f"no handler for job kind {job.kind!r}")
            handler.run(self.rt, job)
        except Exception as exc:
            log.exception("job %s (%s %s) failed", job.id, job.kind, job.target_id)
            self._record_failure(handler, job, failure_message(exc))
        else:
            with transaction(self.rt.sessions) as session:
                queue.finish(session, job, queue.DONE)
        finally:
            with self._lock:
                self._running.pop(job.id, None)

    def _record_failure(self, handler: JobHandler | None, job: ClaimedJob, message: str) -> None:
        with transaction(self.rt.sessions) as session:
            if queue.finish(session, job, queue.FAILED, message) and handler is not None:
                handler.fail(session, job, message)

    def _heartbeat(self) -> None:
        lease = self.rt.settings.job_lease_seconds
        while not self._stop.wait(lease / 3):
            try:
                self._beat(lease)
            except Exception:
                log.exception("heartbeat failed; retrying")

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
