"""The webhook sender: one thread per process with its own asyncio loop that claims
due deliveries (jobs of kind "webhook") and POSTs them, many at once.

Deliveries never run on the worker threads that run exports and imports (they claim
other kinds), so a slow receiver delays no job. At most CHATFERRY_WEBHOOKS_CONCURRENCY
deliveries are in flight, at most CHATFERRY_WEBHOOKS_PER_APP of one app (the claim
skips apps at their share), so one app's dead receivers never hold another app's
deliveries. Each try is bounded by CHATFERRY_WEBHOOKS_TIMEOUT_SECONDS; its lease is
longer than that, so the worker's reaper only takes it over if this process died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable

import httpx

from chatferry.clock import utcnow
from chatferry.jobs import queue
from chatferry.jobs.events import WEBHOOKS_DUE
from chatferry.jobs.queue import ClaimedJob, Lane
from chatferry.obs.log import log_event
from chatferry.runtime import Runtime
from chatferry.webhooks import deliveries
from chatferry.webhooks.addresses import Policy
from chatferry.webhooks.deliveries import Renderer
from chatferry.webhooks.http import post
from chatferry.webhooks.service import JOB_KIND

log = logging.getLogger(__name__)
LANE = Lane(kinds=(JOB_KIND,))
_LEASE_MARGIN_SECONDS = 30.0


class WebhookSender:
    def __init__(self, rt: Runtime, render: Renderer) -> None:
        self.rt = rt
        self._render = render
        self._owner = f"{socket.gethostname()}:{os.getpid()}:webhooks"
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main()), name="chatferry-webhooks", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stops claiming; tries in flight get until ``timeout`` to end (a try cut
        short is taken over by the reaper once its lease runs out)."""
        self._stopping.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wake.set)
        if self._thread is not None:
            self._thread.join(timeout)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        settings = self.rt.settings
        limits = httpx.Limits(max_connections=settings.webhooks_concurrency)
        tasks: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(follow_redirects=False, limits=limits) as client:
            with self.rt.events.subscription(WEBHOOKS_DUE) as heard:
                while not self._stopping.is_set():
                    heard.clear()
                    self._wake.clear()
                    await self._fill(client, tasks)
                    await self._idle(heard, len(tasks) >= settings.webhooks_concurrency)
                if tasks:
                    await asyncio.wait(tasks, timeout=settings.webhooks_timeout_seconds)

    async def _fill(self, client: httpx.AsyncClient, tasks: set[asyncio.Task[None]]) -> None:
        settings = self.rt.settings
        lease = settings.webhooks_timeout_seconds + _LEASE_MARGIN_SECONDS
        while len(tasks) < settings.webhooks_concurrency and not self._stopping.is_set():
            try:
                job = await asyncio.to_thread(
                    queue.claim_next,
                    self.rt.engine,
                    self._owner,
                    lease,
                    lane=LANE,
                    per_app=settings.webhooks_per_app,
                )
            except Exception:
                log.exception("could not claim a webhook delivery; retrying")
                return
            if job is None:
                return
            task = asyncio.create_task(self._deliver(client, job))
            tasks.add(task)
            task.add_done_callback(self._done(tasks))

    def _done(self, tasks: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
        def forget(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if self._wake is not None:
                self._wake.set()  # a slot is free

        return forget

    async def _idle(self, heard: asyncio.Event, full: bool) -> None:
        """Sleeps until an event, a free slot, the next due delivery or the poll."""
        assert self._wake is not None
        settings = self.rt.settings
        wait = settings.job_listen_poll_seconds if self.rt.events.listening else 1.0
        wait = min(wait, settings.job_poll_seconds * 10)
        if not full:
            wait = await self._until_due(wait)
        heard_task = asyncio.ensure_future(heard.wait())
        wake_task = asyncio.ensure_future(self._wake.wait())
        await asyncio.wait({heard_task, wake_task}, timeout=wait, return_when="FIRST_COMPLETED")
        heard_task.cancel()
        wake_task.cancel()

    async def _until_due(self, wait: float) -> float:
        try:
            due = await asyncio.to_thread(queue.next_due_at, self.rt.engine, LANE)
        except Exception:
            log.exception("could not read the webhook queue; retrying")
            return wait
        if due is None:
            return wait
        return min(wait, max(0.05, (due - utcnow()).total_seconds()))

    async def _deliver(self, client: httpx.AsyncClient, job: ClaimedJob) -> None:
        rt = self.rt
        try:
            message = await asyncio.to_thread(deliveries.prepare, rt, self._render, job)
            if message is None:
                await asyncio.to_thread(deliveries.forget, rt, job)
                return
            policy = Policy.of(rt.settings)
            timeout = rt.settings.webhooks_timeout_seconds
            outcome = await post(
                client, message.url, message.body, message.headers, policy, timeout
            )
            status = await asyncio.to_thread(deliveries.record, rt, job, outcome)
        except Exception:
            log.exception(
                "webhook delivery %s failed unexpectedly; it will be tried again", job.ref
            )
            return
        log_event(
            log,
            "webhook delivery",
            kind=JOB_KIND,
            unique_id=job.ref,
            app=job.app_ref,
            attempt=job.attempts,
            status=status or "dropped",
            http_status=outcome.status_code,
            error=outcome.error or None,
        )
