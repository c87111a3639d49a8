from __future__ import annotations

from fastapi.testclient import TestClient

from conftest import wait_for


def test_export_of_an_empty_app_finishes_with_an_empty_array(client: TestClient, make_app) -> None:  # type: ignore[no-untyped-def]
    creds = make_app()
    created = client.post("/api/v2.1/rest/exports", json={"type": "users"}, headers=creds.headers)
    assert created.status_code == 200, created.text
    unique_id = created.json()["results"]["unique_id"]

    def finished() -> dict | None:  # type: ignore[type-arg]
        record = client.get(f"/api/v2.1/rest/exports/{unique_id}", headers=creds.headers).json()
        record = record["results"]["backup_history"]
        return record if record["status"] == "finished" else None

    record = wait_for(finished)
    assert record["total_rows"] == 0
    body = client.get(record["download_url"].split("http://testserver", 1)[1]).content
    assert body == b"[]\n"
