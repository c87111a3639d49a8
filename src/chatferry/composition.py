"""The composition root of a process's background work: the job worker with its
handlers and hooks, and the periodic tasks (schedule firing, retention).

``chatferry serve`` (api/app.py) and ``chatferry worker`` (cli/) both start it; this is
where the domains are wired together, so that none of them imports another's jobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatferry.api.webhook_data import render_record
from chatferry.exports.job import ExportJobHandler
from chatferry.exports.retention import sweep_expired_exports
from chatferry.imports.job import ImportJobHandler
from chatferry.imports.retention import sweep_stray_uploads
from chatferry.jobs.events import WEBHOOKS_DUE, Ended, send_event
from chatferry.jobs.handlers import Handlers, handlers_of
from chatferry.jobs.periodic import PeriodicRunner, PeriodicTask
from chatferry.jobs.queue import Lane
from chatferry.jobs.worker import Worker
from chatferry.runtime import Runtime
from chatferry.schedules.scheduler import fire_due, on_export_finished
from chatferry.settings import Settings
from chatferry.webhooks import deliveries
from chatferry.webhooks.sender import WebhookSender
from chatferry.webhooks.service import JOB_KIND as WEBHOOK_KIND
from chatferry.webhooks.service import queue_for_ended

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


def install_events(rt: Runtime) -> None:
    """Wires the ends of jobs to the webhooks (deliveries queued in the transaction
    that ends a record) and starts the process's event listener (PostgreSQL). Every
    process that can end a record or wait for one calls it: serve, worker."""

    def queue_deliveries(executor: Any, ended: Ended) -> None:
        if queue_for_ended(executor, rt.settings, ended):
            send_event(executor, WEBHOOKS_DUE)  # the other processes, on commit
            rt.events.also_on(ended.key, WEBHOOKS_DUE)  # this one, once committed

    rt.events.hooks["webhooks"] = queue_deliveries
    rt.events.listen(rt.engine)


@dataclass
class Background:
    """A process's job threads, webhook sender and periodic tasks, started and stopped
    together."""

    worker: Worker
    sender: WebhookSender
    periodic: PeriodicRunner

    def start(self) -> None:
        install_events(self.worker.rt)
        self.worker.start()
        self.sender.start()
        self.periodic.start()

    def stop(self) -> None:
        self.periodic.stop()
        self.sender.stop()
        self.worker.stop()


def background(rt: Runtime, concurrency: int | None = None) -> Background:
    threads = concurrency or rt.settings.worker_concurrency
    # Webhook deliveries have their own sender: they never take a worker thread.
    worker = Worker(rt, threads, job_handlers(rt.settings), Lane(exclude=(WEBHOOK_KIND,)))
    worker.given_up[WEBHOOK_KIND] = deliveries.give_up
    sender = WebhookSender(rt, render_record)
    return Background(worker, sender, PeriodicRunner(periodic_tasks(rt)))
