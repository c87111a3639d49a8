from __future__ import annotations

from fastapi.testclient import TestClient

from support.apps import NewApp
from support.exports import download, wait_finished
from support.http import EXPORTS


def test_export_of_an_empty_app_finishes_with_an_empty_array(
    client: TestClient, new_app: NewApp
) -> None:
    creds = new_app()
    created = client.post(EXPORTS, json={"type": "users"}, headers=creds.headers)
    assert created.status_code == 200, created.text
    record = wait_finished(client, creds.headers, created.json()["results"]["unique_id"])
    assert record["total_rows"] == 0
    assert download(client, record) == b"[]\n"
