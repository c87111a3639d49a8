"""Nothing sensitive at rest that need not be (issue 7): uploads gone when their import
ends, owner-only files, the signing key outside the database, rotation, bounded links."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from chatferry.db.engine import transaction
from chatferry.db.models import Import, Job, ServerKey
from chatferry.runtime import Runtime, build_runtime
from chatferry.security.keys import KEY_FILE_NAME, write_key_file
from chatferry.security.signing import LinkSigner
from chatferry.settings import Settings
from support.apps import NewApp
from support.exports import export_and_wait, stored_files
from support.http import assert_error, relative
from support.imports import upload, user
from support.servers import ServerProcess, StartServer, StartWorker, run_cli, run_cli_json
from support.waiting import read_record, wait_final, wait_for


def uploads(where: Runtime | Settings) -> list[Path]:
    """Uploaded import files still in the local file store."""
    return [p for p in stored_files(where) if "imports" in p.parts]


# --- uploads --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "validate_only", "status"),
    [
        ([user("a@x.com")], None, "finished"),
        ([user("a@x.com"), {"Email": "not an email"}], None, "failed"),
        ([user("a@x.com")], "true", "finished"),
        (b"not json at all", None, "failed"),
    ],
    ids=["finished", "failed", "dry-run", "unreadable"],
)
def test_the_uploaded_file_is_deleted_when_its_import_ends(
    client: TestClient,
    new_app: NewApp,
    runtime: Runtime,
    rows: Any,
    validate_only: str | None,
    status: str,
) -> None:
    creds = new_app()
    response = upload(client, creds, "users", rows, validate_only=validate_only)
    assert response.status_code == 200, response.text
    unique_id = response.json()["results"]["backup_history"]["unique_id"]
    record = wait_final(client, "imports", unique_id, creds.headers, timeout=60, expect=status)
    assert record["dry_run"] is (validate_only == "true")
    wait_for(lambda: uploads(runtime) == [], timeout=5)

    def stored_key() -> str | None:
        """The record's storage key (the job clears it just after deleting the file)."""
        with transaction(runtime.sessions) as session:
            stored = session.scalar(select(Import).where(Import.unique_id == unique_id))
            return None if stored is None else stored.storage_key

    wait_for(lambda: stored_key() == "", timeout=5)


def _slow_users(count: int) -> list[dict[str, str]]:
    """Users with plain passwords: seconds of Argon2 hashing, a window to kill a worker."""
    return [
        {"Email": f"u{i}@example.com", "Name": f"U {i}", "Password": f"pw-{i}"}
        for i in range(count)
    ]


def _job_of(runtime: Runtime, unique_id: str) -> Job | None:
    with transaction(runtime.sessions) as session:
        import_id = session.scalar(select(Import.id).where(Import.unique_id == unique_id))
        return session.scalar(select(Job).where(Job.kind == "import", Job.target_id == import_id))


@pytest.mark.parametrize("extra_env", [{"CHATFERRY_JOB_MAX_CRASHES": "1"}])
def test_no_upload_is_left_when_crashes_exhaust_the_budget(
    runtime: Runtime, new_app: NewApp, start_server: StartServer, start_worker: StartWorker
) -> None:
    creds = new_app()
    server = start_server(None, "--no-worker")
    response = upload(server.http, creds, "users", _slow_users(150))
    assert response.status_code == 200, response.text
    unique_id = response.json()["results"]["backup_history"]["unique_id"]
    assert len(uploads(runtime)) == 1
    first = start_worker(name="worker-killed", ready=False)

    def running() -> bool:
        job = _job_of(runtime, unique_id)
        return job is not None and job.status == "running"

    wait_for(running, timeout=30)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert len(uploads(runtime)) == 1
    start_worker(name="worker-reaper")  # its reaper finds the lease run out: no crash left
    record = wait_final(server.http, "imports", unique_id, creds.headers, timeout=60)
    assert record["status"] == "failed", record
    assert "upload the file again" in record["errors"]["Message"]
    wait_for(lambda: uploads(runtime) == [], timeout=10)


# --- file modes -------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_real_server_keeps_its_data_dir_to_its_owner(
    start_server: StartServer, settings_env: dict[str, str]
) -> None:
    # The database in the data dir, as the server creates it (not the test's copy).
    env = {**settings_env, "CHATFERRY_DATABASE_URL": ""}
    old_umask = os.umask(0o022)  # the server must not rely on its parent's umask
    try:
        server = start_server({"CHATFERRY_DATABASE_URL": ""})
        creds = run_cli_json(env, "apps", "create", "--name", "Modes")
    finally:
        os.umask(old_umask)
    headers = {"QISCUS-SDK-APP-ID": creds["app_id"], "QISCUS-SDK-SECRET": creds["secret"]}
    record = export_and_wait(server.http, headers, type="users")
    assert server.http.get(record["download_url"]).status_code == 200
    data_dir = Path(env["CHATFERRY_DATA_DIR"])
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / "chatferry.db") == 0o600
    assert _mode(data_dir / KEY_FILE_NAME) == 0o600
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.name == f"{record['unique_id']}.json" for p in files)
    assert {str(p.relative_to(data_dir)): oct(_mode(p)) for p in files if _mode(p) != 0o600} == {}
    folders = [p for p in data_dir.rglob("*") if p.is_dir()]
    assert {str(p): oct(_mode(p)) for p in folders if _mode(p) & 0o077} == {}


