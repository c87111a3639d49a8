"""The client against real ``chatferry serve`` processes: a source app on SQLite with 120
days of data, restored into empty apps on a second server on PostgreSQL.

The servers and the first backup are shared by the module's tests (they are the slow part).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from argon2 import PasswordHasher

from client_helpers import (
    assert_one_line_error,
    backup_rows,
    client_env,
    comparable,
    run_client,
    run_client_json,
)
from support import warm
from support.db import IN_CI, POSTGRES_URL, _postgres_unavailable
from support.servers import ServerProcess, cli_command, free_port
from support.waiting import wait_for

pytestmark = pytest.mark.slow

SOURCE_ID, SOURCE_SECRET = "source-app", "source-secret-123"
COMMENT_LIMIT = 700
KNOWN_PASSWORDS = {"ada@known.example": "correct horse 1", "bo@known.example": "battery staple 2"}


@dataclass
class Deployment:
    """A running server and the CHATFERRY_* settings of its processes."""

    server: ServerProcess
    settings: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.base_url

    def cli(self, *args: str) -> Any:
        """A server-side command (apps, demo-data) with this deployment's settings."""
        done = warm.run(args, {**os.environ, **self.settings}, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def client(self, app_id: str, secret: str) -> dict[str, str]:
        return client_env(dict(os.environ), self.url, app_id, secret)


def _start(settings: dict[str, str], log_path: Path) -> ServerProcess:
    port = free_port()
    process = subprocess.Popen(
        cli_command("serve", "--host", "127.0.0.1", "--port", str(port)),
        env={**os.environ, **settings},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)

    def ready() -> bool:
        import httpx

        if process.poll() is not None:
            raise AssertionError(f"server exited: {log_path.read_text()}")
        try:
            return httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=30)
    return server


def _settings(directory: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "CHATFERRY_DATA_DIR": str(directory / "data"),
        "CHATFERRY_DATABASE_URL": database_url,
        "CHATFERRY_JOB_POLL_SECONDS": "0.1",
        "CHATFERRY_JOB_LEASE_SECONDS": "3",
        **extra,
    }


def start_deployment(directory: Path, database_url: str = "", **extra: str) -> Deployment:
    """``chatferry serve`` with its data in ``directory`` (and SQLite there, unless a
    ``database_url`` is given), extra CHATFERRY_* settings, its log in serve.log."""
    url = database_url or f"sqlite:///{directory / 'chatferry.db'}"
    settings = _settings(directory, url, **extra)
    return Deployment(_start(settings, directory / "serve.log"), settings)


