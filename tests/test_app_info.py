"""GET /app: the signed-in app's name and time zone, which the console shows times in."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from chatferry.runtime import Runtime
from support.apps import create_test_app
from support.http import API, assert_error


def test_the_app_says_its_time_zone_offset_and_today(client: TestClient, runtime: Runtime) -> None:
    creds = create_test_app(runtime, "Jakarta shop", "Asia/Jakarta")
    response = client.get(f"{API}/app", headers=creds.headers)
    assert response.status_code == 200, response.text
    app = response.json()["results"]["app"]
    assert app["app_id"] == creds.app_id and app["name"] == "Jakarta shop"
    assert app["timezone"] == "Asia/Jakarta" and app["utc_offset"] == "+07:00"
    now = datetime.fromisoformat(app["now"])
    assert now.utcoffset() is not None and now.isoformat().endswith("+07:00")
    assert app["today"] == datetime.now(ZoneInfo("Asia/Jakarta")).date().isoformat()


def test_the_app_needs_its_credentials(client: TestClient, runtime: Runtime) -> None:
    creds = create_test_app(runtime)
    wrong = {**creds.headers, "QISCUS-SDK-SECRET": "not-the-secret"}
    assert_error(client.get(f"{API}/app", headers=wrong), 401, "invalid")
