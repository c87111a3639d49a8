"""A database outage against real processes: a PostgreSQL of the test's own (initdb and
pg_ctl in a temp dir, on a free port; never the shared server), `serve` and a `worker`.

It is restarted mid-export and killed hard (``pg_ctl stop -m immediate``) mid-import.
Every job ends finished, nothing is duplicated, the import is whole; meanwhile the API
answers 503 in the envelope; each process logs one "database unreachable" and one
"database is back" line per outage, and no traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from chatferry.db.engine import create_db_engine
from chatferry.db.migrate import upgrade_to_head
from chatferry.db.models import App, Export, Job, User
from chatferry.runtime import Runtime, build_runtime
from chatferry.settings import Settings
from support.apps import create_test_app
from support.exports import create_export, download_json, get_record, wait_finished
from support.http import EXPORTS, IMPORTS, assert_error
from support.imports import upload, user_with_password
from support.rows import add_users
from support.servers import ServerProcess, StartServer, StartWorker, WorkerLog, free_port
from support.waiting import wait_final, wait_for

pytestmark = pytest.mark.slow

PG_BIN = Path(shutil.which("pg_ctl") or "/usr/local/bin/pg_ctl").parent
EXPORT_ROWS = 600
IMPORT_ROWS = 40


@dataclass
class OwnPostgres:
    """A PostgreSQL server in ``data`` on ``port``, run as ``user`` (initdb refuses root)."""

    data: Path
    port: int
    user: str | None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args]
        done = subprocess.run(self._as_user(command), capture_output=True, text=True)
        assert done.returncode == 0, f"pg_ctl {args}: {done.stdout}{done.stderr}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= "
            "-c fsync=off -c full_page_writes=off"
        )
        self.ctl("-o", options, "-l", str(self.data / "server.log"), "start")

    def _as_user(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", self.user, "--", *command] if self.user else command


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL's initdb is not in {PG_BIN}")
    user = "postgres" if os.geteuid() == 0 else None
    where = Path(tempfile.mkdtemp(prefix="chatferry-own-pg-"))
    if user:
        shutil.chown(where, user)
    server = OwnPostgres(where / "data", free_port(), user)
    initdb = [str(PG_BIN / "initdb"), "-D", str(server.data), "-U", "postgres", "-A", "trust"]
    done = subprocess.run(server._as_user([*initdb, "--no-sync"]), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    server.start()
    try:
        engine = create_db_engine(Settings(database_url=server.url).resolved_database_url())
        upgrade_to_head(engine)
        engine.dispose()
        yield server
    finally:
        stop = [str(PG_BIN / "pg_ctl"), "-D", str(server.data), "-m", "immediate", "stop"]
        subprocess.run(server._as_user(stop), capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def settings_env(own_postgres: OwnPostgres, tmp_path: Path) -> dict[str, str]:
    return {
        "CHATFERRY_DATA_DIR": str(tmp_path / "data"),
        "CHATFERRY_DATABASE_URL": own_postgres.url,
        "CHATFERRY_JOB_POLL_SECONDS": "0.1",
        "CHATFERRY_JOB_LEASE_SECONDS": "3",
        "CHATFERRY_JOB_RETRY_MAX_BACKOFF_SECONDS": "1",
        # A slow export (20 batches, 0.2 s apart) to restart the database under.
        "CHATFERRY_EXPORT_BATCH_SIZE": "30",
        "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.2",
    }


@pytest.fixture
def rt(settings_env: dict[str, str]) -> Iterator[Runtime]:
    settings = Settings(
        **{k.removeprefix("CHATFERRY_").lower(): v for k, v in settings_env.items()}
    )
    runtime = build_runtime(settings, migrate=False)
    yield runtime
    runtime.close()


def outage_lines(log_path: Path) -> list[str]:
    """The process's "database unreachable" / "database is back" events, in order."""
    events = ("database unreachable", "database is back")
    text = log_path.read_text(errors="replace")
    return [event for line in text.splitlines() for event in events if f": {event}" in line]


def assert_one_pair_per_outage(log_path: Path, outages: int) -> None:
    text = log_path.read_text(errors="replace")
    assert "Traceback" not in text, text[-5000:]
    pairs = ["database unreachable", "database is back"] * outages
    assert outage_lines(log_path) == pairs, text[-5000:]


def export_during_restart(
    server: ServerProcess, worker: WorkerLog, pg: OwnPostgres, headers: dict[str, str]
) -> dict[str, object]:
    record = create_export(server.http, headers, type="users")
    wait_for(lambda: _percentage(server, headers, record) > 0)
    pg.ctl("-m", "fast", "stop")
    assert_error(server.http.get(EXPORTS, headers=headers), 503, "database cannot be reached")
    assert server.http.get("/readyz").status_code == 503
    pg.start()
    return wait_finished(server.http, headers, str(record["unique_id"]), timeout=60)


def _percentage(server: ServerProcess, headers: dict[str, str], record: dict[str, object]) -> int:
    return int(get_record(server.http, headers, str(record["unique_id"]))["percentage"])


def test_a_restart_and_a_hard_kill_lose_nothing_and_log_one_pair_each(
    start_server: StartServer, start_worker: StartWorker, own_postgres: OwnPostgres, rt: Runtime
) -> None:
    server = start_server(None, "--no-worker")
    worker = start_worker()
    creds = create_test_app(rt, "outage")
    add_users(rt, creds.app_id, [datetime.now(UTC) - timedelta(hours=1)] * EXPORT_ROWS)

    # 1. Restarted mid-export: the export is retried and finishes, once, whole.
    finished = export_during_restart(server, worker, own_postgres, creds.headers)
    assert finished["total_rows"] == EXPORT_ROWS
    rows = download_json(server.http, finished)
    assert len({row["Email"] for row in rows}) == EXPORT_ROWS

    # 2. Killed hard mid-import: the import runs again and writes every row once.
    users = [user_with_password(f"imported{i}@example.com") for i in range(IMPORT_ROWS)]
    sent = upload(server.http, creds, "users", users)
    assert sent.status_code == 200, sent.text
    unique_id = sent.json()["results"]["backup_history"]["unique_id"]
    wait_for(lambda: "kind=import" in worker.log_path.read_text())
    own_postgres.ctl("-m", "immediate", "stop")
    assert_error(server.http.get(IMPORTS, headers=creds.headers), 503, "try again")
    own_postgres.start()
    wait_final(server.http, "imports", unique_id, creds.headers, 90, expect="finished")

    with rt.sessions() as session:
        pk = session.scalar(select(App.id).where(App.app_id == creds.app_id))
        users_now = session.scalar(select(func.count()).where(User.app_pk == pk))
        assert users_now == EXPORT_ROWS + IMPORT_ROWS
        assert session.scalar(select(func.count()).select_from(Export)) == 1
        statuses = session.scalars(select(Job.status)).all()
    assert sorted(statuses) == ["done", "done"], statuses

    for log_path in (server.log_path, worker.log_path):
        assert_one_pair_per_outage(log_path, outages=2)
