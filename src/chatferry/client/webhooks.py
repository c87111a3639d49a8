"""Webhooks (``/webhooks``), a chatferry extension of the API."""

from __future__ import annotations

from urllib.parse import quote

from chatferry.client.errors import ClientError
from chatferry.client.http import Api
from chatferry.client.records import Record

PATH = "/webhooks"


def _check(api: Api) -> None:
    if not api.has_extensions():
        raise ClientError(
            f"the server at {api.server} has no webhooks (/webhooks is a chatferry "
            "extension of the API)"
        )


def _one(webhook_id: str) -> str:
    return f"{PATH}/{quote(webhook_id, safe='')}"


def add_webhook(api: Api, url: str, events: list[str], description: str = "") -> Record:
    """Registers an endpoint; the answer holds its secret, shown this once."""
    _check(api)
    body = {"url": url, "events": events, "description": description}
    record: Record = api.call("POST", PATH, json=body)["webhook"]
    return record


def list_webhooks(api: Api) -> list[Record]:
    _check(api)
    records = api.call("GET", PATH)["webhooks"]
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def get_webhook(api: Api, webhook_id: str) -> Record:
    """The endpoint with its recent deliveries."""
    _check(api)
    record: Record = api.call("GET", _one(webhook_id))["webhook"]
    return record


def delete_webhook(api: Api, webhook_id: str) -> Record:
    _check(api)
    record: Record = api.call("DELETE", _one(webhook_id))["webhook"]
    return record


def test_webhook(api: Api, webhook_id: str) -> Record:
    """Queues a ping; returns its delivery."""
    _check(api)
    record: Record = api.call("POST", f"{_one(webhook_id)}/test")["delivery"]
    return record


def retry_delivery(api: Api, webhook_id: str, delivery_id: str) -> Record:
    _check(api)
    path = f"{_one(webhook_id)}/deliveries/{quote(delivery_id, safe='')}/retry"
    record: Record = api.call("POST", path)["delivery"]
    return record