# --- the signing key ----------------------------------------------------------------------


def test_the_signing_key_is_not_in_the_database(runtime: Runtime) -> None:
    keys = orjson.loads((runtime.settings.data_dir / KEY_FILE_NAME).read_bytes())
    with transaction(runtime.sessions) as session:
        rows = {k.name: k.value for k in session.scalars(select(ServerKey))}
    assert keys["signing_key"] not in rows.values()
    assert keys["secret_hash_key"] not in rows.values()
    assert set(rows) <= {"secret_hash_key_fingerprint"}


def test_a_signing_key_an_older_version_kept_in_the_database_moves_to_the_key_file(
    settings: Settings, runtime: Runtime
) -> None:
    key_file = settings.data_dir / KEY_FILE_NAME
    keys = orjson.loads(key_file.read_bytes())
    del keys["signing_key"]  # as before 0.2: the signing key lived in the database
    write_key_file(key_file, keys)
    with transaction(runtime.sessions) as session:
        session.add(ServerKey(name="download_signing_key", value="legacy-key-" + "0" * 40))
    moved = build_runtime(settings)
    try:
        assert orjson.loads(key_file.read_bytes())["signing_key"] == "legacy-key-" + "0" * 40
        with transaction(moved.sessions) as session:
            assert session.get(ServerKey, "download_signing_key") is None
    finally:
        moved.close()


def _restart(server: ServerProcess, start_server: StartServer) -> ServerProcess:
    server.stop()
    return start_server()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_links_survive_a_key_rotation_and_a_restart(
    start_server: StartServer, new_app: NewApp, settings_env: dict[str, str]
) -> None:
    creds = new_app()
    server = start_server()
    record = export_and_wait(server.http, creds.headers, type="users")
    old_link = relative(record["download_url"])  # the restarted server has another port
    before = server.http.get(old_link).content

    done = run_cli(settings_env, "keys", "rotate-signing")
    assert done.returncode == 0, done.stderr
    server = _restart(server, start_server)
    assert server.http.get(old_link).content == before  # the previous key still counts
    new_link = relative(
        read_record(server.http, "exports", record["unique_id"], creds.headers)["download_url"]
    )
    assert new_link.split("signature=")[1] != old_link.split("signature=")[1]
    assert server.http.get(new_link).status_code == 200

    assert run_cli(settings_env, "keys", "rotate-signing").returncode == 0
    server = _restart(server, start_server)
    assert_error(server.http.get(old_link), 403, "signature")  # two keys ago: gone
    assert server.http.get(new_link).status_code == 200


def _link(unique_id: str, expires: int | str, signature: str) -> str:
    return f"/api/v2.1/rest/exports/{unique_id}/file?expires={expires}&signature={signature}"


def test_a_link_signed_with_an_unknown_key_is_refused(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    record = export_and_wait(client, creds.headers, type="users")
    expires = int(time.time()) + 600
    forged = LinkSigner(b"not-our-key").signature(record["unique_id"], expires)
    assert_error(client.get(_link(record["unique_id"], expires, forged)), 403, "signature")


def test_a_link_expiring_beyond_the_lifetime_is_refused(
    client: TestClient, new_app: NewApp, runtime: Runtime
) -> None:
    creds = new_app()
    record = export_and_wait(client, creds.headers, type="users")
    uid = record["unique_id"]
    assert client.get(relative(record["download_url"])).status_code == 200
    ttl = runtime.settings.download_url_ttl_seconds
    for ahead in (ttl + 3600, 10 * 365 * 86400, 999_999_999_999 - int(time.time())):
        far = int(time.time()) + ahead
        signed = runtime.signer.signature(uid, far)  # a valid signature, our own key
        assert_error(client.get(_link(uid, far, signed)), 403)


@pytest.mark.parametrize(
    "signature",
    ["%C3%A9" * 64, "z" * 64, "%00" * 64, "ab", "A" * 64, "%FF%FE", "0" * 65, "+" * 64],
)
def test_a_signature_that_is_not_64_hex_characters_is_a_403(
    client: TestClient, new_app: NewApp, signature: str
) -> None:
    creds = new_app()
    record = export_and_wait(client, creds.headers, type="users")
    expires = relative(record["download_url"]).split("expires=")[1].split("&")[0]
    response = client.get(_link(record["unique_id"], expires, signature))
    assert_error(response, 403, "signature")


@pytest.mark.parametrize("expires", ["%D9%A1%D9%A2%D9%A3", "-1", "1e10", "", "9" * 40])
def test_an_expiry_that_is_not_a_plain_number_is_a_403(
    client: TestClient, new_app: NewApp, expires: str
) -> None:
    creds = new_app()
    record = export_and_wait(client, creds.headers, type="users")
    signature = record["download_url"].split("signature=")[1]
    assert_error(client.get(_link(record["unique_id"], expires, signature)), 403)
