"""The spec's own curl examples, sent as written by the real curl to a real server.

Each example below is copied verbatim from the vendor's documentation
(spec/backup-export-import-api.txt); only the host, and the example backup ids, are
replaced before the command line is split like a shell would and handed to curl.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chatferry.runtime import Runtime
from chatferry.settings import Settings
from support.curl import content_disposition_filename, run_curl, spec_curl_args
from support.exports import stored_files
from support.http import RFC3339_WITH_OFFSET
from support.rows import seed_comments
from support.servers import StartServer, run_cli_json
from support.waiting import wait_for

APP_ID = "sdksample"
SECRET = "2820ae9dfc5362f7f3a10381fb89afc7"

SPEC_POST = r"""
curl -X POST \
https://api.qiscus.com/api/v2.1/rest/exports \
-H 'Content-Type: application/json' \
-H 'QISCUS-SDK-APP-ID: sdksample' \
-H 'QISCUS-SDK-SECRET: 2820ae9dfc5362f7f3a10381fb89afc7' \
-d '{
"type":"comments",
"start_date":"2017-01-01",
"end_date": "2017-01-05"
}'
"""

SPEC_LIST = r"""
curl -X GET \
https://api.qiscus.com/api/v2.1/rest/exports \
-H 'QISCUS-SDK-APP-ID: sdksample' \
-H 'QISCUS-SDK-SECRET: 2820ae9dfc5362f7f3a10381fb89afc7'
"""

SPEC_GET = r"""
curl -X GET \
https://api.qiscus.com/api/v2.1/rest/exports/5181dc9a-51b9-409b-9d84-ce16fb98daca \
-H 'QISCUS-SDK-APP-ID: sdksample' \
-H 'QISCUS-SDK-SECRET: 2820ae9dfc5362f7f3a10381fb89afc7'
"""
SPEC_GET_ID = "5181dc9a-51b9-409b-9d84-ce16fb98daca"

# Note the underscore header QISCUS_SDK_SECRET and the body: both are in the spec.
SPEC_DELETE = r"""
curl -X DELETE \
https://api.qiscus.com/api/v2.1/rest/exports/4862ee4c-e42e-4e59-9e46-5acf0b7b097e \
-H 'QISCUS-SDK-APP-ID: sdksample' \
-H 'QISCUS_SDK_SECRET: 2820ae9dfc5362f7f3a10381fb89afc7' \
-d '{
"type": "comments"
}'
"""
SPEC_DELETE_ID = "4862ee4c-e42e-4e59-9e46-5acf0b7b097e"

# The spec's example record (POST response), whose keys and value types we must keep.
SPEC_RECORD: dict[str, Any] = {
    "created_at": "2017-07-17T10:19:44+07:00",
    "download_url": "",
    "error_message": "",
    "original_filename": "2017-07-17T10:19:44+07:00_exported_comments.json",
    "percentage": 0,
    "resource_name": "comments",
    "size": 0,
    "status": "started",
    "total_rows": 0,
    "unique_id": "dd2c46a8-0921-4b75-837c-cee1b9804787",
}


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# Inside 2017-01-01..2017-01-05 (whole days, the app is on UTC), boundaries included.
IN_RANGE = [
    _utc(2017, 1, 1, 0, 0, 0),
    _utc(2017, 1, 2, 8, 30, 0),
    _utc(2017, 1, 2, 8, 30, 0),
    _utc(2017, 1, 3, 12, 0, 1),
    _utc(2017, 1, 4, 23, 0, 0),
    _utc(2017, 1, 5, 23, 59, 59),
    _utc(2017, 1, 3, 7, 0, 0),
]
OUT_OF_RANGE = [_utc(2016, 12, 31, 23, 59, 59), _utc(2017, 1, 6, 0, 0, 0)]


def _check_record_shape(record: dict[str, Any]) -> None:
    """Every key of the spec's record, with the spec's value type (extra keys allowed)."""
    missing = set(SPEC_RECORD) - set(record)
    assert not missing, f"spec keys missing from {record}"
    for key, example in SPEC_RECORD.items():
        assert type(record[key]) is type(example), (key, record[key])
    assert RFC3339_WITH_OFFSET.match(record["created_at"]), record["created_at"]
    assert record["original_filename"] == f"{record['created_at']}_exported_comments.json"
    assert str(uuid.UUID(record["unique_id"])) == record["unique_id"]
    assert record["resource_name"] == "comments"
    assert 0 <= record["percentage"] <= 100


@pytest.mark.slow
def test_spec_curl_examples_as_written(
    settings_env: dict[str, str],
    settings: Settings,
    runtime: Runtime,
    start_server: StartServer,
    tmp_path: Path,
) -> None:
    created = run_cli_json(
        settings_env,
        "apps",
        "create",
        "--name",
        "Sample",
        "--app-id",
        APP_ID,
        "--secret",
        SECRET,
    )
    assert created["app_id"] == APP_ID
    assert created["secret"] == SECRET
    expected_rows = seed_comments(runtime, APP_ID, IN_RANGE + OUT_OF_RANGE)
    in_range_ids = {f"msg-seed-{i}" for i in range(len(IN_RANGE))}
    expected_rows = [row for row in expected_rows if row["UniqueId"] in in_range_ids]
    assert len(expected_rows) == len(IN_RANGE)

    server = start_server()
    base = server.base_url

    # POST, as written.
    posted = run_curl(spec_curl_args(SPEC_POST, base), tmp_path)
    assert posted.status == 200, posted.body
    assert posted.headers["content-type"].startswith("application/json")
    body = posted.json()
    assert set(body) == {"results", "status"}
    assert body["status"] == 200
    record = body["results"]
    _check_record_shape(record)
    assert record["status"] == "started"
    assert record["percentage"] == 0
    assert record["download_url"] == ""
    assert record["error_message"] == ""
    assert record["created_at"].endswith("+00:00")  # the app's zone is UTC
    unique_id = record["unique_id"]

    # GET list, as written.
    listed = run_curl(spec_curl_args(SPEC_LIST, base), tmp_path)
    assert listed.status == 200, listed.body
    body = listed.json()
    assert set(body) == {"results", "status"} and body["status"] == 200
    histories = body["results"]["backup_histories"]
    assert [h["unique_id"] for h in histories] == [unique_id]
    _check_record_shape(histories[0])
    assert histories[0]["created_at"] == record["created_at"]

    # GET by id, as written, until the export has finished (the spec's example is what
    # is tested here, so it is the poll).
    get_args = spec_curl_args(SPEC_GET, base, {SPEC_GET_ID: unique_id})

    def finished() -> dict[str, Any] | None:
        got = run_curl(get_args, tmp_path)
        assert got.status == 200, got.body
        history: dict[str, Any] = got.json()["results"]["backup_history"]
        assert history["status"] in ("started", "finished"), history
        return history if history["status"] == "finished" else None

    done = wait_for(finished, timeout=30, interval=0.1)
    _check_record_shape(done)
    assert done["unique_id"] == unique_id
    assert done["percentage"] == 100
    assert done["total_rows"] == len(IN_RANGE)
    assert done["created_at"] == record["created_at"]
    assert done["original_filename"] == record["original_filename"]
    assert done["download_url"].startswith(f"{base}/")

    # Download the file with curl from download_url, as a user would.
    download = run_curl(["curl", done["download_url"]], tmp_path)
    assert download.status == 200, download.body
    assert download.headers["content-type"].startswith("application/json")
    assert (
        content_disposition_filename(download.headers["content-disposition"])
        == (done["original_filename"])
    )
    assert len(download.body) == done["size"]
    assert json.loads(download.body) == expected_rows
    [stored] = [p for p in stored_files(settings) if unique_id in p.name]

    # The DELETE example, as written: underscore header and a body.
    delete_args = spec_curl_args(SPEC_DELETE, base, {SPEC_DELETE_ID: unique_id})
    # The underscore header really is checked: a wrong secret in it is refused.
    wrong = [a.replace(SECRET, "0" * len(SECRET)) for a in delete_args]
    refused = run_curl(wrong, tmp_path)
    assert refused.status == 401, refused.body
    assert refused.json()["status"] == 401
    assert stored.exists()

    deleted = run_curl(delete_args, tmp_path)
    assert deleted.status == 200, deleted.body
    body = deleted.json()
    assert set(body) == {"results", "status"} and body["status"] == 200
    history = body["results"]["backup_history"]
    _check_record_shape(history)
    assert history["unique_id"] == unique_id
    assert history["status"] == "finished"
    assert history["total_rows"] == len(IN_RANGE)
    assert not stored.exists()

    # GET by id again: gone.
    gone = run_curl(get_args, tmp_path)
    assert gone.status == 404, gone.body
    error = gone.json()
    assert error["status"] == 404
    assert unique_id in error["error"]["message"]
    # The signed link no longer serves the file either.
    assert run_curl(["curl", done["download_url"]], tmp_path).status == 404
    listed_after = run_curl(spec_curl_args(SPEC_LIST, base), tmp_path).json()
    assert listed_after["results"]["backup_histories"] == []
