"""Jobs are shared fairly between apps (issue 7): one app's hour of password hashing
does not hold up another app's small export."""

from __future__ import annotations

import time

import orjson
import pytest
from sqlalchemy import select

from chatferry.db.engine import transaction
from chatferry.db.models import Job
from chatferry.runtime import Runtime
from support.apps import NewApp
from support.exports import create_export
from support.imports import upload
from support.servers import StartServer
from support.waiting import read_record, wait_final, wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

FILE_LIMIT = 4 * 1024 * 1024


def users_file(tag: str) -> bytes:
    """A users file of plain passwords just under 4 MB (Argon2id for every row)."""
    rows, size = [], 2
    while True:
        row = {"Email": f"{tag}{len(rows)}@example.com", "Name": "Heavy", "Password": "pw-0001"}
        size += len(orjson.dumps(row)) + 1
        if size > FILE_LIMIT:
            return orjson.dumps(rows)
        rows.append(row)


def test_a_small_export_finishes_while_another_apps_big_imports_hash(
    start_server: StartServer, new_app: NewApp, runtime: Runtime
) -> None:
    heavy, light = new_app("Heavy"), new_app("Light")
    server = start_server({"CHATFERRY_WORKER_CONCURRENCY": "2"})
    imports = []
    for tag in ("first", "second"):  # enough to keep every job thread of a naive queue busy
        response = upload(server.http, heavy, "users", users_file(tag), filename=f"{tag}.json")
        assert response.status_code == 200, response.text
        imports.append(response.json()["results"]["backup_history"]["unique_id"])

    def hashing() -> bool:
        record = read_record(server.http, "imports", imports[0], heavy.headers)
        assert record["status"] == "started", record
        return record["percentage"] > 10  # every row checked: Argon2 on every core now

    wait_for(hashing, timeout=120, interval=0.2)
    with transaction(runtime.sessions) as session:
        states = sorted(session.scalars(select(Job.status).where(Job.kind == "import")))
    assert states == ["queued", "running"]  # the second waits: one thread per app
    started = time.monotonic()
    export = create_export(server.http, light.headers, type="users")
    record = wait_final(server.http, "exports", export["unique_id"], light.headers, timeout=30)
    took = time.monotonic() - started
    assert record["status"] == "finished", record
    assert took < 5, f"the small export took {took:.1f}s behind the other app's imports"
    print(f"the small export finished in {took:.2f}s while the other app's imports hashed")
    for unique_id in imports:  # still at it: the export did not just wait its turn
        assert read_record(server.http, "imports", unique_id, heavy.headers)["status"] == "started"
    server.process.kill()  # minutes of hashing left: no graceful stop
