"""Two imports of users that share emails, racing for real.

Both pass validation (nothing in the database yet clashes with either file) and hash their
passwords before either writes; the database's unique constraints then decide: exactly
one import ends ``finished``, the other ``failed`` with the duplicates listed, and every
email is stored once.

- In process, on SQLite and PostgreSQL: the real ``Worker`` with two job threads; a
  SQLAlchemy event on the test's engine holds each job at its last statement before the
  write transaction until both have got there (a synchronisation point only: the jobs run
  the real code, on the real database). With 3000 shared emails in opposite orders, this
  also checks that the two writes cannot deadlock on PostgreSQL.
- Against a real ``chatferry serve`` with two worker threads, on PostgreSQL: the test holds
  ``LOCK TABLE users IN SHARE MODE`` (reads go on, inserts wait) until both jobs have
  checked and hashed their file and one of them waits to insert, then lets them go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from chatferry.api.app import create_api
from chatferry.composition import job_handlers
from chatferry.db.engine import transaction
from chatferry.db.models import App, User
from chatferry.jobs.worker import Worker
from chatferry.runtime import Runtime
from support.apps import TEST_PASSWORD_HASH, NewApp
from support.db import POSTGRES_URL, lock_waiters, waking_listeners
from support.imports import get_import, upload, user
from support.servers import StartServer
from support.waiting import read_record, wait_final, wait_for

SHARED = [f"shared{i}@race.example.com" for i in range(4)]
ONLY_A = [f"a{i}@race.example.com" for i in range(8)]
ONLY_B = [f"b{i}@race.example.com" for i in range(8)]
# The shared emails sit at different rows.
SMALL_A = [user(e) for e in [*SHARED, *ONLY_A]]
SMALL_B = [user(e) for e in [*ONLY_B[:4], *SHARED, *ONLY_B[4:]]]


def _big_files() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """3000 shared emails, in opposite orders in the two files: inserted at the same
    moment, each file's rows wait for the other's."""
    hashed = TEST_PASSWORD_HASH
    shared = [f"many{i}@race.example.com" for i in range(3000)]

    def rows(emails: list[str]) -> list[dict[str, Any]]:
        return [{"Email": e, "Name": "n", "PasswordHash": hashed} for e in emails]

    return rows([*shared, *ONLY_A]), rows([*ONLY_B[:4], *shared[::-1], *ONLY_B[4:]])


def _stored_emails(rt: Runtime, app_id: str) -> list[str]:
    with transaction(rt.sessions) as session:
        pk = session.scalar(select(App.id).where(App.app_id == app_id))
        return sorted(session.scalars(select(User.email).where(User.app_pk == pk)))


def _duplicates_per_email(rt: Runtime) -> int:
    with transaction(rt.sessions) as session:
        counts = session.execute(select(User.email, func.count()).group_by(User.email)).all()
    return max((n for _, n in counts), default=0)


def _check_outcome(
    rt: Runtime,
    app_id: str,
    records: dict[str, dict[str, Any]],
    files: dict[str, list[dict[str, Any]]],
) -> None:
    """Exactly one import won; the loser lists the shared emails and wrote nothing."""
    statuses = sorted(r["status"] for r in records.values())
    assert statuses == ["failed", "finished"], records
    [(winner, won)] = [(k, r) for k, r in records.items() if r["status"] == "finished"]
    [(loser, lost)] = [(k, r) for k, r in records.items() if r["status"] == "failed"]
    assert won["errors"] == {"Message": "", "Data": None}
    assert won["total_rows"] == len(files[winner]) and won["percentage"] == 100

    errors = lost["errors"]
    assert "another import added some of the same rows" in errors["Message"], errors
    assert "nothing was imported" in errors["Message"]
    shared = {row["Email"] for row in files[winner]} & {row["Email"] for row in files[loser]}
    expected = [
        (number, row["Email"], "Email")
        for number, row in enumerate(files[loser], start=1)
        if row["Email"] in shared
    ]
    assert len(expected) in (len(SHARED), 3000)
    assert (
        f"{len(expected)} problems in {len(expected)} of {len(files[loser])} rows"
        in (errors["Message"])
    )
    # At most the first 1000 problems are listed (the Message gives the full count).
    assert [(p["row"], p["key"], p["field"]) for p in errors["Data"]] == expected[:1000]
    for problem in errors["Data"]:
        assert set(problem) == {"row", "key", "field", "message"}
        assert problem["key"] in problem["message"]

    assert _stored_emails(rt, app_id) == sorted(row["Email"] for row in files[winner])
    assert _duplicates_per_email(rt) == 1


@contextmanager
def _hold_at_first_write(rt: Runtime, parties: int) -> Iterator[threading.Barrier]:
    """Holds each import job at its last step before the write transaction (setting its
    progress to 90, after the checks and the hashing) until ``parties`` jobs are there."""
    barrier = threading.Barrier(parties, timeout=60)
    held: set[int] = set()  # threads already held once (a retried write is not held again)

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        text = " ".join(statement.split()).lower()
        values = parameters.values() if isinstance(parameters, dict) else parameters
        at_write = text.startswith("update imports set percentage") and 90 in list(values)
        if at_write and threading.get_ident() not in held:
            held.add(threading.get_ident())
            barrier.wait()

    event.listen(rt.engine, "before_cursor_execute", before)
    try:
        yield barrier
    finally:
        event.remove(rt.engine, "before_cursor_execute", before)


@pytest.mark.parametrize("size", ["small", "3000-opposite-orders"])
def test_racing_imports_in_two_worker_threads(runtime: Runtime, new_app: NewApp, size: str) -> None:
    creds = new_app()
    a, b = (SMALL_A, SMALL_B) if size == "small" else _big_files()
    files = {"A": a, "B": b}
    with TestClient(create_api(runtime, run_worker=False)) as api:
        ids = {}
        for name, rows in files.items():
            response = upload(api, creds, "users", rows)
            assert response.status_code == 200, response.text
            ids[name] = response.json()["results"]["backup_history"]["unique_id"]

        started = time.monotonic()
        with _hold_at_first_write(runtime, 2) as barrier:
            # Three threads: a worker keeps its last free thread for other apps, so two
            # imports of one app run side by side only with two more threads.
            worker = Worker(runtime, 3, job_handlers(runtime.settings))
            worker.start()
            try:

                def ended() -> dict[str, dict[str, Any]] | None:
                    records = {k: get_import(api, creds, v) for k, v in ids.items()}
                    done = all(r["status"] in ("finished", "failed") for r in records.values())
                    return records if done else None

                records = wait_for(ended, timeout=90, interval=0.1)
            finally:
                with waking_listeners(runtime):
                    worker.stop()
        assert not barrier.broken, "the two jobs never both reached their write"
        _check_outcome(runtime, creds.app_id, records, files)
        print(f"race in threads took {time.monotonic() - started:.1f}s")


# --- real server, PostgreSQL ---------------------------------------------------------


def _waiting_inserts(database_url: str) -> int:
    """How many sessions wait for a lock on this schema's users table."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'users'::regclass"
        ).fetchone()
        return int(row[0]) if row else 0


