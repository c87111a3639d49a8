"""Webhooks through the real app (in process, its worker and webhook sender running) on
SQLite and PostgreSQL, delivering to a real HTTP receiver on 127.0.0.1.

Signatures are checked twice: by the Standard Webhooks recipe written out here (hmac
and base64 of the standard library), and by the ``standardwebhooks`` package.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from chatferry.db.engine import transaction
from chatferry.db.models import Job, WebhookEndpoint
from chatferry.runtime import Runtime
from chatferry.webhooks.addresses import Policy, refusal
from chatferry.webhooks.http import Outcome, post
from chatferry.webhooks.service import queue_delivery
from support.apps import NewApp
from support.exports import create_export, download, get_record, wait_finished
from support.http import API, EXPORTS, assert_error
from support.receiver import Receiver, serve_receiver
from support.rows import add_users
from support.tls import localhost_certificate
from support.waiting import wait_for
from support.webhooks import (
    WEBHOOKS,
    delivery_ends,
    finished_at,
    later,
    register,
    verify,
    webhook_state,
)

WEBHOOK_ENV = {
    "CHATFERRY_WEBHOOKS_ALLOW_HTTP": "true",
    "CHATFERRY_WEBHOOKS_ALLOW_PRIVATE": "true",
    "CHATFERRY_WEBHOOKS_RETRY_DELAYS": "0.2,0.2,0.2",
    "CHATFERRY_WEBHOOKS_TIMEOUT_SECONDS": "1",
    "CHATFERRY_EXPORT_BATCH_SIZE": "1",
}


@pytest.fixture
def extra_env() -> dict[str, str]:
    return WEBHOOK_ENV


def test_a_finished_export_is_delivered_signed_with_its_record(
    client: TestClient, new_app: NewApp, receiver: Receiver
) -> None:
    creds = new_app()
    webhook = register(client, creds, receiver.url())
    assert webhook["secret"].startswith("whsec_")
    assert len(base64.b64decode(webhook["secret"][6:])) == 32
    export = create_export(client, creds.headers, type="users")
    finished = wait_finished(client, creds.headers, export["unique_id"])
    (got,) = receiver.wait_for("/hooks")
    payload = verify(webhook["secret"], got)
    assert payload["type"] == "export.finished"
    datetime.fromisoformat(payload["timestamp"])
    data = payload["data"]
    assert {k: v for k, v in data.items() if k != "download_url"} == {
        k: v for k, v in finished.items() if k != "download_url"
    }
    assert data["download_url"]  # a fresh link that works
    download(client, {"download_url": data["download_url"]})
    assert got.headers["content-type"] == "application/json"
    delivered = delivery_ends(client, creds, webhook["id"], "delivered")
    assert delivered["event"] == "export.finished"
    assert delivered["id"] == got.headers["webhook-id"]
    assert (delivered["attempts"], delivered["last_status_code"]) == (1, 200)
    assert delivered["next_attempt_at"] == ""


def test_the_secret_is_shown_only_when_created(
    client: TestClient, new_app: NewApp, receiver: Receiver
) -> None:
    creds = new_app()
    webhook = register(client, creds, receiver.url())
    listed = client.get(WEBHOOKS, headers=creds.headers).json()["results"]["webhooks"]
    assert [w["id"] for w in listed] == [webhook["id"]]
    assert "secret" not in listed[0]
    one = webhook_state(client, creds, webhook["id"])
    assert "secret" not in one and one["url"] == receiver.url()
    assert one["events"] == ["export.finished", "ping"]


def test_a_failing_receiver_gets_the_same_webhook_id_until_it_answers(
    client: TestClient, new_app: NewApp, receiver: Receiver
) -> None:
    creds = new_app()
    receiver.answers = [500, 500]
    webhook = register(client, creds, receiver.url())
    response = client.post(f"{WEBHOOKS}/{webhook['id']}/test", headers=creds.headers)
    assert response.status_code == 200, response.text
    tries = receiver.wait_for("/hooks", 3)
    assert len({t.headers["webhook-id"] for t in tries}) == 1
    assert tries[0].headers["webhook-id"] == response.json()["results"]["delivery"]["id"]
    for got in tries:
        assert verify(webhook["secret"], got)["type"] == "ping"
    delivered = delivery_ends(client, creds, webhook["id"], "delivered")
    assert (delivered["attempts"], delivered["last_status_code"]) == (3, 200)


def test_a_delivery_out_of_tries_fails_and_a_retry_sends_it_again(
    client: TestClient, new_app: NewApp, receiver: Receiver
) -> None:
    creds = new_app()
    receiver.default = 503
    webhook = register(client, creds, receiver.url())
    client.post(f"{WEBHOOKS}/{webhook['id']}/test", headers=creds.headers)
    failed = delivery_ends(client, creds, webhook["id"], "failed")
    assert failed["attempts"] == 4  # the first try and three retries
    assert failed["last_status_code"] == 503
    assert "503" in failed["last_error"]
    receiver.default = 204
    retry = f"{WEBHOOKS}/{webhook['id']}/deliveries/{failed['id']}/retry"
    response = client.post(retry, headers=creds.headers)
    assert response.status_code == 200, response.text
    delivered = delivery_ends(client, creds, webhook["id"], "delivered")
    assert (delivered["id"], delivered["attempts"]) == (failed["id"], 5)
    assert {t.headers["webhook-id"] for t in receiver.on("/hooks")} == {failed["id"]}


def test_a_slow_receiver_times_out_without_holding_other_deliveries(
    client: TestClient, new_app: NewApp, receiver: Receiver
) -> None:
    """Five pings to a receiver that never answers in time: four hang (an app's share of
    the sender, CHATFERRY_WEBHOOKS_PER_APP), the fifth waits its turn; meanwhile another
    app's delivery and an export go through at once. Each slow try ends after the 1 s
    timeout of this test (10 s by default) and is retried later."""
    slow_app, fast_app = new_app(), new_app()
    slow = register(client, slow_app, receiver.url("/slow"))
    fast = register(client, fast_app, receiver.url("/fast"), ["ping"])
    for _ in range(5):
        client.post(f"{WEBHOOKS}/{slow['id']}/test", headers=slow_app.headers)
    receiver.wait_for("/slow", 4)
    sent = time.time()
    assert len(receiver.on("/slow")) == 4
    client.post(f"{WEBHOOKS}/{fast['id']}/test", headers=fast_app.headers)
    export = create_export(client, fast_app.headers, type="users")
    (got,) = receiver.wait_for("/fast")
    assert got.at - sent < 0.5  # while the slow ones still hang
    wait_finished(client, fast_app.headers, export["unique_id"], timeout=0.9)

    def all_timed_out() -> list[dict[str, Any]] | None:
        deliveries = webhook_state(client, slow_app, slow["id"])["deliveries"]
        done = all(d["attempts"] >= 1 for d in deliveries)
        return deliveries if done else None

    for delivery in wait_for(all_timed_out, timeout=15):
        assert delivery["last_error"] == "no answer within 1 s", delivery
        assert delivery["last_status_code"] is None and delivery["status"] == "pending"


def test_webhooks_of_another_app_are_not_found(
    client: TestClient, new_app: NewApp, receiver: Receiver
) -> None:
    owner, other = new_app(), new_app()
    webhook = register(client, owner, receiver.url())
    client.post(f"{WEBHOOKS}/{webhook['id']}/test", headers=owner.headers)
    delivery = delivery_ends(client, owner, webhook["id"], "delivered")
    base = f"{WEBHOOKS}/{webhook['id']}"
    for method, path in (
        ("GET", base),
        ("DELETE", base),
        ("POST", f"{base}/test"),
        ("POST", f"{base}/deliveries/{delivery['id']}/retry"),
    ):
        response = client.request(method, path, headers=other.headers)
        assert_error(response, 404, "no webhook")
    assert client.get(WEBHOOKS, headers=other.headers).json()["results"]["webhooks"] == []
    # The other app's export ends: nothing goes to the owner's endpoint.
    create_export(client, other.headers, type="users")
    export = create_export(client, owner.headers, type="users")
    wait_finished(client, owner.headers, export["unique_id"])
    delivery_ends(client, owner, webhook["id"], "delivered")
    events = [orjson.loads(r.body)["data"].get("unique_id") for r in receiver.on("/hooks")]
    assert export["unique_id"] in events and len(events) == 2  # the ping and its export


def test_deleting_a_running_export_sends_export_cancelled(
    client: TestClient, new_app: NewApp, receiver: Receiver, runtime: Runtime
) -> None:
    creds = new_app()
    webhook = register(client, creds, receiver.url(), ["export.cancelled", "export.finished"])
    export = create_export(client, creds.headers, type="users", run_at=later())
    response = client.delete(f"{EXPORTS}/{export['unique_id']}", headers=creds.headers)
    assert response.status_code == 200
    (got,) = receiver.wait_for("/hooks")
    payload = verify(webhook["secret"], got)
    assert payload["type"] == "export.cancelled"
    assert payload["data"] == response.json()["results"]["backup_history"]
    assert payload["data"]["status"] == "cancelled"


def test_a_deleted_webhook_gets_nothing_more(
    client: TestClient, new_app: NewApp, receiver: Receiver
) -> None:
    creds = new_app()
    webhook = register(client, creds, receiver.url())
    response = client.delete(f"{WEBHOOKS}/{webhook['id']}", headers=creds.headers)
    assert response.status_code == 200
    assert_error(client.get(f"{WEBHOOKS}/{webhook['id']}", headers=creds.headers), 404)
    export = create_export(client, creds.headers, type="users")
    wait_finished(client, creds.headers, export["unique_id"])
    assert receiver.on("/hooks") == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"url": "ftp://example.com/x", "events": ["ping"]}, "https://"),
        ({"url": "http://127.0.0.1/x", "events": ["nope"]}, "unknown: 'nope'"),
        ({"url": "http://127.0.0.1/x", "events": []}, "events"),
        ({"url": "http://nothing.invalid/x", "events": ["ping"]}, "could not be resolved"),
        ({"events": ["ping"]}, "url is required"),
    ],
)
def test_bad_registrations_are_refused(
    client: TestClient, new_app: NewApp, body: dict[str, Any], fragment: str
) -> None:
    creds = new_app()
    assert_error(client.post(WEBHOOKS, json=body, headers=creds.headers), 400, fragment)
    assert client.get(WEBHOOKS, headers=creds.headers).json()["results"]["webhooks"] == []


def test_the_openapi_document_has_the_webhooks(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"post", "get"} <= set(paths["/api/v2.1/rest/webhooks"])
    assert {"get", "delete"} <= set(paths["/api/v2.1/rest/webhooks/{webhook_id}"])
    assert "post" in paths["/api/v2.1/rest/webhooks/{webhook_id}/test"]
    retry = "/api/v2.1/rest/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"
    assert "post" in paths[retry]
    wait = [p["name"] for p in paths["/api/v2.1/rest/exports/{unique_id}"]["get"]["parameters"]]
    assert "wait" in wait


# The wait parameter -----------------------------------------------------------------


# The reread that covers a worker in another process is pushed past the wait, so only
# the job's event can answer it; half a second leaves room for a loaded CI machine (the
# answer comes 5-20 ms after the end on a quiet one).
@pytest.mark.parametrize(
    "extra_env",
    [
        {
            **WEBHOOK_ENV,
            "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.1",
            "CHATFERRY_WAIT_POLL_SECONDS": "60",
        }
    ],
)
def test_a_wait_is_answered_by_the_end_itself_not_a_poll(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC)] * 5)
    export = create_export(client, creds.headers, type="users")
    started = time.monotonic()
    response = client.get(f"{EXPORTS}/{export['unique_id']}?wait=30", headers=creds.headers)
    answered = time.time()
    assert response.status_code == 200, response.text
    record = response.json()["results"]["backup_history"]
    assert record["status"] == "finished" and record["total_rows"] == 5
    assert time.monotonic() - started >= 0.3  # it did wait for the export
    assert answered - finished_at(runtime, export["unique_id"]) < 0.5


def test_a_wait_on_an_ended_record_answers_at_once(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    export = create_export(client, creds.headers, type="users")
    wait_finished(client, creds.headers, export["unique_id"])
    started = time.monotonic()
    response = client.get(f"{EXPORTS}/{export['unique_id']}?wait=60", headers=creds.headers)
    assert time.monotonic() - started < 0.5
    assert response.json()["results"]["backup_history"] == get_record(
        client, creds.headers, export["unique_id"]
    ) | {"download_url": response.json()["results"]["backup_history"]["download_url"]}


def test_a_wait_ends_after_its_seconds_with_the_record_as_it_is(
    client: TestClient, new_app: NewApp
) -> None:
    creds = new_app()
    export = create_export(client, creds.headers, type="users", run_at=later())
    started = time.monotonic()
    response = client.get(f"{EXPORTS}/{export['unique_id']}?wait=0.5", headers=creds.headers)
    assert 0.5 <= time.monotonic() - started < 2
    assert response.json()["results"]["backup_history"]["status"] == "scheduled"


def test_a_wait_on_an_import_answers_when_it_ends(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    rows = [{"Email": "a@example.com", "Name": "A", "Password": "pw"}]
    files = {"file": ("users.json", orjson.dumps(rows), "application/json")}
    response = client.post(
        f"{API}/imports", data={"type": "users"}, files=files, headers=creds.headers
    )
    assert response.status_code == 200, response.text
    unique_id = response.json()["results"]["backup_history"]["unique_id"]
    waited = client.get(f"{API}/imports/{unique_id}?wait=30", headers=creds.headers)
    assert waited.json()["results"]["backup_history"]["status"] == "finished"


@pytest.mark.parametrize("value", ["abc", "61", "-1", "nan", ""])
def test_bad_waits_are_refused(client: TestClient, new_app: NewApp, value: str) -> None:
    creds = new_app()
    export = create_export(client, creds.headers, type="users")
    for kind in ("exports", "imports"):
        response = client.get(
            f"{API}/{kind}/{export['unique_id']}?wait={value}", headers=creds.headers
        )
        assert_error(response, 400, "wait is a number of seconds from 0 to 60")


def test_a_wait_on_another_apps_export_is_not_found(client: TestClient, new_app: NewApp) -> None:
    owner, other = new_app(), new_app()
    export = create_export(client, owner.headers, type="users")
    response = client.get(f"{EXPORTS}/{export['unique_id']}?wait=5", headers=other.headers)
    assert_error(response, 404)


def test_the_receiver_helper_is_real(receiver: Receiver) -> None:
    """The receiver answers over real HTTP (what every test above relies on)."""
    receiver.answers = [418]
    assert httpx.post(receiver.url("/x"), content=b"{}").status_code == 418
    assert receiver.wait_for("/x")[0].body == b"{}"


# No requests into the operator's network ----------------------------------------------

PRIVATE_URLS = [
    "http://localhost:8080/x",
    "http://127.0.0.2/x",
    "http://10.1.2.3/x",
    "http://172.16.0.1/x",
    "http://192.168.1.1/x",
    "http://169.254.169.254/latest/meta-data",
    "http://100.64.0.1/x",
    "http://224.0.0.1/x",
    "http://240.0.0.1/x",
    "http://0.0.0.0/x",
    "http://[::1]/x",
    "http://[fe80::1]/x",
    "http://[fc00::1]/x",
    "http://[::ffff:127.0.0.1]/x",
]


@pytest.mark.parametrize("extra_env", [{"CHATFERRY_WEBHOOKS_ALLOW_HTTP": "true"}])
def test_private_addresses_are_refused_without_the_setting(
    client: TestClient, new_app: NewApp
) -> None:
    creds = new_app()
    for url in PRIVATE_URLS:
        response = client.post(
            WEBHOOKS, json={"url": url, "events": ["ping"]}, headers=creds.headers
        )
        assert_error(response, 400, "public addresses only", "CHATFERRY_WEBHOOKS_ALLOW_PRIVATE")
    assert client.get(WEBHOOKS, headers=creds.headers).json()["results"]["webhooks"] == []


@pytest.mark.parametrize("extra_env", [{}])
def test_plain_http_is_refused_without_the_setting(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    body = {"url": "http://example.com/hooks", "events": ["ping"]}
    response = client.post(WEBHOOKS, json=body, headers=creds.headers)
    assert_error(response, 400, "https://", "CHATFERRY_WEBHOOKS_ALLOW_HTTP")


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/hooks", "http://localhost:{port}/hooks"])
def test_each_delivery_checks_the_address_it_connects_to(receiver: Receiver, url: str) -> None:
    """A name that resolves to a private address by the time of a delivery (DNS
    rebinding, or an endpoint registered while private addresses were allowed) is
    refused at the delivery, before any connection."""

    async def deliver(policy: Policy) -> Outcome:
        async with httpx.AsyncClient() as http:
            target = url.format(port=receiver.port)
            return await post(http, target, b"{}", {}, policy, timeout=2)

    refused = asyncio.run(deliver(Policy(allow_http=True, allow_private=False)))
    assert refused.status_code is None and "loopback" in refused.error
    assert receiver.on("/hooks") == []
    allowed = asyncio.run(deliver(Policy(allow_http=True, allow_private=True)))
    assert allowed.delivered
    (got,) = receiver.on("/hooks")
    assert got.headers["host"] == f"{urlsplit(url).hostname}:{receiver.port}"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("100.127.255.255", False),
        ("198.18.0.1", False),
        ("255.255.255.255", False),
        ("ff02::1", False),
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert (refusal(ipaddress.ip_address(address)) is None) is public


def test_a_delivery_whose_sender_keeps_dying_ends_failed(
    client: TestClient, new_app: NewApp, receiver: Receiver, runtime: Runtime
) -> None:
    """The reaper gives a delivery's job up after its crash budget (a process that died
    while sending it, each time): the delivery is shown failed, with why."""
    creds = new_app()
    webhook = register(client, creds, receiver.url())
    with transaction(runtime.sessions) as session:
        endpoint = session.scalar(
            select(WebhookEndpoint).where(WebhookEndpoint.unique_id == webhook["id"])
        )
        assert endpoint is not None
        delivery = queue_delivery(session, runtime.settings, endpoint, creds.app_id, "ping")
        session.execute(  # as if a sender had claimed it and died, for the last time
            update(Job)
            .where(Job.kind == "webhook", Job.target_id == delivery.id)
            .values(
                status="running",
                lease_owner="gone:1:webhooks",
                lease_expires_at=datetime.now(UTC) - timedelta(seconds=1),
                crashes=Job.max_crashes - 1,
            )
        )
    failed = delivery_ends(client, creds, webhook["id"], "failed")
    assert "the sender stopped while trying it" in failed["last_error"]
    assert receiver.on("/hooks") == []


def test_an_https_delivery_pins_the_checked_address_and_verifies_the_host_name(
    receiver: Receiver, tmp_path: Path
) -> None:
    """The sender connects to the address it checked, yet TLS still names the URL's host
    (SNI) and the certificate is verified against it: a certificate for ``localhost``
    serves https://localhost:PORT, and the same server reached by its bare address
    fails verification."""
    certificate = localhost_certificate(tmp_path)
    with serve_receiver(Receiver(), certificate.server()) as tls:
        trusted = certificate.trusted()
        policy = Policy(allow_http=False, allow_private=True)

        async def deliver(url: str) -> Outcome:
            async with httpx.AsyncClient(verify=trusted) as http:
                return await post(http, url, b"{}", {}, policy, timeout=5)

        named = asyncio.run(deliver(f"https://localhost:{tls.port}/hooks"))
        assert named.delivered, named
        (got,) = tls.on("/hooks")
        assert got.headers["host"] == f"localhost:{tls.port}"
        bare = asyncio.run(deliver(f"https://127.0.0.1:{tls.port}/hooks"))
        assert not bare.delivered and "could not connect" in bare.error, bare
        assert len(tls.on("/hooks")) == 1


@pytest.mark.parametrize("extra_env", [{**WEBHOOK_ENV, "CHATFERRY_WAIT_MAX_SECONDS": "0.3"}])
def test_the_operator_may_cut_waits_short(client: TestClient, new_app: NewApp) -> None:
    """CHATFERRY_WAIT_MAX_SECONDS (under a proxy's read timeout) cuts a longer wait."""
    creds = new_app()
    export = create_export(client, creds.headers, type="users", run_at=later())
    started = time.monotonic()
    response = client.get(f"{EXPORTS}/{export['unique_id']}?wait=60", headers=creds.headers)
    assert 0.3 <= time.monotonic() - started < 1.5
    assert response.json()["results"]["backup_history"]["status"] == "scheduled"
