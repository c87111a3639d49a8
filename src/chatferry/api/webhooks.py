"""Webhooks (an extension): per-app endpoints, their deliveries, a test ping, a retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from chatferry.api.body import json_body, request_doc
from chatferry.api.deps import CurrentApp, RuntimeDep, base_url
from chatferry.api.responses import ok
from chatferry.api.schemas import errors
from chatferry.api.webhook_schemas import (
    NewWebhookEnvelope,
    OneDeliveryEnvelope,
    OneWebhookEnvelope,
    WebhookListEnvelope,
)
from chatferry.apps.service import AppContext
from chatferry.clock import rfc3339_in_zone
from chatferry.db.engine import reading, transaction
from chatferry.db.models import WebhookDelivery, WebhookEndpoint
from chatferry.jobs.events import WEBHOOKS_DUE, send_event
from chatferry.webhooks import service
from chatferry.webhooks.addresses import Policy, check_registration
from chatferry.webhooks.requests import WebhookRequest

router = APIRouter(prefix="/api/v2.1/rest", tags=["webhooks"])

_EXAMPLE = '{"url": "https://example.com/hooks", "events": ["export.finished"]}'
WebhookBody = Annotated[WebhookRequest, Depends(json_body(WebhookRequest, _EXAMPLE))]


def _moment(value: Any, app: AppContext) -> str:
    return rfc3339_in_zone(value, app.timezone) if value else ""


def endpoint_record(endpoint: WebhookEndpoint, app: AppContext) -> dict[str, Any]:
    return {
        "id": endpoint.unique_id,
        "url": endpoint.url,
        "events": endpoint.events.split(","),
        "description": endpoint.description,
        "created_at": _moment(endpoint.created_at, app),
    }


def delivery_record(delivery: WebhookDelivery, app: AppContext) -> dict[str, Any]:
    return {
        "id": delivery.unique_id,
        "event": delivery.event,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "next_attempt_at": _moment(delivery.next_attempt_at, app),
        "created_at": _moment(delivery.created_at, app),
        "updated_at": _moment(delivery.updated_at, app),
    }


@router.post(
    "/webhooks",
    summary="Register a webhook (extension)",
    description=(
        "`results.webhook` is the endpoint with its `secret` (`whsec_...`), shown only "
        "in this answer: keep it to verify signatures. Refused with 400 for a URL that "
        "is not https:// or whose host resolves to a private address."
    ),
    response_model=NewWebhookEnvelope,
    responses=errors(400, 401, 413, 429),
    openapi_extra=request_doc(
        WebhookRequest,
        {"export": {"url": "https://example.com/hooks", "events": ["export.finished"]}},
    ),
)
def create_webhook(
    request: Request, app: CurrentApp, body: WebhookBody, rt: RuntimeDep
) -> Response:
    service.check_events(body.events)
    check_registration(body.url, Policy.of(rt.settings))
    with transaction(rt.sessions) as session:
        endpoint = service.create_endpoint(
            session, app, body.url, body.events, body.description, base_url(request)
        )
        record = {**endpoint_record(endpoint, app), "secret": endpoint.secret}
    return ok({"webhook": record})


@router.get(
    "/webhooks",
    summary="List webhooks (extension)",
    description="`results.webhooks`: the app's endpoints, oldest first (no secrets).",
    response_model=WebhookListEnvelope,
    responses=errors(401, 429),
)
def list_webhooks(app: CurrentApp, rt: RuntimeDep) -> Response:
    with reading(rt.engine) as session:
        records = [endpoint_record(e, app) for e in service.list_endpoints(session, app)]
    return ok({"webhooks": records})


@router.get(
    "/webhooks/{webhook_id}",
    summary="Get a webhook with its recent deliveries (extension)",
    description="`results.webhook.deliveries`: the 20 newest, each with its state.",
    response_model=OneWebhookEnvelope,
    responses=errors(401, 404, 429),
)
def get_webhook(webhook_id: str, app: CurrentApp, rt: RuntimeDep) -> Response:
    with reading(rt.engine) as session:
        endpoint = service.get_endpoint(session, app, webhook_id)
        deliveries = service.recent_deliveries(session, endpoint)
        record = endpoint_record(endpoint, app)
        record["deliveries"] = [delivery_record(d, app) for d in deliveries]
    return ok({"webhook": record})


@router.delete(
    "/webhooks/{webhook_id}",
    summary="Delete a webhook (extension)",
    description="Deletes the endpoint and its deliveries; none is sent after this.",
    response_model=OneWebhookEnvelope,
    responses=errors(401, 404, 429),
)
def delete_webhook(webhook_id: str, app: CurrentApp, rt: RuntimeDep) -> Response:
    with transaction(rt.sessions) as session:
        endpoint = service.delete_endpoint(session, app, webhook_id)
        record = endpoint_record(endpoint, app)
    return ok({"webhook": record})


def _queued(session: Any, delivery: WebhookDelivery) -> None:
    """Tells the webhook senders of every process that a delivery is due (PostgreSQL;
    the caller wakes its own process's sender after committing)."""
    send_event(session, WEBHOOKS_DUE)


@router.post(
    "/webhooks/{webhook_id}/test",
    summary="Send a test ping (extension)",
    description="Queues a `ping` delivery to the endpoint; `results.delivery` is it.",
    response_model=OneDeliveryEnvelope,
    responses=errors(401, 404, 429),
)
async def test_webhook(webhook_id: str, app: CurrentApp, rt: RuntimeDep) -> Response:
    def queue() -> dict[str, Any]:
        with transaction(rt.sessions) as session:
            delivery = service.queue_ping(session, rt.settings, app, webhook_id)
            _queued(session, delivery)
            record = delivery_record(delivery, app)
        rt.events.publish(WEBHOOKS_DUE)
        return {"delivery": record}

    return ok(await run_in_threadpool(queue))


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
    summary="Try a delivery again now (extension)",
    description="Same `webhook-id`, a fresh signature; its schedule of retries starts over.",
    response_model=OneDeliveryEnvelope,
    responses=errors(401, 404, 429),
)
async def retry_delivery(
    webhook_id: str, delivery_id: str, app: CurrentApp, rt: RuntimeDep
) -> Response:
    def retry() -> dict[str, Any]:
        with transaction(rt.sessions) as session:
            delivery = service.retry_delivery(session, rt.settings, app, webhook_id, delivery_id)
            _queued(session, delivery)
            record = delivery_record(delivery, app)
        rt.events.publish(WEBHOOKS_DUE)
        return {"delivery": record}

    return ok(await run_in_threadpool(retry))
