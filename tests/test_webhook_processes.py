"""Webhooks and waits through real ``chatferry serve`` and ``worker`` processes."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import httpx
import pytest

from chatferry.client.config import Connection
from chatferry.client.exports import create_export as create_export_record
from chatferry.client.exports import wait_for_export
from chatferry.client.http import Api
from chatferry.runtime import Runtime
from client_helpers import assert_one_line_error, client_env, run_client, run_client_json
from support.apps import NewApp
from support.exports import create_export, wait_finished
from support.http import EXPORTS
from support.receiver import Receiver, serve_receiver
from support.rows import add_users
from support.servers import StartServer, StartWorker, free_port
from support.waiting import wait_for
from support.webhooks import delivery_ends, finished_at, register, verify, webhook_state

pytestmark = pytest.mark.slow

WEBHOOK_ENV = {
    "CHATFERRY_WEBHOOKS_ALLOW_HTTP": "true",
    "CHATFERRY_WEBHOOKS_ALLOW_PRIVATE": "true",
    "CHATFERRY_WEBHOOKS_RETRY_DELAYS": "0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3",
    "CHATFERRY_WEBHOOKS_TIMEOUT_SECONDS": "2",
    "CHATFERRY_EXPORT_BATCH_SIZE": "1",
    "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.1",
    "CHATFERRY_WAIT_POLL_SECONDS": "0.3",
}


@pytest.fixture
def extra_env() -> dict[str, str]:
    return WEBHOOK_ENV


def test_a_receiver_down_during_a_restart_still_gets_its_delivery(
    start_server: StartServer, new_app: NewApp
) -> None:
    creds = new_app()
    port = free_port()
    receiver = Receiver(port=port)
    server = start_server()
    webhook = register(server.http, creds, receiver.url())
    export = create_export(server.http, creds.headers, type="users")
    wait_finished(server.http, creds.headers, export["unique_id"])
    tried = wait_for(
        lambda: (
            (webhook_state(server.http, creds, webhook["id"])["deliveries"] or [{}])[0]
            .get("last_error", "")
            .startswith("could not connect")
        ),
        timeout=15,
    )
    assert tried
    server.stop()
    with serve_receiver(receiver):
        again = start_server()
        (got,) = receiver.wait_for("/hooks", timeout=20)
        payload = verify(webhook["secret"], got)
        assert (payload["type"], payload["data"]["unique_id"]) == (
            "export.finished",
            export["unique_id"],
        )
        delivered = delivery_ends(again.http, creds, webhook["id"], "delivered")
        assert delivered["id"] == got.headers["webhook-id"]
        assert delivered["attempts"] >= 2


def _timed_wait(http: httpx.Client, headers: dict[str, str], unique_id: str) -> float:
    """Waits for the export through ``?wait=30``; returns when the answer came."""
    response = http.get(f"{EXPORTS}/{unique_id}?wait=30", headers=headers)
    answered = time.time()
    assert response.status_code == 200, response.text
    assert response.json()["results"]["backup_history"]["status"] == "finished"
    return answered


def test_a_wait_through_separate_processes_answers_at_the_end(
    start_server: StartServer,
    start_worker: StartWorker,
    new_app: NewApp,
    runtime: Runtime,
    receiver: Receiver,
) -> None:
    """API and worker in two processes: on PostgreSQL the NOTIFY wakes the wait within
    100 ms of finished_at; on SQLite the documented fallback reread (0.3 s here) does."""
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC)] * 4)
    server = start_server(None, "--no-worker")
    start_worker()
    webhook = register(server.http, creds, receiver.url(), ["export.finished"])
    export = create_export(server.http, creds.headers, type="users")
    answered = _timed_wait(server.http, creds.headers, export["unique_id"])
    late = answered - finished_at(runtime, export["unique_id"])
    postgres = runtime.engine.dialect.name == "postgresql"
    assert late < (0.1 if postgres else 0.3 + 0.1), late
    (got,) = receiver.wait_for("/hooks")
    assert verify(webhook["secret"], got)["data"]["status"] == "finished"


def test_the_client_waits_with_the_server_and_the_cli_manages_webhooks(
    start_server: StartServer, new_app: NewApp, runtime: Runtime, receiver: Receiver
) -> None:
    """The client's --wait asks with ?wait= (a few requests, not a poll every second),
    and ``chatferry webhooks`` adds, lists, tests, shows and deletes."""
    creds = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC)] * 8)  # about a second to export
    server = start_server()
    asked: list[httpx.URL] = []
    with Api(Connection(server.base_url, creds.app_id, creds.secret)) as api:
        api._http.event_hooks["request"].append(lambda request: asked.append(request.url))
        record = create_export_record(api, "users")
        finished = wait_for_export(api, record["unique_id"])
    assert finished["status"] == "finished" and finished["total_rows"] == 8
    gets = [url for url in asked if url.path.endswith(record["unique_id"])]
    assert gets and all(url.params.get("wait") == "5" for url in gets), gets
    assert len(gets) <= 2

    env = client_env(dict(os.environ), server.base_url, creds.app_id, creds.secret)
    added = run_client_json(
        env, "webhooks", "add", "--url", receiver.url(), "--event", "ping", "--event",
        "export.failed", "--description", "ops",
    )  # fmt: skip
    assert added["secret"].startswith("whsec_") and added["events"] == ["ping", "export.failed"]
    assert [w["id"] for w in run_client_json(env, "webhooks", "list")] == [added["id"]]
    ping = run_client_json(env, "webhooks", "test", added["id"])
    (got,) = receiver.wait_for("/hooks")
    assert verify(added["secret"], got)["type"] == "ping"
    assert got.headers["webhook-id"] == ping["id"]
    shown = wait_for(
        lambda: (
            (s := run_client_json(env, "webhooks", "get", added["id"]))["deliveries"][0]["status"]
            == "delivered"
            and s
        )
    )
    assert "secret" not in shown
    human = run_client(env, "webhooks", "get", added["id"])
    assert human.returncode == 0 and "recent deliveries" in human.stdout
    run_client_json(env, "webhooks", "delete", added["id"])
    gone = run_client(env, "webhooks", "get", added["id"])
    assert_one_line_error(gone, 1, "no webhook")
