"""The composition root of a process's background work: the job worker with its
handlers and hooks, and the periodic tasks (schedule firing, retention).

``chatferry serve`` (api/app.py) and ``chatferry worker`` (cli/) both start it; this is
where the domains are wired together, so that none of them imports another's jobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from chatferry.exports.job import ExportJobHandler
from chatferry.exports.retention import sweep_expired_exports
from chatferry.imports.job import ImportJobHandler
from chatferry.imports.retention import sweep_stray_uploads
from chatferry.jobs.handlers import Handlers, handlers_of
from chatferry.jobs.periodic import PeriodicRunner, PeriodicTask
from chatferry.jobs.worker import Worker
from chatferry.runtime import Runtime
from chatferry.schedules.scheduler import fire_due, on_export_finished
from chatferry.settings import Settings

SCHEDULER_INTERVAL_SECONDS = 1.0
RETENTION_INTERVAL_SECONDS = 60.0


def _pause(seconds: float) -> Callable[[], None] | None:
    """The test and benchmark hook that slows an export down (off when 0)."""
    if not seconds:
        return None
    return lambda: time.sleep(seconds)


def job_handlers(settings: Settings) -> Handlers:
    exports = ExportJobHandler(
        on_finished=on_export_finished,
        after_batch=_pause(settings.export_batch_delay_seconds),
    )
    return handlers_of(exports, ImportJobHandler())


def _retention(rt: Runtime) -> None:
    sweep_expired_exports(rt)
    sweep_stray_uploads(rt)


def periodic_tasks(rt: Runtime) -> list[PeriodicTask]:
    interval = min(SCHEDULER_INTERVAL_SECONDS, rt.settings.job_poll_seconds)
    return [
        PeriodicTask("scheduler", interval, lambda: fire_due(rt)),
        PeriodicTask("retention", RETENTION_INTERVAL_SECONDS, lambda: _retention(rt)),
    ]


@dataclass
class Background:
    """A process's job threads and periodic tasks, started and stopped together."""

    worker: Worker
    periodic: PeriodicRunner

    def start(self) -> None:
        self.worker.start()
        self.periodic.start()

    def stop(self) -> None:
        self.periodic.stop()
        self.worker.stop()


def background(rt: Runtime, concurrency: int | None = None) -> Background:
    threads = concurrency or rt.settings.worker_concurrency
    worker = Worker(rt, threads, job_handlers(rt.settings))
    return Background(worker, PeriodicRunner(periodic_tasks(rt)))
