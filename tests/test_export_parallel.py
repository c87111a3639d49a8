"""A large export is read by two threads (the second half spooled): the file is the
same, byte for byte, as one thread writes; ties at the split, cancellation and the row
limit behave as with one reader."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from chatferry.apps.service import update_app
from chatferry.db.engine import transaction
from chatferry.runtime import Runtime
from chatferry.settings import Settings
from support.apps import NewApp
from support.exports import create_export, download, export_and_wait, get_record
from support.rows import seed_comments
from support.waiting import wait_for

ROWS = 120


@pytest.fixture
def extra_env() -> dict[str, str]:
    """Two readers from 40 rows on, and small pages, so both halves span many pages."""
    return {
        "CHATFERRY_EXPORT_PARALLEL_MIN_ROWS": "40",
        "CHATFERRY_EXPORT_BATCH_SIZE": "7",
    }


def _moments() -> list[datetime]:
    """120 comments over the last day; 30 share one instant at the middle (the split)."""
    base = (datetime.now(UTC) - timedelta(hours=20)).replace(microsecond=0)
    early = [base + timedelta(minutes=i, microseconds=i % 3) for i in range(45)]
    tied = [base + timedelta(hours=2)] * 30
    late = [base + timedelta(hours=3, minutes=i) for i in range(45)]
    return early + tied + late


def _export_bytes(client: TestClient, headers: dict[str, str]) -> bytes:
    record = export_and_wait(client, headers, type="comments")
    assert record["total_rows"] == ROWS
    return download(client, record)


def test_two_readers_write_the_file_one_reader_writes(
    client: TestClient, runtime: Runtime, new_app: NewApp
) -> None:
    creds = new_app()
    seed_comments(runtime, creds.app_id, _moments())
    parallel = _export_bytes(client, creds.headers)
    runtime.settings = Settings(**{**runtime.settings.model_dump(), "export_read_threads": 1})
    single = _export_bytes(client, creds.headers)
    assert parallel == single
    assert parallel.count(b"\n") == ROWS + 2  # "[", one row a line, "]", the last newline


@pytest.mark.parametrize(
    "extra_env",
    [
        {
            "CHATFERRY_EXPORT_PARALLEL_MIN_ROWS": "40",
            "CHATFERRY_EXPORT_BATCH_SIZE": "5",
            "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.05",
        }
    ],
    ids=["slow"],
)
def test_deleting_a_parallel_export_mid_way_stops_both_readers(
    client: TestClient, runtime: Runtime, new_app: NewApp
) -> None:
    creds = new_app()
    seed_comments(runtime, creds.app_id, _moments())
    record = create_export(client, creds.headers, type="comments")
    path = f"/api/v2.1/rest/exports/{record['unique_id']}"
    wait_for(lambda: get_record(client, creds.headers, record["unique_id"])["percentage"] > 0)
    assert client.delete(path, headers=creds.headers).status_code == 200
    # Both readers stop, and nothing of the export stays: no file, no staging file.
    after = export_and_wait(client, creds.headers, type="users")
    assert after["status"] == "finished"
    root = runtime.settings.data_dir / "files"

    def stored() -> list[str]:
        return sorted(f.name for f in root.rglob("*") if f.is_file())

    wait_for(lambda: stored() == [f"{after['unique_id']}.json"], timeout=10)


@pytest.mark.parametrize(
    "extra_env",
    [
        {
            "CHATFERRY_EXPORT_PARALLEL_MIN_ROWS": "40",
            "CHATFERRY_EXPORT_BATCH_SIZE": "5",
            "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.05",
        }
    ],
    ids=["slow"],
)
def test_rows_added_meanwhile_over_the_limit_fail_a_parallel_export(
    client: TestClient, runtime: Runtime, new_app: NewApp
) -> None:
    creds = new_app()
    moments = _moments()
    seed_comments(runtime, creds.app_id, moments)
    with transaction(runtime.sessions) as session:
        update_app(session, creds.app_id, limits={"export_max_comments": 130})
    record = create_export(client, creds.headers, type="comments")
    wait_for(lambda: get_record(client, creds.headers, record["unique_id"])["percentage"] > 0)
    # Twenty more at the end of the window, in the half the second reader reads.
    seed_comments(runtime, creds.app_id, [moments[-1] + timedelta(seconds=1)] * 20, "late")
    final = wait_for(
        lambda: (
            (r := get_record(client, creds.headers, record["unique_id"]))["status"] != "started"
            and r
        )
    )
    assert final["status"] == "failed"
    assert "over the limit of 130 rows" in final["error_message"]
    files = list((runtime.settings.data_dir / "files").rglob("*"))
    assert [f for f in files if f.is_file()] == []
