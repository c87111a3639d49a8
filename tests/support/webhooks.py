"""Webhooks and waits for tests: register an endpoint, verify a delivery's signature
(the Standard Webhooks recipe written out here, then the ``standardwebhooks`` package),
follow a delivery's state, read an export's exact finished_at.

``client`` is the in-process ``TestClient`` or a real server's ``ServerProcess.http``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from chatferry.runtime import Runtime
from support.apps import Credentials
from support.http import API
from support.receiver import Received
from support.waiting import wait_for

WEBHOOKS = f"{API}/webhooks"


def later() -> str:
    """A run_at in two days: the export waits, ``scheduled``."""
    return (datetime.now(UTC) + timedelta(days=2)).isoformat()


def register(
    client: httpx.Client, creds: Credentials, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    body = {"url": url, "events": events or ["export.finished", "ping"], "description": "t"}
    response = client.post(WEBHOOKS, json=body, headers=creds.headers)
    assert response.status_code == 200, response.text
    webhook: dict[str, Any] = response.json()["results"]["webhook"]
    return webhook


def verify(secret: str, got: Received) -> dict[str, Any]:
    """The Standard Webhooks check, written from the specification; then the library's."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{got.headers['webhook-id']}.{got.headers['webhook-timestamp']}.".encode()
    digest = hmac.new(key, signed + got.body, hashlib.sha256).digest()
    assert got.headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    payload: dict[str, Any] = Webhook(secret).verify(got.body, got.headers)
    assert payload == orjson.loads(got.body)
    return payload


def webhook_state(client: httpx.Client, creds: Credentials, webhook_id: str) -> dict[str, Any]:
    response = client.get(f"{WEBHOOKS}/{webhook_id}", headers=creds.headers)
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()["results"]["webhook"]
    return state


def delivery_ends(
    client: httpx.Client, creds: Credentials, webhook_id: str, status: str
) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        deliveries = webhook_state(client, creds, webhook_id)["deliveries"]
        return deliveries[0] if deliveries and deliveries[0]["status"] == status else None

    found: dict[str, Any] = wait_for(ended, timeout=15)
    return found


def finished_at(runtime: Runtime, unique_id: str) -> float:
    """The export's finished_at as stored (microseconds), as Unix time."""
    with runtime.engine.connect() as conn:
        value = conn.exec_driver_sql(
            "SELECT finished_at FROM exports WHERE unique_id = :u"
            if runtime.engine.dialect.name == "sqlite"
            else "SELECT finished_at FROM exports WHERE unique_id = %(u)s",
            {"u": unique_id},
        ).scalar()
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=value.tzinfo or UTC).timestamp()
