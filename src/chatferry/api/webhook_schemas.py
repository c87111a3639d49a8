"""The webhook answers, for the OpenAPI document (see schemas.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from chatferry.api.schemas import Envelope


class Delivery(BaseModel):
    id: str = Field(description="The webhook-id header of every try of this delivery.")
    event: str
    status: str = Field(description="pending, delivered or failed.")
    attempts: int = Field(ge=0)
    last_status_code: int | None = Field(description="The receiver's last HTTP status.")
    last_error: str
    next_attempt_at: str = Field(description='RFC 3339, or "" when no try is due.')
    created_at: str
    updated_at: str


class Webhook(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str
    created_at: str


class NewWebhook(Webhook):
    secret: str = Field(description="whsec_<base64>: shown only once, in this answer.")


class WebhookWithDeliveries(Webhook):
    deliveries: list[Delivery] = Field(default_factory=list)


class NewWebhookResults(BaseModel):
    webhook: NewWebhook


class OneWebhookResults(BaseModel):
    webhook: WebhookWithDeliveries


class WebhookListResults(BaseModel):
    webhooks: list[Webhook]


class OneDeliveryResults(BaseModel):
    delivery: Delivery


NewWebhookEnvelope = Envelope[NewWebhookResults]
OneWebhookEnvelope = Envelope[OneWebhookResults]
WebhookListEnvelope = Envelope[WebhookListResults]
OneDeliveryEnvelope = Envelope[OneDeliveryResults]
