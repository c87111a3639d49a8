"""What an operator meets before anything runs: each misconfiguration of the issue ends
in ONE line saying what failed and what to set, from real `chatferry` processes;
`chatferry check` shows the configuration in use; a new database is announced."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, make_url

from chatferry.db.engine import create_db_engine
from chatferry.db.migrate import alembic_config
from chatferry.preflight import schema_revisions
from client_helpers import assert_one_line_error
from support.db import POSTGRES_URL, PostgresSchema, require_postgres
from support.s3 import S3Bucket
from support.servers import WorkerProcess, cli_command, free_port, kill, run_cli

pytestmark = pytest.mark.slow

# The commands that open the server's runtime, each through the preflight.
SERVE = ("serve", "--host", "127.0.0.1", "--port", "1")  # never binds: the checks fail first
COMMANDS = [SERVE, ("worker",), ("apps", "list"), ("check",)]


def only_error_line(done: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 1, and stderr is one ``error:`` line (no traceback, no log noise)."""
    line = assert_one_line_error(done, 1, *fragments)
    assert done.stderr.strip().splitlines() == [line], done.stderr
    return line


@pytest.fixture
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A data dir of the test's own; no CHATFERRY_* setting leaks in from outside."""
    for name in ("CHATFERRY_DATABASE_URL", "CHATFERRY_STORAGE_URL", "CHATFERRY_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    return {"CHATFERRY_DATA_DIR": str(tmp_path / "data")}


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_a_wrong_database_port_is_one_line(data_env: dict[str, str], args: tuple[str]) -> None:
    port = free_port()  # nothing listens there
    env = {**data_env, "CHATFERRY_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/test"}
    only_error_line(
        run_cli(env, *args),
        f"cannot use the database at postgresql://postgres@127.0.0.1:{port}/test",
        "nothing answers there: start it, or fix the host and port in CHATFERRY_DATABASE_URL",
    )


def test_an_unknown_database_is_one_line(
    data_env: dict[str, str], postgres_problem: str | None
) -> None:
    require_postgres(postgres_problem)
    missing = make_url(POSTGRES_URL).set(database=f"missing_{uuid.uuid4().hex[:8]}")
    url = missing.render_as_string(hide_password=False)
    for args in (SERVE, ("worker",)):
        only_error_line(
            run_cli({**data_env, "CHATFERRY_DATABASE_URL": url}, *args),
            f"/{missing.database}: it does not exist: create it (e.g. createdb) or fix "
            "CHATFERRY_DATABASE_URL",
        )


def test_a_bucket_that_does_not_exist_is_one_line(
    data_env: dict[str, str], s3_bucket: S3Bucket
) -> None:
    storage = f"s3://{s3_bucket.name}-missing/backups"
    env = {**data_env, "CHATFERRY_STORAGE_URL": storage}
    assert run_cli(data_env, "apps", "list").returncode == 0  # the database exists already
    for args in (SERVE, ("worker",), ("check",)):
        only_error_line(
            run_cli(env, *args),
            f"cannot write to the file storage at {storage}: the bucket does not exist: "
            "create it, or fix CHATFERRY_STORAGE_URL",
        )
    # The same checks pass on the bucket that exists, and leave nothing in it.
    ok = run_cli({**data_env, "CHATFERRY_STORAGE_URL": s3_bucket.storage_url}, "check")
    assert ok.returncode == 0, ok.stderr
    assert f"storage_url          {s3_bucket.storage_url}\n" in ok.stdout
    assert s3_bucket.object_keys() == {}


@pytest.mark.parametrize(
    ("storage", "problem"),
    [
        ("ftp://files.example.com/backups", "'ftp' URLs are not supported"),
        ("/var/lib/chatferry/files", "it has no scheme"),
        ("s3:///backups", "names no bucket: use s3://bucket/prefix"),
        ("file://relative/files", "is not an absolute directory: use file:///absolute/directory"),
    ],
    ids=["ftp", "no-scheme", "no-bucket", "relative-file"],
)
def test_a_bad_storage_url_is_one_line(
    data_env: dict[str, str], storage: str, problem: str
) -> None:
    env = {**data_env, "CHATFERRY_STORAGE_URL": storage}
    # Every command checks the URL the same way: all of them for one URL, check for the rest.
    for args in COMMANDS if storage.startswith("ftp") else [("check",)]:
        only_error_line(run_cli(env, *args), f"CHATFERRY_STORAGE_URL={storage}", problem)


def test_a_negative_concurrency_is_one_line_naming_the_variable(
    data_env: dict[str, str],
) -> None:
    env = {**data_env, "CHATFERRY_WORKER_CONCURRENCY": "-1"}
    for args in COMMANDS:
        only_error_line(
            run_cli(env, *args),
            "invalid setting: CHATFERRY_WORKER_CONCURRENCY: Input should be greater than 0",
        )
    # --debug adds the traceback; the last line is still the one that says what to set.
    debug = run_cli(env, "--debug", "worker")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "CHATFERRY_WORKER_CONCURRENCY" in debug.stderr.strip().splitlines()[-1]
    usage = run_cli(data_env, "worker", "--concurrency", "0")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_a_command_run_elsewhere_announces_the_new_database_it_creates(
    data_env: dict[str, str], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = run_cli({}, "apps", "list", "--json", cwd=elsewhere)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == []
    path = elsewhere / "chatferry-data" / "chatferry.db"
    assert first.stderr.strip().splitlines() == [
        f"chatferry: created a new database at {path} (set CHATFERRY_DATA_DIR or "
        "CHATFERRY_DATABASE_URL to use another)"
    ]
    again = run_cli({}, "apps", "list", "--json", cwd=elsewhere)
    assert (again.returncode, again.stderr) == (0, "")


def _sqlite_at_revision(path: Path, revision: str) -> str:
    url = f"sqlite:///{path}"
    engine = create_db_engine(url)
    try:
        command.upgrade(alembic_config(engine), revision)
    finally:
        engine.dispose()
    return url


def _head() -> str:
    engine = create_engine("sqlite://")  # never connected: the scripts name the head
    try:
        head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    finally:
        engine.dispose()
    assert head is not None
    return head


def test_a_worker_refuses_a_database_that_is_not_migrated(
    data_env: dict[str, str], tmp_path: Path
) -> None:
    head = _head()
    older = f"{int(head) - 1:04d}"
    url = _sqlite_at_revision(tmp_path / "old.db", older)
    env = {**data_env, "CHATFERRY_DATABASE_URL": url}
    refusal = (
        f"the database at {url} is not migrated (it is at revision {older}, this version "
        f"needs {head}): run 'chatferry serve' or 'chatferry check --migrate' once"
    )
    only_error_line(run_cli(env, "worker"), refusal)
    only_error_line(run_cli(env, "check"), refusal)
    engine = create_db_engine(url)
    try:
        assert schema_revisions(engine) == (older, head)  # the refusals changed nothing

        migrated = run_cli(env, "check", "--migrate")
        assert migrated.returncode == 0, migrated.stderr
        assert "database, schema, keys and storage: ok" in migrated.stdout
        assert schema_revisions(engine) == (head, head)
    finally:
        engine.dispose()
    worker = WorkerProcess(
        cli_command("worker"),
        env={**os.environ, **env},
        stdout=(tmp_path / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    worker.log_path = tmp_path / "worker.log"
    try:
        worker.wait_started()
    finally:
        kill(worker)


@pytest.fixture
def schema_with_password(postgres_schema: PostgresSchema) -> str:
    """The session's PostgreSQL schema, its URL carrying a password (trust auth ignores
    it), emptied like every test's database."""
    postgres_schema.empty()
    url = make_url(postgres_schema.url).set(password="pw-Never-Shown-7f3")
    return url.render_as_string(hide_password=False)


def test_check_shows_the_configuration_in_use_without_the_password(
    data_env: dict[str, str], tmp_path: Path, schema_with_password: str
) -> None:
    env = {"CHATFERRY_DATA_DIR": "relative-data", "CHATFERRY_DATABASE_URL": schema_with_password}
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shown = dict(line.split(None, 1) for line in done.stdout.strip().splitlines())
    data_dir = tmp_path / "relative-data"
    assert shown["data_dir"] == str(data_dir)
    host = make_url(schema_with_password).host
    assert shown["database_url"].startswith(f"postgresql://postgres:***@{host}:")
    assert shown["storage_url"] == (data_dir / "files").as_uri()
    assert shown["checks"] == "database, schema, keys and storage: ok"

    as_json = run_cli(env, "check", "--json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["ok"] is True
    assert set(report["checks"].values()) == {"ok"}
    assert report["configuration"]["data_dir"] == str(data_dir)
    assert report["configuration"]["database_url"] == shown["database_url"]
    assert report["configuration"]["storage_url"] == shown["storage_url"]
    for output in (done.stdout, done.stderr, as_json.stdout, as_json.stderr):
        assert "pw-Never-Shown-7f3" not in output


def test_check_json_reports_a_failure_as_json(data_env: dict[str, str]) -> None:
    port = free_port()
    env = {**data_env, "CHATFERRY_DATABASE_URL": f"postgresql://u:pw-hidden@127.0.0.1:{port}/x"}
    done = run_cli(env, "check", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert "nothing answers there" in report["problem"]
    assert report["configuration"]["database_url"] == f"postgresql://u:***@127.0.0.1:{port}/x"
    assert "pw-hidden" not in done.stdout + done.stderr
