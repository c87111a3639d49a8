"""Every request example of the OpenAPI document is accepted by the running app (issue
21: a fixed run_at date fell out of the year that run_at may lie ahead)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from chatferry.exports.dates import RUN_AT_PLACEHOLDER
from support.apps import NewApp

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def request_examples(document: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    """(method, path, example name, body) of every JSON request example, creations first."""
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            for name, example in content.get("application/json", {}).get("examples", {}).items():
                found.append((method.upper(), path, name, example["value"]))
    return sorted(found, key=lambda e: (e[0] != "POST", e[1]))


# The webhook examples name example.com, which this machine cannot resolve (no outside
# DNS): the edge of the world is faked with example.com's public address, nothing else.
EXAMPLE_COM = "93.184.215.14"


@pytest.fixture
def example_com_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (EXAMPLE_COM, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.usefixtures("example_com_resolves")
def test_every_request_example_is_accepted(client: TestClient, new_app: NewApp) -> None:
    app = new_app()
    document = client.get("/openapi.json").json()
    examples = request_examples(document)
    assert {(m, p) for m, p, _, _ in examples} >= {
        ("POST", "/api/v2.1/rest/exports"),
        ("POST", "/api/v2.1/rest/export_schedules"),
        ("PATCH", "/api/v2.1/rest/export_schedules/{unique_id}"),
        ("POST", "/api/v2.1/rest/webhooks"),
    }
    created: dict[str, str] = {}  # a collection's path -> the id its example created
    for method, path, name, body in examples:
        collection = path.removesuffix("/{unique_id}")
        url = path.replace("{unique_id}", created.get(collection, ""))
        response = client.request(method, url, json=body, headers=app.headers)
        assert response.status_code == 200, (method, path, name, response.text)
        results = response.json()["results"]
        record = results.get("export_schedule", results.get("webhook", results))
        created.setdefault(collection, record.get("unique_id") or record["id"])


def test_run_at_examples_are_ahead_within_the_year(client: TestClient) -> None:
    text = client.get("/openapi.json").text
    assert RUN_AT_PLACEHOLDER not in text
    later = datetime.now(UTC).date() + timedelta(days=2)
    assert f'"{later.isoformat()}T02:00:00+07:00"' in text
