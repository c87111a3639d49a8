"""The console's Webhooks page and its waits, in headless Chromium against a real
``chatferry serve`` (the browser support of support/browser.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import expect

from support.apps import Credentials
from support.browser import go_to, row, sign_in, snap
from support.receiver import Receiver
from support.rows import add_users
from support.webhooks import verify

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


@pytest.fixture
def extra_env() -> dict[str, str]:
    return {
        "CHATFERRY_WEBHOOKS_ALLOW_HTTP": "true",
        "CHATFERRY_WEBHOOKS_ALLOW_PRIVATE": "true",
        "CHATFERRY_WEBHOOKS_RETRY_DELAYS": "0.2",
        "CHATFERRY_EXPORT_BATCH_SIZE": "1",
        "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.3",
    }


def test_webhooks_page_adds_tests_shows_deliveries_and_retries(
    start_server: Any, open_console: Any, new_app: Any, receiver: Receiver
) -> None:
    creds: Credentials = new_app()
    server = start_server()
    console = open_console(server)
    page = console.page
    sign_in(console, creds)
    go_to(page, "Webhooks")
    page.get_by_label("URL").fill(receiver.url())
    page.get_by_label("ping").check()
    page.get_by_role("button", name="Add webhook").click()
    secret = page.locator("#webhook-secret-value")
    expect(secret).to_contain_text("whsec_")
    listed = console.api(creds, "GET", "/webhooks")["results"]["webhooks"]
    assert [w["url"] for w in listed] == [receiver.url()]
    webhook_id = listed[0]["id"]
    expect(row(page, "webhooks-table", webhook_id)).to_have_count(1)
    snap(page, "20-webhook-added")

    receiver.answers = [500, 500]  # the ping fails both of its tries
    row(page, "webhooks-table", webhook_id).get_by_role("button", name="Test").click()
    failed = page.locator("#webhook-deliveries-table tbody tr[data-status='failed']")
    expect(failed).to_have_count(1, timeout=15_000)
    expect(failed.locator("td[data-label='Last answer']")).to_have_text("HTTP 500")
    snap(page, "21-webhook-delivery-failed")
    failed.get_by_role("button", name="Retry").click()
    delivered = page.locator("#webhook-deliveries-table tbody tr[data-status='delivered']")
    expect(delivered).to_have_count(1, timeout=15_000)
    tries = receiver.on("/hooks")
    assert len(tries) == 3 and len({t.headers["webhook-id"] for t in tries}) == 1
    assert verify(secret.inner_text(), tries[-1])["type"] == "ping"
    snap(page, "22-webhook-delivered")

    page.once("dialog", lambda dialog: dialog.accept())
    row(page, "webhooks-table", webhook_id).get_by_role("button", name="Delete").click()
    expect(row(page, "webhooks-table", webhook_id)).to_have_count(0)
    assert console.api(creds, "GET", "/webhooks")["results"]["webhooks"] == []


def test_a_finished_export_shows_at_once_through_a_wait(
    start_server: Any, open_console: Any, new_app: Any, runtime: Any
) -> None:
    creds: Credentials = new_app()
    add_users(runtime, creds.app_id, [datetime.now(UTC)] * 6)  # about 2 s to export
    server = start_server()
    console = open_console(server)
    page = console.page
    sign_in(console, creds)
    go_to(page, "Exports")
    page.locator("#export-type").select_option("users")
    page.get_by_role("button", name="Create export").click()
    started = page.locator("#exports-table tbody tr[data-status='started']")
    expect(started).to_have_count(1)
    unique_id = started.get_attribute("data-id")
    finished = row(page, "exports-table", unique_id)
    expect(finished).to_have_attribute("data-status", "finished", timeout=15_000)
    waits = [u for u in console.urls if f"/exports/{unique_id}?wait=" in u]
    assert waits, console.urls