def _known_users_file(directory: Path) -> Path:
    moment = (datetime.now(UTC) - timedelta(days=100)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [
        {"Email": email, "Name": email.split("@")[0], "AvatarUrl": "", "Password": password,
         "AuthenticationToken": f"known-{i}", "CreateAt": moment}
        for i, (email, password) in enumerate(KNOWN_PASSWORDS.items())
    ]  # fmt: skip
    path = directory / "known-users.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """SQLite, 120 days of demo data, and a comment limit that 30 days exceed."""
    directory = tmp_path_factory.mktemp("source")
    deployment = start_deployment(directory, CHATFERRY_EXPORT_MAX_COMMENTS=str(COMMENT_LIMIT))
    deployment.cli("apps", "create", "--name", "Source", "--app-id", SOURCE_ID,
                   "--secret", SOURCE_SECRET)  # fmt: skip
    deployment.cli("demo-data", "--app-id", SOURCE_ID, "--users", "80", "--rooms", "40",
                   "--comments", "3000", "--days", "120", "--seed", "7")  # fmt: skip
    env = deployment.client(SOURCE_ID, SOURCE_SECRET)
    imported = run_client_json(
        env, "import", str(_known_users_file(directory)), "--type", "users", "--wait"
    )
    assert imported["status"] == "finished" and imported["total_rows"] == 2, imported
    yield deployment
    deployment.server.stop()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    problem = _postgres_unavailable()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but {problem}")
        pytest.skip(problem)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND query LIKE %s",
            (f"%{schema}%",),
        )
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Deployment]:
    """PostgreSQL, a small upload limit (so restores cut many uploads after a 413)."""
    directory = tmp_path_factory.mktemp("target")
    deployment = start_deployment(directory, postgres_url, CHATFERRY_IMPORT_MAX_BYTES="150000")
    yield deployment
    deployment.server.stop()


@pytest.fixture(scope="module")
def full_backup(source: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One backup of the source with the defaults (it finds the oldest data itself)."""
    out = tmp_path_factory.mktemp("backups") / "full"
    done = run_client(source.client(SOURCE_ID, SOURCE_SECRET), "backup", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def _manifest(directory: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((directory / "manifest.json").read_text())
    return manifest


def _new_app(deployment: Deployment, name: str) -> dict[str, str]:
    created = deployment.cli("apps", "create", "--name", name)
    return deployment.client(created["app_id"], created["secret"])


def _backup_of(env: dict[str, str], manifest: dict[str, Any], out: Path) -> Path:
    """A backup of another app over the same days as ``manifest``."""
    since, until = manifest["since"], manifest["until"]
    done = run_client(env, "backup", "--out", str(out), "--since", since, "--until", until)
    assert done.returncode == 0, done.stderr
    return out


def run_killed(
    args: tuple[str, ...],
    env: dict[str, str],
    rng: random.Random,
    progress: Callable[[], int],
    steps: tuple[int, int],
    kills: int,
) -> int:
    """Runs the command and SIGKILLs it once ``progress()`` has grown by a random number of
    ``steps`` since the run began (a moment in its work, not on the clock: a faster client
    is still killed mid-way), up to ``kills`` times, then lets it finish (it must exit 0);
    returns how often it was killed."""
    for round_ in range(kills + 1):
        target = progress() + rng.randint(*steps)
        process = subprocess.Popen(cli_command(*args), env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)  # fmt: skip
        if round_ < kills:
            deadline = time.monotonic() + 120
            while process.poll() is None and progress() < target and time.monotonic() < deadline:
                time.sleep(0.005)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                continue
        process.wait(timeout=120)
        assert process.returncode == 0, process.stderr.read() if process.stderr else ""
        return round_
    raise AssertionError("unreachable")


def parts_written(out: Path) -> Callable[[], int]:
    """How many part files the backup in ``out`` holds so far."""
    return lambda: sum(1 for _ in out.glob("*/*.json")) if out.is_dir() else 0


def uploads_imported(backup: Path) -> Callable[[], int]:
    """How many of the restore's uploads its state file records as sent or imported."""

    def count() -> int:
        try:
            text = (backup / "restore-state.json").read_text()
        except (FileNotFoundError, ValueError):
            return 0
        return text.count('"imported"') + text.count('"sent"')

    return count


def assert_same_rows(first: Path, second: Path) -> None:
    for resource in ("users", "rooms", "comments"):
        left = [comparable(resource, r) for r in backup_rows(first, resource)]
        right = [comparable(resource, r) for r in backup_rows(second, resource)]
        assert len(left) == len(right), resource
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            assert a == b, (resource, index, a, b)


def test_backup_walks_windows_splits_over_the_limit_and_verifies(
    source: Deployment, full_backup: Path
) -> None:
    manifest = _manifest(full_backup)
    assert manifest["server"] == source.url and manifest["app_id"] == SOURCE_ID
    assert manifest["client_version"] and manifest["created_at"] and manifest["pending"] == []
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    assert manifest["until"] == yesterday.isoformat()
    since = date.fromisoformat(manifest["since"])
    # The walk back kept no empty window before the oldest data (120 days ago).
    assert yesterday - timedelta(days=150) < since <= yesterday - timedelta(days=119)
    for resource in ("users", "rooms", "comments"):
        parts = sorted(
            (p for p in manifest["parts"] if p["type"] == resource), key=lambda p: p["start_date"]
        )
        assert parts[0]["start_date"] == manifest["since"]
        assert parts[-1]["end_date"] == manifest["until"]
        for part in parts:
            days = date.fromisoformat(part["end_date"]) - date.fromisoformat(part["start_date"])
            assert days.days < 30, part
            assert part["sha256_from_server"] is True
            assert (full_backup / part["file"]).stat().st_size == part["bytes"]
    comments = [p for p in manifest["parts"] if p["type"] == "comments"]
    assert max(p["rows"] for p in comments) <= COMMENT_LIMIT
    assert any(p["end_date"] != p["start_date"] and p["rows"] > 0 and
               (date.fromisoformat(p["end_date"]) - date.fromisoformat(p["start_date"])).days < 29
               for p in comments), "no window was split for the row limit"  # fmt: skip
    assert sum(p["rows"] for p in comments) > 2500
    assert sum(p["rows"] for p in manifest["parts"] if p["type"] == "users") == 82
    # The server's exports were deleted once their files were verified here.
    listed = run_client_json(source.client(SOURCE_ID, SOURCE_SECRET), "export", "list", "--all")
    backed_up = {p["export_id"] for p in manifest["parts"]}
    assert not backed_up & {r["unique_id"] for r in listed}
    verified = run_client(dict(os.environ), "verify", str(full_backup), "--json")
    assert verified.returncode == 0, verified.stdout
    assert json.loads(verified.stdout)["ok"] is True


def _refused_exports(deployment: Deployment) -> int:
    """How many POST /exports the server has answered 400 (its access log)."""
    lines = deployment.server.log_path.read_text().splitlines()
    return sum('"POST /api/v2.1/rest/exports HTTP/1.1" 400' in line for line in lines)


def test_backup_cuts_windows_to_the_row_limit_from_the_days_counts_without_a_refusal(
    source: Deployment, full_backup: Path, tmp_path: Path
) -> None:
    manifest = _manifest(full_backup)
    refused_before = _refused_exports(source)
    out = _backup_of(source.client(SOURCE_ID, SOURCE_SECRET), manifest, tmp_path / "packed")
    # 30 days of comments pass the limit here: cut by trial, some windows were refused.
    assert _refused_exports(source) == refused_before
    comments = sorted(
        (p for p in _manifest(out)["parts"] if p["type"] == "comments"),
        key=lambda p: p["start_date"],
    )
    assert sum(p["rows"] for p in comments) == sum(
        p["rows"] for p in manifest["parts"] if p["type"] == "comments"
    )
    for part, after in itertools.pairwise(comments):
        assert part["rows"] <= COMMENT_LIMIT
        days = (date.fromisoformat(part["end_date"]) - date.fromisoformat(part["start_date"])).days
        # Full: the next day would have passed the limit (or the longest export).
        assert part["rows"] + after["rows"] > COMMENT_LIMIT or days == 29, (part, after)


def test_restore_into_an_empty_app_on_postgresql_gives_the_same_rows(
    full_backup: Path, target: Deployment, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    shutil.copytree(full_backup, backup)
    env = _new_app(target, "Restored")
    planned = run_client_json(env, "restore", str(backup), "--dry-run")
    assert planned["dry_run"] is True and planned["checked_on_server"]
    assert not (backup / "restore-state.json").exists()
    checked = run_client_json(env, "import", "list")
    assert checked and all(r["dry_run"] and r["status"] == "finished" for r in checked)

    summary = run_client_json(env, "restore", str(backup))
    manifest = _manifest(backup)
    for resource in ("users", "rooms", "comments"):
        expected = sum(p["rows"] for p in manifest["parts"] if p["type"] == resource)
        assert summary["rows"][resource] == expected
    imports = run_client_json(env, "import", "list", "--all")
    real = [r for r in imports if not r["dry_run"]]
    assert len(real) == summary["uploads"] >= 7  # cut small after the server's 413
    assert all(r["status"] == "finished" and r["size"] <= 150000 for r in imports)
    # Each upload is imported without a dry run of its own (an import is validated whole
    # before any row is written): the only dry runs are those of `restore --dry-run`.
    assert len([r for r in imports if r["dry_run"]]) == len(checked)

    copy = _backup_of(env, manifest, tmp_path / "restored")
    assert_same_rows(backup, copy)
    hashes = {r["Email"]: r["PasswordHash"] for r in backup_rows(copy, "users")}
    for email, password in KNOWN_PASSWORDS.items():
        assert PasswordHasher().verify(hashes[email], password)

    again = run_client_json(env, "restore", str(backup))
    assert again["imported_now"] == 0 and again["already_imported"] == summary["uploads"]


def test_restore_killed_at_random_moments_finishes_without_a_duplicate(
    full_backup: Path, target: Deployment, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    shutil.copytree(full_backup, backup)
    env = _new_app(target, "Killed restore")
    progress = uploads_imported(backup)
    kills = run_killed(("restore", str(backup)), env, random.Random(11), progress, (1, 2), 3)
    assert kills >= 2, "the restore finished before it could be killed twice"
    imports = run_client_json(env, "import", "list", "--all")
    assert all(r["status"] == "finished" for r in imports), [
        r["errors"] for r in imports if r["status"] != "finished"
    ]
    copy = _backup_of(env, _manifest(backup), tmp_path / "restored")
    assert_same_rows(backup, copy)


def test_incremental_backup_adds_only_the_new_days(
    source: Deployment, full_backup: Path, tmp_path: Path
) -> None:
    env = source.client(SOURCE_ID, SOURCE_SECRET)
    full = _manifest(full_backup)
    out = tmp_path / "incremental"
    first_until = (date.fromisoformat(full["until"]) - timedelta(days=17)).isoformat()
    first = run_client_json(
        env, "backup", "--out", str(out), "--since", full["since"], "--until", first_until
    )
    before = {p["file"]: p["sha256"] for p in first["manifest"]["parts"]}
    assert first["manifest"]["until"] == first_until

    second = run_client_json(env, "backup", "--out", str(out))
    manifest = second["manifest"]
    assert manifest["until"] == full["until"] and manifest["since"] == full["since"]
    new = [p for p in manifest["parts"] if p["file"] not in before]
    assert second["new_parts"] == len(new) >= 3
    assert all(p["start_date"] > first_until for p in new)
    assert {p["file"]: p["sha256"] for p in manifest["parts"] if p["file"] in before} == before
    assert_same_rows(full_backup, out)
    assert run_client(dict(os.environ), "verify", str(out)).returncode == 0
    assert run_client_json(env, "backup", "--out", str(out))["new_parts"] == 0


def test_backup_killed_at_random_moments_resumes(
    source: Deployment, full_backup: Path, tmp_path: Path
) -> None:
    env = source.client(SOURCE_ID, SOURCE_SECRET)
    full = _manifest(full_backup)
    out = tmp_path / "killed"
    args = ("backup", "--out", str(out), "--since", full["since"], "--until", full["until"])
    assert run_killed(args, env, random.Random(5), parts_written(out), (1, 3), 2) >= 1
    assert _manifest(out)["pending"] == []
    assert_same_rows(full_backup, out)
    assert run_client(dict(os.environ), "verify", str(out)).returncode == 0


def test_a_tampered_part_is_caught_and_not_restored(
    full_backup: Path, target: Deployment, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    shutil.copytree(full_backup, backup)
    part = next(p for p in _manifest(backup)["parts"] if p["type"] == "comments" and p["rows"])
    path = backup / part["file"]
    rows = json.loads(path.read_bytes())
    rows[0]["Message"] = "not what was said"
    path.write_text(json.dumps(rows))
    done = run_client(dict(os.environ), "verify", str(backup))
    assert_one_line_error(done, 4, "problem(s) in the backup")
    assert part["file"] in done.stdout and "sha256" in done.stdout
    env = _new_app(target, "Not restored")
    refused = run_client(env, "restore", str(backup))
    assert_one_line_error(refused, 4, "nothing was restored", "chatferry verify")
    assert run_client_json(env, "import", "list") == []


def test_an_upload_the_server_refuses_imports_nothing_and_stops_the_restore(
    full_backup: Path, target: Deployment, tmp_path: Path
) -> None:
    # No dry run precedes an upload: the import itself is validated whole before any row.
    backup = tmp_path / "backup"
    shutil.copytree(full_backup, backup)
    env = _new_app(target, "Holds a user already")
    users = next(p for p in _manifest(backup)["parts"] if p["type"] == "users" and p["rows"])
    seed = tmp_path / "seed.json"
    seed.write_bytes(json.dumps(json.loads((backup / users["file"]).read_bytes())[:1]).encode())
    assert run_client(env, "import", str(seed), "--type", "users", "--wait").returncode == 0
    refused = run_client(env, "restore", str(backup))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "ended failed" in refused.stderr, refused.stderr
    imports = run_client_json(env, "import", "list", "--all")
    restored = [r for r in imports if str(r["original_filename"]).startswith("restore-")]
    assert [(r["status"], r["dry_run"]) for r in restored] == [("failed", False)]


def test_one_day_over_the_row_limit_stops_the_backup_with_what_to_raise(
    source: Deployment, full_backup: Path, tmp_path: Path
) -> None:
    env = source.client(SOURCE_ID, SOURCE_SECRET)
    manifest = _manifest(full_backup)
    busy = max((p for p in manifest["parts"] if p["type"] == "comments"), key=lambda p: p["rows"])
    source.cli("apps", "update", SOURCE_ID, "--export-max-comments", "3")
    try:
        done = run_client(
            env, "backup", "--out", str(tmp_path / "b"), "--types", "comments",
            "--since", busy["start_date"], "--until", busy["end_date"],
        )  # fmt: skip
    finally:
        source.cli("apps", "update", SOURCE_ID, "--export-max-comments", "0")
    line = assert_one_line_error(done, 1, "over the server's limit of 3 rows", "cannot split a day")
    assert "CHATFERRY_EXPORT_MAX_COMMENTS" in line and "--export-max-comments" in line
    assert line.split("comments of ")[1][:10] >= busy["start_date"]


def test_export_commands_against_chatferry(source: Deployment, tmp_path: Path) -> None:
    env = source.client(SOURCE_ID, SOURCE_SECRET)
    got = run_client_json(env, "export", "create", "--type", "users", "--download", str(tmp_path))
    record, file = got["export"], got["file"]
    assert record["status"] == "finished" and file["sha256_checked"] is True
    assert Path(file["path"]).parent == tmp_path
    assert file["rows"] == record["total_rows"] and file["sha256"] == record["sha256"]
    again = run_client_json(
        env, "export", "download", record["unique_id"], "-o", str(tmp_path / "u.json")
    )
    assert (tmp_path / "u.json").read_bytes() == Path(file["path"]).read_bytes()
    assert again["file"]["rows"] == file["rows"]
    shown = run_client_json(env, "export", "get", record["unique_id"])
    assert shown["unique_id"] == record["unique_id"]
    assert record["unique_id"] in [r["unique_id"] for r in run_client_json(env, "export", "list")]
    assert (
        run_client_json(env, "export", "delete", record["unique_id"])["unique_id"]
        == record["unique_id"]
    )
    gone = run_client(env, "export", "get", record["unique_id"])
    assert_one_line_error(gone, 1, f"no export with unique_id '{record['unique_id']}'")

    over = run_client(env, "export", "create", "--type", "comments", "--start-date",
                      "2020-01-01", "--end-date", "2020-03-01")  # fmt: skip
    assert_one_line_error(over, 1, "more than the maximum of 30")
    wrong = run_client({**env, "QISCUS_SDK_SECRET": "wrong-secret-000"}, "export", "list")
    assert_one_line_error(wrong, 1)
    assert "wrong-secret-000" not in wrong.stderr + wrong.stdout


def test_the_client_learns_of_the_extensions_from_the_answers_without_a_probe(
    source: Deployment,
) -> None:
    from chatferry.api.edge import EXTENSIONS_HEADER as SENT
    from chatferry.client.http import EXTENSIONS_HEADER as READ

    assert SENT == READ
    env = source.client(SOURCE_ID, SOURCE_SECRET)
    before = len(source.server.log_path.read_text().splitlines())
    record = run_client_json(env, "export", "create", "--type", "users", "--wait")
    asked = [
        line.split('"')[1]
        for line in source.server.log_path.read_text().splitlines()[before:]
        if "uvicorn.access" in line
    ]
    waited = f"GET /api/v2.1/rest/exports/{record['unique_id']}?wait=5 HTTP/1.1"
    assert asked[0] == "POST /api/v2.1/rest/exports HTTP/1.1" and waited in asked, asked
    assert not any("page=" in line for line in asked), asked  # no list page to find out


def test_import_and_schedule_commands_against_chatferry(source: Deployment, tmp_path: Path) -> None:
    env = source.client(SOURCE_ID, SOURCE_SECRET)
    bad = tmp_path / "bad rooms.json"
    room = {"Name": "x", "Type": "group", "CreatorEmail": "nobody@x.io", "UniqueId": "r1",
            "ParticipantEmails": ["nobody@x.io"]}  # fmt: skip
    bad.write_text(json.dumps([room]))
    dry = run_client(env, "import", str(bad), "--type", "rooms", "--dry-run")
    assert_one_line_error(dry, 3, "dry run", "ended failed")
    table = " ".join(dry.stdout.split())
    assert "│ 1 │ r1 │ CreatorEmail │" in table, dry.stdout
    as_json = run_client(env, "import", str(bad), "--type", "rooms", "--dry-run", "--json")
    assert as_json.returncode == 3
    failed = json.loads(as_json.stdout)
    assert failed["dry_run"] is True and failed["errors"]["Data"][0]["key"] == "r1"
    fetched = run_client(env, "import", "get", failed["unique_id"], "--json")
    assert (
        fetched.returncode == 3 and json.loads(fetched.stdout)["unique_id"] == failed["unique_id"]
    )

    schedule = run_client_json(env, "schedules", "create", "--type", "comments", "--cron",
                               "0 3 * * *", "--window-days", "1", "--keep-last", "3")  # fmt: skip
    sid = schedule["unique_id"]
    assert run_client_json(env, "schedules", "pause", sid)["paused"] is True
    assert run_client_json(env, "schedules", "resume", sid)["paused"] is False
    assert [s["unique_id"] for s in run_client_json(env, "schedules", "list")] == [sid]
    assert run_client_json(env, "schedules", "get", sid)["cron"] == "0 3 * * *"
    assert run_client_json(env, "schedules", "delete", sid)["unique_id"] == sid
