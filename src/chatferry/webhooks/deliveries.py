"""A delivery's try, around the POST: what to send (read in a short transaction), and
the outcome recorded with the job's next step (delivered, a later try, or failed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

import orjson
from sqlalchemy import select, update

from chatferry.clock import utcnow
from chatferry.db.engine import begin_write, transaction
from chatferry.db.models import WebhookDelivery, WebhookEndpoint
from chatferry.jobs import queue
from chatferry.jobs.queue import ClaimedJob
from chatferry.jobs.status import JobStatus
from chatferry.runtime import Runtime
from chatferry.webhooks.http import Outcome
from chatferry.webhooks.service import DeliveryStatus, retry_delays
from chatferry.webhooks.signing import headers

# The record an event is about, as GET shows it with a fresh download link; None if it
# is gone. Arguments: the runtime, the record's kind and id, the base URL for links.
Renderer = Callable[[Runtime, str, int, str], dict[str, Any] | None]


@dataclass(frozen=True)
class Message:
    url: str
    body: bytes
    headers: dict[str, str]


def _data(rt: Runtime, render: Renderer, delivery: WebhookDelivery, base: str) -> Any:
    if delivery.record_kind and delivery.record_id is not None:
        fresh = render(rt, delivery.record_kind, delivery.record_id, base)
        if fresh is not None:
            return fresh
    return orjson.loads(delivery.data) if delivery.data else {}


def prepare(rt: Runtime, render: Renderer, job: ClaimedJob) -> Message | None:
    """The signed request of this try; None if the delivery or its endpoint is gone."""
    with transaction(rt.sessions) as session:
        row = session.execute(
            select(WebhookDelivery, WebhookEndpoint)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.id == job.target_id)
        ).first()
        if row is None:
            return None
        delivery, endpoint = row
        base = rt.settings.base_url or endpoint.base_url
        moment = delivery.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        payload = {
            "type": delivery.event,
            "timestamp": moment,
            "data": _data(rt, render, delivery, base),
        }
        body = orjson.dumps(payload)
        signed = headers(endpoint.secret, delivery.unique_id, int(time.time()), body)
        return Message(endpoint.url, body, signed)


def _next_step(
    session: Any, job: ClaimedJob, outcome: Outcome, delays: list[float]
) -> tuple[bool, str, Any]:
    """Records the job's next step; returns whether this try still held the job, the
    delivery's status and the time of its next try."""
    if outcome.delivered:
        return queue.finish(session, job, JobStatus.DONE), DeliveryStatus.DELIVERED, None
    if job.errors < len(delays):
        due = utcnow() + timedelta(seconds=delays[job.errors])
        held = queue.retry_later(session, job, outcome.error, due)
        return held, DeliveryStatus.PENDING, due
    held = queue.finish(session, job, JobStatus.FAILED, outcome.error)
    return held, DeliveryStatus.FAILED, None


def record(rt: Runtime, job: ClaimedJob, outcome: Outcome) -> str | None:
    """The try's outcome on the delivery (if the job was still this try's: a retry or a
    deleted endpoint may have taken it); returns the delivery's new status."""
    with transaction(rt.sessions) as session:
        begin_write(session)  # SQLite: reads, then writes (see begin_write)
        delivery = session.get(WebhookDelivery, job.target_id)
        if delivery is None:
            queue.finish(session, job, JobStatus.DONE)
            return None
        held, status, due = _next_step(session, job, outcome, retry_delays(rt.settings))
        if not held:
            return None
        delivery.attempts += 1
        delivery.status = status
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        delivery.next_attempt_at = due
        delivery.updated_at = utcnow()
    return status


def give_up(rt: Runtime, job: ClaimedJob) -> None:
    """The reaper gave the delivery's job up (the sender's process died while trying
    it, again and again): the delivery is failed, and says so."""
    message = f"the sender stopped while trying it ({job.crashes} times): retry it"
    with transaction(rt.sessions) as session:
        session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == job.target_id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
            )
            .values(
                status=DeliveryStatus.FAILED,
                last_error=message,
                next_attempt_at=None,
                updated_at=utcnow(),
            )
        )


def forget(rt: Runtime, job: ClaimedJob) -> None:
    """The delivery is gone (its endpoint deleted): the job ends."""
    with transaction(rt.sessions) as session:
        queue.finish(session, job, JobStatus.DONE)
