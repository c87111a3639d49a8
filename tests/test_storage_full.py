"""A full disk under local storage: a real tmpfs of 4 MB, so writes fail with ENOSPC.

An export that cannot fit fails at once with a message that says the storage is full
(no retries, no partial file); under CHATFERRY_STORAGE_MIN_FREE_BYTES of free space
/readyz says why it is not ready and new exports get 503; once space is freed, both
work again.
"""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from chatferry.api import health
from chatferry.db.engine import transaction
from chatferry.db.models import User
from chatferry.runtime import Runtime
from support.apps import NewApp
from support.exports import create_export, wait_done
from support.http import EXPORTS, IMPORTS, assert_error
from support.rows import app_pk

MB = 1024 * 1024
MIN_FREE = MB // 2

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs (needs root, or CAP_SYS_ADMIN; skipped with the reason elsewhere)."""
    where = tmp_path / "small-disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


@pytest.fixture
def extra_env(small_disk: Path) -> dict[str, str]:
    return {
        "CHATFERRY_STORAGE_URL": (small_disk / "files").as_uri(),
        "CHATFERRY_STORAGE_MIN_FREE_BYTES": str(MIN_FREE),
    }


@pytest.fixture(autouse=True)
def fresh_readiness(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every /readyz checks again (instead of answering from its 5-second cache)."""
    monkeypatch.setattr(health, "READY_CACHE_SECONDS", 0.0)


def add_big_users(rt: Runtime, app_id: str, count: int) -> None:
    """``count`` users of about 2 KB each in an export file."""
    pk = app_pk(rt, app_id)
    moment = datetime.now(UTC) - timedelta(hours=1)
    rows = [
        {
            "app_pk": pk,
            "email": f"u{i}@example.com",
            "name": f"user {i}",
            "avatar_url": "https://example.com/" + "a" * 2000,
            "authentication_token": uuid.uuid4().hex,
            "password_hash": "",
            "created_at": moment,
        }
        for i in range(count)
    ]
    with transaction(rt.sessions) as session:
        session.execute(insert(User), rows)


def fill(path: Path, size: int | None = None) -> None:
    """Writes ``size`` bytes to ``path``, or until the file system is full."""
    block = b"\0" * 64 * 1024
    with path.open("wb") as out:
        written = 0
        while size is None or written < size:
            try:
                out.write(block)
                out.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return
            written += len(block)


def files_on(disk: Path) -> list[Path]:
    return [Path(root) / name for root, _, names in os.walk(disk / "files") for name in names]


def test_a_full_disk_fails_the_export_at_once_and_refuses_new_ones_until_freed(
    client: TestClient,
    runtime: Runtime,
    new_app: NewApp,
    small_disk: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    creds = new_app("disk")
    add_big_users(runtime, creds.app_id, 900)  # a file of about 1.9 MB
    ballast = small_disk / "ballast"
    fill(ballast, 3 * MB)  # about 1 MB left: above the minimum, too little for the file

    record = create_export(client, creds.headers, type="users")
    failed = wait_done(client, creds.headers, record["unique_id"])
    assert failed["status"] == "failed", failed
    message = failed["error_message"]
    assert "the file storage is full" in message and "free space" in message, message
    assert "could not be reached" not in message and "try 1 of" not in message
    assert files_on(small_disk) == []  # nothing half-written left
    # One line for the operator, no retries, no traceback.
    lines = [r for r in caplog.records if r.name == "chatferry.jobs.worker"]
    [line] = [r for r in lines if r.getMessage() == "job failed"]
    assert "the file storage is full" in line.chatferry_fields["error"]  # type: ignore[attr-defined]
    assert line.exc_info is None
    assert not [r for r in lines if r.getMessage() == "job retried"]

    # An upload that does not fit: 503, and nothing stored.
    upload = b"[" + b" " * (2 * MB) + b"]"
    files = {"file": ("rows.json", upload, "application/json")}
    sent = client.post(IMPORTS, data={"type": "users"}, files=files, headers=creds.headers)
    assert_error(sent, 503, "the file storage is full", "try again later")
    assert files_on(small_disk) == []

    # Under the minimum: not ready, with the reason, and no new export taken.
    fill(small_disk / "more-ballast")
    assert_error(client.get("/readyz"), 503, "nearly full", "CHATFERRY_STORAGE_MIN_FREE_BYTES")
    refused = client.post(EXPORTS, json={"type": "users"}, headers=creds.headers)
    assert_error(refused, 503, "new exports are refused", "nearly full", "try again later")
    assert refused.headers["retry-after"] == "60"

    # Space freed: ready, and the same export now fits.
    ballast.unlink()
    (small_disk / "more-ballast").unlink()
    assert client.get("/readyz").status_code == 200
    again = create_export(client, creds.headers, type="users")
    done = wait_done(client, creds.headers, again["unique_id"])
    assert done["status"] == "finished", done
    [stored] = files_on(small_disk)
    assert stored.stat().st_size == done["size"] > 1.5 * MB
