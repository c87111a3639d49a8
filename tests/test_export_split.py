"""On SQLite a large export is read by two threads, each half of its window, the second
half spooled: the file is the same, byte for byte, as one thread writes; ties at the
split, cancellation, rows added meanwhile and the row limit behave as with one reader.
(On PostgreSQL one reader reads every export: these tests check that it is unaffected.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from chatferry.runtime import Runtime
from chatferry.settings import Settings
from support.apps import NewApp
from support.exports import (
    create_export,
    download,
    download_json,
    export_and_wait,
    get_record,
    stored_files,
    wait_done,
)
from support.rows import seed_comments
from support.waiting import wait_for

ROWS = 120
# Two readers from 40 rows on, and small pages, so both halves span many pages.
SPLIT = {"CHATFERRY_EXPORT_SPLIT_MIN_ROWS": "40", "CHATFERRY_EXPORT_BATCH_SIZE": "7"}
# The same, with the job's own reader slowed down so a test can act mid-way.
SLOW_SPLIT = {**SPLIT, "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.05"}

def _moments() -> list[datetime]:
    """120 comments over the last day; 30 share one instant at the middle (the split)."""
    base = (datetime.now(UTC) - timedelta(hours=20)).replace(microsecond=0)
    early = [base + timedelta(minutes=i, microseconds=i % 3) for i in range(45)]
    tied = [base + timedelta(hours=2)] * 30
    late = [base + timedelta(hours=3, minutes=i) for i in range(45)]
    return early + tied + late


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["UniqueId"] for row in rows]


def _export_bytes(client: TestClient, headers: dict[str, str]) -> bytes:
    record = export_and_wait(client, headers, type="comments")
    assert record["total_rows"] == ROWS
    return download(client, record)


@pytest.mark.parametrize("extra_env", [SPLIT], ids=["split"])
def test_two_readers_write_the_file_one_reader_writes(
    client: TestClient, runtime: Runtime, new_app: NewApp
) -> None:
    creds = new_app()
    expected = seed_comments(runtime, creds.app_id, _moments())
    split = _export_bytes(client, creds.headers)
    runtime.settings = Settings(**{**runtime.settings.model_dump(), "export_split_min_rows": 0})
    single = _export_bytes(client, creds.headers)
    assert split == single
    assert split.count(b"\n") == ROWS + 2  # "[", one row a line, "]", the last newline
    record = export_and_wait(client, creds.headers, type="comments")
    assert _ids(download_json(client, record)) == _ids(expected)


@pytest.mark.parametrize("extra_env", [SLOW_SPLIT], ids=["slow-split"])
def test_deleting_a_split_export_mid_way_stops_both_readers(
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
    wait_for(lambda: [p.name for p in stored_files(runtime)] == [f"{after['unique_id']}.json"])


@pytest.mark.parametrize("extra_env", [SLOW_SPLIT], ids=["slow-split"])
def test_rows_added_meanwhile_in_the_second_half_stay_out_of_the_file(
    client: TestClient, runtime: Runtime, new_app: NewApp
) -> None:
    creds = new_app()
    moments = _moments()
    expected = seed_comments(runtime, creds.app_id, moments)
    record = create_export(client, creds.headers, type="comments")
    wait_for(lambda: get_record(client, creds.headers, record["unique_id"])["percentage"] > 0)
    # Twenty more at the end of the window, in the half the second reader reads.
    seed_comments(runtime, creds.app_id, [moments[-1] + timedelta(seconds=1)] * 20, "late")
    final = wait_done(client, creds.headers, record["unique_id"])
    assert final["status"] == "finished", final
    assert final["total_rows"] == ROWS
    assert _ids(download_json(client, final)) == _ids(expected)