@pytest.mark.slow
def test_racing_imports_on_a_real_server_postgresql(
    database_url: str, runtime: Runtime, new_app: NewApp, start_server: StartServer
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: the table lock that lines the two jobs up")
    assert database_url.startswith(POSTGRES_URL)
    creds = new_app()
    # Three job threads: the last free one is kept for other apps (see the worker).
    server = start_server({"CHATFERRY_WORKER_CONCURRENCY": "3"})

    with psycopg.connect(database_url) as lock:
        # Reads (the checks) go on; INSERT INTO users waits until the lock is released.
        lock.execute("LOCK TABLE users IN SHARE MODE")
        files = {"A": SMALL_A, "B": SMALL_B}
        ids = {}
        for name, rows in files.items():
            response = upload(server.http, creds, "users", rows, filename=f"{name}.json")
            assert response.status_code == 200, response.text
            ids[name] = response.json()["results"]["backup_history"]["unique_id"]

        # Both jobs checked their file (percentage 90: the next step is the write), and
        # one of them already waits to insert into users.
        def both_at_the_write() -> bool:
            percentages = [
                read_record(server.http, "imports", u, creds.headers)["percentage"]
                for u in ids.values()
            ]
            return percentages == [90, 90] and _waiting_inserts(database_url) == 1

        wait_for(both_at_the_write, timeout=60, interval=0.1)
        # The other one is held too, by the first one's write: both wait for a lock.
        wait_for(lambda: lock_waiters(database_url) == 2, timeout=10)
        assert _waiting_inserts(database_url) == 1
        assert _stored_emails(runtime, creds.app_id) == []
        lock.rollback()

    records = {k: wait_final(server.http, "imports", v, creds.headers, 60) for k, v in ids.items()}
    _check_outcome(runtime, creds.app_id, records, files)
