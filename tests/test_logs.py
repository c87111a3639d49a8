"""The logs of a real `chatferry serve --no-worker` and `chatferry worker`, read as an
operator would: every line timestamped (text) or one JSON object with ``ts`` (json),
uvicorn's lines too; every job followed by its ``unique_id`` from queued to finished or
failed (with the reference the tenant reads); a schedule firing; the worker starting and
stopping; and never an app secret, a plain password or a link signature.

Each backend runs one combination of formats (SQLite: serve text, worker json;
PostgreSQL: serve json, worker text), so both processes are read in both formats.
"""

from __future__ import annotations

import re
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlalchemy import update

from chatferry.db.models import ExportSchedule, table_of
from chatferry.runtime import Runtime
from chatferry.settings import Settings
from support.apps import Credentials, NewApp
from support.exports import create_export, download, export_and_wait
from support.http import EXPORTS, SCHEDULES
from support.imports import upload
from support.logs import LogLine, events_of, job_story, read_log
from support.rows import add_users
from support.servers import ServerProcess, StartServer, StartWorker, WorkerProcess
from support.waiting import wait_final, wait_for

pytestmark = pytest.mark.slow

PLAIN_PASSWORD = "plain-Password-Never-Logged-51"
REFERENCE = re.compile(r"\(reference (E[0-9A-Z]+)\)")


@pytest.fixture
def formats(database_url: str) -> tuple[str, str]:
    """(serve's, worker's) log format."""
    return ("text", "json") if database_url.startswith("sqlite") else ("json", "text")


@pytest.fixture
def extra_env() -> dict[str, str]:
    # A failing export's three tries follow each other quickly.
    return {"CHATFERRY_JOB_RETRY_MAX_BACKOFF_SECONDS": "0.2"}


def block_exports_of(settings: Settings, app: Credentials) -> None:
    """Puts a file where the app's export directory goes: its exports cannot be written."""
    exports = settings.data_dir / "files" / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    (exports / app.app_id).write_text("in the way")


def fire_a_schedule(runtime: Runtime, http: httpx.Client, creds: Credentials) -> str:
    """Creates a daily schedule, makes it due now, and waits for its run to finish."""
    body = {"type": "users", "cron": "@daily", "window_days": 1, "keep_last": 2}
    response = http.post(SCHEDULES, json=body, headers=creds.headers)
    assert response.status_code == 200, response.text
    uid: str = response.json()["results"]["export_schedule"]["unique_id"]
    schedules = table_of(ExportSchedule)
    with runtime.engine.begin() as conn:
        conn.execute(
            update(schedules)
            .where(schedules.c.unique_id == uid)
            .values(next_run_at=datetime.now(UTC) - timedelta(minutes=1))
        )

    def run_finished() -> bool:
        listed = http.get(EXPORTS, headers=creds.headers).json()["results"]["backup_histories"]
        return any(r["schedule_id"] == uid and r["status"] == "finished" for r in listed)

    wait_for(run_finished, timeout=30)
    return uid


def test_an_operator_follows_every_job_in_the_logs(
    runtime: Runtime,
    settings: Settings,
    new_app: NewApp,
    start_server: StartServer,
    start_worker: StartWorker,
    formats: tuple[str, str],
) -> None:
    logs = run_a_session(runtime, settings, new_app, start_server, start_worker, formats)
    check_formats(logs)
    check_export_and_import(logs)
    check_failed_export(logs)
    check_schedule_and_worker(logs)
    check_no_secrets(logs)


def run_a_session(
    runtime: Runtime,
    settings: Settings,
    new_app: NewApp,
    start_server: StartServer,
    start_worker: StartWorker,
    formats: tuple[str, str],
) -> dict[str, Any]:
    """A session an operator would see: an export (downloaded), an import with a plain
    password, an export that fails on storage, a schedule's run; then both stop."""
    creds, blocked = new_app("Logged"), new_app("Blocked")
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    add_users(runtime, creds.app_id, [hour_ago] * 3)
    add_users(runtime, blocked.app_id, [hour_ago])
    block_exports_of(settings, blocked)
    server = start_server({"CHATFERRY_LOG_FORMAT": formats[0]}, "--no-worker")
    worker = start_worker({"CHATFERRY_LOG_FORMAT": formats[1]})
    http = server.http
    export = export_and_wait(http, creds.headers, type="users")
    assert download(http, export)  # through the signed link, which the access log sees
    row = {"Email": "ayu@example.com", "Name": "Ayu", "Password": PLAIN_PASSWORD}
    sent = upload(http, creds, "users", [row])
    assert sent.status_code == 200, sent.text
    imported = sent.json()["results"]["backup_history"]["unique_id"]
    wait_final(http, "imports", imported, creds.headers, timeout=60, expect="finished")
    failing = create_export(http, blocked.headers, type="users")["unique_id"]
    failed = wait_final(http, "exports", failing, blocked.headers, timeout=60, expect="failed")
    schedule = fire_a_schedule(runtime, http, creds)
    stop(server, worker)
    return {
        "creds": creds,
        "blocked": blocked,
        "export": export,
        "imported": imported,
        "failed": failed,
        "schedule": schedule,
        "serve": (server.log_path, formats[0]),
        "worker": (worker.log_path, formats[1]),
        "sqlite": settings.resolved_database_url().startswith("sqlite"),
    }


def stop(server: ServerProcess, worker: WorkerProcess) -> None:
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    server.stop()  # SIGTERM: uvicorn shuts down, then exits by the signal it caught


