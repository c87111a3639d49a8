"""Webhook endpoints of an app, and the deliveries queued for them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import Connection, delete, select
from sqlalchemy.orm import Session

from chatferry.apps.service import AppContext
from chatferry.clock import utcnow
from chatferry.db.engine import begin_write
from chatferry.db.models import App, WebhookDelivery, WebhookEndpoint
from chatferry.db.types import is_lookup_key
from chatferry.errors import BadRequest, NotFound, show
from chatferry.jobs.events import Ended
from chatferry.jobs.queue import JobSpec, cancel_jobs_for, enqueue
from chatferry.settings import Settings
from chatferry.webhooks.signing import new_message_id, new_secret

JOB_KIND = "webhook"
PING = "ping"
EVENTS = (
    "export.finished",
    "export.failed",
    "export.cancelled",
    "import.finished",
    "import.failed",
    PING,
)
MAX_ENDPOINTS_PER_APP = 20
RECENT_DELIVERIES = 20


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # queued, or waiting for its next try
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # out of tries


def retry_delays(settings: Settings) -> list[float]:
    """The waits between tries (CHATFERRY_WEBHOOKS_RETRY_DELAYS, seconds)."""
    try:
        delays = [float(part) for part in settings.webhooks_retry_delays.split(",") if part.strip()]
    except ValueError:
        delays = []
    return [d for d in delays if d >= 0] or [5.0]


def check_events(events: Sequence[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENTS]
    if not events or unknown:
        raise BadRequest(
            f"events must list one or more of {', '.join(EVENTS)}"
            + (f"; unknown: {', '.join(show(e) for e in unknown)}" if unknown else "")
        )
    return list(dict.fromkeys(events))


def create_endpoint(
    session: Session, app: AppContext, url: str, events: list[str], description: str, base: str
) -> WebhookEndpoint:
    """A new endpoint with a new secret (the caller shows it once)."""
    begin_write(session)
    count = len(list_endpoints(session, app))
    if count >= MAX_ENDPOINTS_PER_APP:
        raise BadRequest(
            f"the app has {count} webhooks, the most it may have: delete one you no longer use"
        )
    endpoint = WebhookEndpoint(
        unique_id=str(uuid.uuid4()),
        app_pk=app.pk,
        url=url,
        events=",".join(check_events(events)),
        description=description,
        secret=new_secret(),
        base_url=base,
        created_at=utcnow(),
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def list_endpoints(session: Session, app: AppContext) -> list[WebhookEndpoint]:
    query = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.app_pk == app.pk)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return list(session.scalars(query))


def get_endpoint(session: Session, app: AppContext, unique_id: str) -> WebhookEndpoint:
    """The app's endpoint; another app's id is NotFound like an unknown one."""
    endpoint = None
    if is_lookup_key(unique_id):
        endpoint = session.scalar(
            select(WebhookEndpoint).where(
                WebhookEndpoint.unique_id == unique_id, WebhookEndpoint.app_pk == app.pk
            )
        )
    if endpoint is None:
        raise NotFound(f"no webhook with id {show(unique_id)}")
    return endpoint


def recent_deliveries(session: Session, endpoint: WebhookEndpoint) -> list[WebhookDelivery]:
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(RECENT_DELIVERIES)
    )
    return list(session.scalars(query))


def delete_endpoint(session: Session, app: AppContext, unique_id: str) -> WebhookEndpoint:
    """Deletes the endpoint and its deliveries (their jobs find nothing and stop)."""
    begin_write(session)
    endpoint = get_endpoint(session, app, unique_id)
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id))
    return endpoint


def queue_delivery(
    session: Session,
    settings: Settings,
    endpoint: WebhookEndpoint,
    app_ref: str,
    event: str,
    ended: Ended | None = None,
) -> WebhookDelivery:
    """A delivery of ``event`` to ``endpoint`` and its job, in the caller's transaction."""
    now = utcnow()
    data: dict[str, Any] = {"webhook_id": endpoint.unique_id}
    if ended is not None:  # read again at each try; this only if the record is gone
        data = ended.record or {"unique_id": ended.unique_id, "status": ended.status}
    delivery = WebhookDelivery(
        unique_id=new_message_id(),
        endpoint_id=endpoint.id,
        app_pk=endpoint.app_pk,
        event=event,
        record_kind=ended.kind if ended else "",
        record_id=ended.record_id if ended else None,
        data=orjson.dumps(data).decode() if data is not None else None,
        status=DeliveryStatus.PENDING,
        attempts=0,
        last_error="",
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(delivery)
    session.flush()
    _queue_job(session, settings, delivery, app_ref, now)
    return delivery


def _queue_job(
    session: Session, settings: Settings, delivery: WebhookDelivery, app_ref: str, now: datetime
) -> None:
    spec = JobSpec(
        kind=JOB_KIND,
        target_id=delivery.id,
        app_pk=delivery.app_pk,
        ref=delivery.unique_id,
        app_ref=app_ref,
        max_attempts=len(retry_delays(settings)) + 1,
        max_crashes=settings.job_max_crashes,
        run_after=now,
        resource=delivery.event,
    )
    enqueue(session, spec)


def queue_ping(
    session: Session, settings: Settings, app: AppContext, endpoint_id: str
) -> WebhookDelivery:
    """A ``ping`` to the endpoint (its test button)."""
    begin_write(session)
    endpoint = get_endpoint(session, app, endpoint_id)
    return queue_delivery(session, settings, endpoint, app.app_id, PING)


def queue_for_ended(executor: Session | Connection, settings: Settings, ended: Ended) -> int:
    """In the transaction that ended a record: a delivery for each of the app's
    endpoints that asked for this event. Returns how many were queued."""
    event = f"{ended.kind}.{ended.status}"
    if isinstance(executor, Connection):  # joins the connection's transaction
        with Session(bind=executor) as session:
            return _queue_for_ended(session, settings, ended, event)
    return _queue_for_ended(executor, settings, ended, event)


def _queue_for_ended(session: Session, settings: Settings, ended: Ended, event: str) -> int:
    endpoints = session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.app_pk == ended.app_pk)
    ).all()
    wanted = [e for e in endpoints if event in e.events.split(",")]
    if not wanted:
        return 0
    app_ref = session.scalar(select(App.app_id).where(App.id == ended.app_pk)) or ""
    for endpoint in wanted:
        queue_delivery(session, settings, endpoint, app_ref, event, ended)
    return len(wanted)


def retry_delivery(
    session: Session, settings: Settings, app: AppContext, endpoint_id: str, delivery_id: str
) -> WebhookDelivery:
    """Tries the delivery again now (same webhook-id), whatever its state; a pending
    try of it is replaced."""
    begin_write(session)
    endpoint = get_endpoint(session, app, endpoint_id)
    delivery = None
    if is_lookup_key(delivery_id):
        delivery = session.scalar(
            select(WebhookDelivery).where(
                WebhookDelivery.unique_id == delivery_id,
                WebhookDelivery.endpoint_id == endpoint.id,
            )
        )
    if delivery is None:
        raise NotFound(f"no delivery with id {show(delivery_id)} for this webhook")
    now = utcnow()
    cancel_jobs_for(session, JOB_KIND, delivery.id)
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = now
    delivery.updated_at = now
    _queue_job(session, settings, delivery, app.app_id, now)
    return delivery
