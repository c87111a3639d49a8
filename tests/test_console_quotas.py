"""The console's "Usage" panel (issue 21): the app's quotas and what it uses, in a real
browser against a real server (the fixtures and helpers of support/browser.py)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from support.browser import sign_in, snap
from support.http import EXPORTS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


def test_the_usage_panel_shows_each_quota_and_its_use(
    start_server: Any, open_console: Any, new_app: Any
) -> None:
    creds = new_app()
    server = start_server({"CHATFERRY_QUOTA_EXPORTS_PER_HOUR": "10"})
    for _ in range(3):
        response = server.http.post(EXPORTS, json={"type": "users"}, headers=creds.headers)
        assert response.status_code == 200, response.text
    console = open_console(server)
    page = console.page
    sign_in(console, creds)
    page.get_by_text("Usage", exact=True).click()
    panel = page.locator("#quota-list")
    exports = panel.locator("li", has_text="Exports created in the last hour")
    expect(exports).to_contain_text("3 of 10")
    expect(exports.get_by_role("meter")).to_have_attribute("value", "3")
    expect(panel.locator("li", has_text="Export files stored")).to_contain_text("of 20.0 GB")
    expect(panel.locator("li")).to_have_count(4)
    snap(page, "quota-usage")
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#quota-list li")).to_have_count(0)