def all_lines(logs: dict[str, Any]) -> list[LogLine]:
    """Both processes' events, in time order (each log's format checked line by line)."""
    lines = read_log(*logs["serve"]) + read_log(*logs["worker"])
    return sorted(lines, key=lambda line: line.ts)


def the_one(lines: list[LogLine], **wanted: str) -> LogLine:
    found = events_of(lines, **wanted)
    assert len(found) == 1, (wanted, found)
    return found[0]


def check_formats(session_logs: dict[str, Any]) -> None:
    """Every line timestamped (text) or a JSON object with ts; uvicorn's lines too."""
    serve = read_log(*session_logs["serve"])  # asserts the format of every line
    worker = read_log(*session_logs["worker"])
    access = [line for line in serve if line.logger == "uvicorn.access"]
    assert any('"POST /api/v2.1/rest/exports HTTP/1.1" 200' in line.message for line in access)
    assert any(line.logger == "uvicorn.error" for line in serve)  # start-up and shutdown
    assert any(line.logger.startswith("chatferry.") for line in serve)
    assert all(line.ts for line in serve + worker)


def check_export_and_import(session_logs: dict[str, Any]) -> None:
    """An export and an import, followed by unique_id: type, rows, bytes, seconds."""
    lines = all_lines(session_logs)
    export, app = session_logs["export"], session_logs["creds"].app_id
    uid = export["unique_id"]
    assert job_story(lines, uid) == ["job queued", "job started", "job finished"]
    queued = the_one(lines, message="job queued", unique_id=uid)
    assert (queued.get("kind"), queued.get("app"), queued.get("type")) == ("export", app, "users")
    done = the_one(lines, message="job finished", unique_id=uid)
    assert (done.get("type"), done.get("rows"), done.get("attempt")) == ("users", "3", "1")
    assert done.get("bytes") == str(export["size"])
    assert float(done.get("seconds")) >= 0

    imported = session_logs["imported"]
    assert job_story(lines, imported) == ["job queued", "job started", "job finished"]
    done = the_one(lines, message="job finished", unique_id=imported)
    assert (done.get("kind"), done.get("app"), done.get("type")) == ("import", app, "users")
    assert (done.get("rows"), done.get("attempt")) == ("1", "1")


def check_failed_export(session_logs: dict[str, Any]) -> None:
    """A failed export: logged under the reference the tenant reads, with the details."""
    lines = all_lines(session_logs)
    failed = session_logs["failed"]
    uid, app = failed["unique_id"], session_logs["blocked"].app_id
    message = failed["error_message"]
    assert message.startswith("the export failed: the file storage could not be reached")
    match = REFERENCE.search(message)
    assert match is not None, message
    retry = ["job started", "job retried"]
    # The file in the way keeps the failed export's clean-up from working too: said so.
    cleanup = "could not remove the failed job's files"
    story = ["job queued", *retry, *retry, "job started", "job failed", cleanup]
    assert job_story(lines, uid) == story
    line = the_one(lines, message="job failed", unique_id=uid)
    assert (line.level, line.get("app"), line.get("type")) == ("ERROR", app, "users")
    assert (line.get("reference"), line.get("attempt")) == (match[1], "3")
    assert line.get("error").startswith("StorageError: could not write 'exports/")
    details = "\n".join(line.details)  # the details, under it: the traceback, the cause
    assert "Traceback" in details and "Not a directory (os error 20)" in details
    retried = events_of(lines, message="job retried", unique_id=uid)
    assert [r.level for r in retried] == ["WARNING", "WARNING"]
    assert len({r.get("reference") for r in retried} | {match[1]}) == 3


def check_schedule_and_worker(session_logs: dict[str, Any]) -> None:
    """A schedule firing (and its run); the worker starting and stopping."""
    worker = read_log(*session_logs["worker"])
    app = session_logs["creds"].app_id
    fired = the_one(worker, message="schedule fired", schedule=session_logs["schedule"])
    assert (fired.get("app"), fired.get("exports")) == (app, "1")
    run = [line for line in worker if line.message == "job queued" and line.ts >= fired.ts]
    assert run and job_story(worker, run[0].get("unique_id"))[-1] == "job finished"
    started = the_one(worker, message="worker started")
    assert started.get("threads") == "2" and started.get("kinds") == "export,import"
    assert the_one(worker, message="worker stopped").get("unfinished_jobs") == "0"
    assert worker[-1].message == "worker stopped"
    # On SQLite both processes run with its global memory statistics off (db/sqlite_library).
    serve = read_log(*session_logs["serve"])
    for log, command in ((serve, "serve"), (worker, "worker")):
        checked = the_one(log, message=f"{command} checked the database and storage")
        expected = "off" if session_logs["sqlite"] else ""
        assert checked.get("sqlite_memory_statistics") == expected, command


def check_no_secrets(session_logs: dict[str, Any]) -> None:
    """No app secret, plain password or link signature, anywhere in either log."""
    texts = [Path(session_logs[name][0]).read_text() for name in ("serve", "worker")]
    whole = "\n".join(texts)
    query = parse_qs(urlparse(session_logs["export"]["download_url"]).query)
    secrets = {
        "app secret": session_logs["creds"].secret,
        "other app secret": session_logs["blocked"].secret,
        "plain password": PLAIN_PASSWORD,
        "link signature": query["signature"][0],
    }
    for what, secret in secrets.items():
        assert secret not in whole, what
    # Not vacuous: the download went through the server's access log, signature redacted.
    assert "/file?expires=" in whole and "signature=[redacted]" in whole
