"""Backups with their attachments, against a real ``chatferry serve`` (SQLite) and a local
file server on 127.0.0.1 standing in for a CDN: what is fetched, stored once, recorded
with the reason it could not be, resumed, refused, and caught by ``verify``."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import obstore
import pytest

from attachment_helpers import file_comment, import_rows, moment, rooms, text_comment, users
from chatferry.client.attachments.rehost import open_storage
from client_helpers import assert_one_line_error, backup_rows, run_client
from support.file_server import FileServer, Route, file_server
from support.s3 import S3Bucket
from test_client_processes import Deployment, start_deployment

pytestmark = pytest.mark.slow

APP, SECRET = "files-app", "files-secret-123"
PICTURE = os.urandom(3000)
LARGE = os.urandom(200_000)
CAP = 100_000


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    with file_server() as server:
        server.routes.update({
            "/a.png": Route(PICTURE, content_type="image/png"),
            "/copy-of-a.png": Route(PICTURE, content_type="image/png"),
            "/busy.bin": Route(b"busy then fine", first_statuses=[429], retry_after="1"),
            "/cut.bin": Route(LARGE[:90_000], cut_first_after=30_000),
            "/slow.bin": Route(b"late", delay=3),
            "/big.bin": Route(LARGE),
            "/moved.png": Route(redirect_to="/a.png"),
            "/card.png": Route(b"card image"),
        })  # fmt: skip
        yield server


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, files: FileServer) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("files-app")
    deployment = start_deployment(directory)
    deployment.cli("apps", "create", "--name", "Files", "--app-id", APP, "--secret", SECRET)
    env = deployment.client(APP, SECRET)
    when = moment(3)
    uploads = directory / "uploads"
    uploads.mkdir()
    import_rows(env, uploads, "users", users({1: files.url("/a.png")}, when))
    import_rows(env, uploads, "rooms", rooms(2, when, files.url("/copy-of-a.png")))
    comments = [
        file_comment(f"f-{name}", files.url(f"/{name}"), when)
        for name in ("busy.bin", "cut.bin", "slow.bin", "big.bin", "missing.bin", "moved.png")
    ]
    comments.append(text_comment("card-1", when, card=files.url("/card.png")))
    import_rows(env, uploads, "comments", comments)
    yield deployment
    deployment.server.stop()


def _since() -> str:
    return (datetime.now(UTC) - timedelta(days=5)).date().isoformat()


def _backup(app: Deployment, out: Path, *extra: str) -> Any:
    return run_client(
        app.client(APP, SECRET), "backup", "--out", str(out), "--since", _since(),
        "--attachment-timeout", "0.5", "--max-attachment-bytes", str(CAP), *extra,
    )  # fmt: skip


def _manifest(directory: Path) -> dict[str, Any]:
    return dict(json.loads((directory / "manifest.json").read_text()))


@pytest.fixture(scope="module")
def backed_up(
    app: Deployment, files: FileServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("backups") / "with-files"
    return out, _backup(app, out, "--allow-private-urls")


def test_every_attachment_is_stored_once_or_recorded_with_its_reason(
    files: FileServer, backed_up: tuple[Path, Any]
) -> None:
    out, done = backed_up
    assert_one_line_error(done, 5, "3 attachment(s) could not be fetched", "run the backup again")
    index = _manifest(out)["attachments"]
    url = files.url
    picture = hashlib.sha256(PICTURE).hexdigest()
    for name in ("/a.png", "/copy-of-a.png", "/moved.png"):
        entry = index[url(name)]
        assert entry["sha256"] == picture and entry["bytes"] == len(PICTURE), name
        assert entry["fetched_at"]
    assert index[url("/a.png")]["content_type"] == "image/png"
    assert index[url("/missing.bin")]["error"] == "HTTP 404"
    assert index[url("/slow.bin")]["error"] == "timeout"
    assert index[url("/big.bin")]["error"] == f"too large ({len(LARGE)} bytes > {CAP})"
    assert all(index[url(n)]["failed_at"] for n in ("/missing.bin", "/slow.bin", "/big.bin"))
    busy = index[url("/busy.bin")]
    assert busy["sha256"] == hashlib.sha256(b"busy then fine").hexdigest()
    assert len(files.hits("/busy.bin")) == 2
    cut = index[url("/cut.bin")]
    assert cut["sha256"] == hashlib.sha256(LARGE[:90_000]).hexdigest()
    resumed = files.hits("/cut.bin")
    assert len(resumed) == 2 and resumed[1]["range"] == "bytes=30000-"
    assert url("/card.png") not in index  # not a file_attachment: only with --attachments all
    stored = sorted(p.name for p in (out / "attachments").iterdir() if not p.name.startswith("."))
    assert stored == sorted({picture, busy["sha256"], cut["sha256"]})
    assert (out / "attachments" / picture).read_bytes() == PICTURE
    assert oct((out / "attachments" / picture).stat().st_mode & 0o777) == "0o600"
    for name in ("missing.bin", "slow.bin", "big.bin"):
        assert url(f"/{name}") in done.stdout
    assert list((out / "attachments" / ".partial").iterdir()) == []


def test_verify_checks_every_attachment_and_names_a_tampered_or_deleted_one(
    backed_up: tuple[Path, Any], tmp_path: Path
) -> None:
    import shutil

    backup = tmp_path / "copy"
    shutil.copytree(backed_up[0], backup)
    checked = run_client(dict(os.environ), "verify", str(backup), "--json")
    assert checked.returncode == 0, checked.stdout
    report = json.loads(checked.stdout)
    assert report["attachments"] == report["attachments_checked"] == 3
    assert report["attachments_failed"] == 3
    picture = hashlib.sha256(PICTURE).hexdigest()
    cut = hashlib.sha256(LARGE[:90_000]).hexdigest()
    (backup / "attachments" / picture).write_bytes(bytes([PICTURE[0] ^ 0xFF]) + PICTURE[1:])
    (backup / "attachments" / cut).unlink()
    done = run_client(dict(os.environ), "verify", str(backup))
    assert_one_line_error(done, 4, "2 problem(s)")
    assert f"attachments/{picture}" in done.stdout and "changed" in done.stdout
    assert f"attachments/{cut}" in done.stdout and "missing" in done.stdout
    sampled = run_client(dict(os.environ), "verify", str(backup), "--sample", "10", "--json")
    report = json.loads(sampled.stdout)
    assert report["attachments_checked"] == 1 and report["attachments"] == 3


def test_a_second_run_fetches_only_what_is_missing(
    app: Deployment, files: FileServer, backed_up: tuple[Path, Any], tmp_path: Path
) -> None:
    import shutil

    backup = tmp_path / "again"
    shutil.copytree(backed_up[0], backup)
    files.routes["/slow.bin"].delay = 0
    cut = hashlib.sha256(LARGE[:90_000]).hexdigest()
    (backup / "attachments" / cut).unlink()  # gone: fetched again
    before = len(files.requests)
    done = _backup(app, backup, "--allow-private-urls", "--attachments", "all")
    assert_one_line_error(done, 5, "2 attachment(s) could not be fetched")
    asked = sorted({path for path, _ in files.requests[before:]})
    assert asked == ["/big.bin", "/card.png", "/cut.bin", "/missing.bin", "/slow.bin"]
    assert (backup / "attachments" / cut).read_bytes() == LARGE[:90_000]
    index = _manifest(backup)["attachments"]
    assert index[files.url("/slow.bin")]["sha256"] == hashlib.sha256(b"late").hexdigest()
    assert index[files.url("/card.png")]["bytes"] == len(b"card image")
    files.routes["/slow.bin"].delay = 3


def test_a_loopback_url_is_refused_without_the_flag(
    app: Deployment, files: FileServer, tmp_path: Path
) -> None:
    before = len(files.requests)
    out = tmp_path / "refused"
    done = _backup(app, out)
    assert_one_line_error(done, 5, "could not be fetched")
    assert len(files.requests) == before  # the file server saw no request
    index = _manifest(out)["attachments"]
    assert index and all(
        e["error"].startswith("refused address (127.0.0.1)") for e in index.values()
    )
    assert "--allow-private-urls" in done.stdout


def test_no_attachments_fetches_nothing(app: Deployment, files: FileServer, tmp_path: Path) -> None:
    before = len(files.requests)
    out = tmp_path / "none"
    done = _backup(app, out, "--no-attachments", "--allow-private-urls")
    assert done.returncode == 0, done.stderr
    assert _manifest(out)["attachments"] == {} and len(files.requests) == before


def _restore_rehosted(
    app: Deployment, backup: Path, storage_url: str
) -> tuple[Any, dict[str, str]]:
    created = app.cli("apps", "create", "--name", "Rehosted")
    env = app.client(created["app_id"], created["secret"])
    args = ("restore", str(backup), "--rehost-attachments", storage_url,
            "--attachments-base-url", f"{NEW_BASE}/")  # fmt: skip
    done = run_client(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), env


NEW_BASE = "https://files.new.example/chat"


def _assert_rewritten(app: Deployment, env: dict[str, str], files: FileServer, out: Path) -> None:
    """Every fetched URL points at the new copy; those never fetched are as they were."""
    copy = out / "restored"
    done = run_client(env, "backup", "--out", str(copy), "--since", _since(), "--no-attachments")
    assert done.returncode == 0, done.stderr
    picture = hashlib.sha256(PICTURE).hexdigest()
    assert backup_rows(copy, "users")[0]["AvatarUrl"] == f"{NEW_BASE}/{picture}"
    assert backup_rows(copy, "rooms")[0]["AvatarUrl"] == f"{NEW_BASE}/{picture}"
    urls = {r["UniqueId"]: r["Payload"].get("url") for r in backup_rows(copy, "comments")}
    assert urls["f-moved.png"] == f"{NEW_BASE}/{picture}"
    assert urls["f-cut.bin"] == f"{NEW_BASE}/{hashlib.sha256(LARGE[:90_000]).hexdigest()}"
    assert urls["f-missing.bin"] == files.url("/missing.bin")


def _stored(backup: Path) -> dict[str, bytes]:
    folder = backup / "attachments"
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_restore_rehosts_into_a_local_directory(
    app: Deployment, files: FileServer, backed_up: tuple[Path, Any], tmp_path: Path
) -> None:
    rehosted = tmp_path / "cdn"
    summary, env = _restore_rehosted(app, backed_up[0], rehosted.as_uri())
    assert summary["rehosted"] == {"uploaded": 3, "already_there": 0}
    assert {p.name: p.read_bytes() for p in rehosted.iterdir()} == _stored(backed_up[0])
    _assert_rewritten(app, env, files, tmp_path)
    again, _ = _restore_rehosted(app, backed_up[0], rehosted.as_uri())
    assert again["rehosted"] == {"uploaded": 0, "already_there": 3}


def test_restore_rehosts_into_s3(
    app: Deployment, files: FileServer, backed_up: tuple[Path, Any], tmp_path: Path,
    s3_bucket: S3Bucket,
) -> None:  # fmt: skip
    summary, env = _restore_rehosted(app, backed_up[0], s3_bucket.storage_url)
    assert summary["rehosted"] == {"uploaded": 3, "already_there": 0}
    prefix = s3_bucket.prefix + "/"
    keys = {k[len(prefix):] for k in s3_bucket.object_keys()}  # fmt: skip
    stored = _stored(backed_up[0])
    assert keys == set(stored)
    bucket = open_storage(s3_bucket.storage_url)
    for name, data in stored.items():
        assert bytes(obstore.get(bucket, name).bytes()) == data
    _assert_rewritten(app, env, files, tmp_path)
    again, _ = _restore_rehosted(app, backed_up[0], s3_bucket.storage_url)
    assert again["rehosted"] == {"uploaded": 0, "already_there": 3}


def test_a_scoped_restore_rehosts_the_files_of_its_rows(
    app: Deployment, backed_up: tuple[Path, Any], tmp_path: Path
) -> None:
    created = app.cli("apps", "create", "--name", "Scoped rehosted")
    env = app.client(created["app_id"], created["secret"])
    rehosted = tmp_path / "cdn"
    done = run_client(
        env, "restore", str(backed_up[0]), "--rooms", "room-1", "--types", "users,rooms,comments",
        "--rehost-attachments", rehosted.as_uri(), "--attachments-base-url", NEW_BASE, "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == {"users": 3, "rooms": 1, "comments": 7}
    copy = tmp_path / "copy"
    assert run_client(env, "backup", "--out", str(copy), "--since", _since(),
                      "--no-attachments").returncode == 0  # fmt: skip
    picture = hashlib.sha256(PICTURE).hexdigest()
    assert [r["AvatarUrl"] for r in backup_rows(copy, "rooms")] == [f"{NEW_BASE}/{picture}"]
    moved = next(r for r in backup_rows(copy, "comments") if r["UniqueId"] == "f-moved.png")
    assert moved["Payload"]["url"] == f"{NEW_BASE}/{picture}"
    assert (rehosted / picture).read_bytes() == PICTURE


def test_demo_data_with_files_backs_up_every_file(
    app: Deployment, files: FileServer, tmp_path: Path
) -> None:
    created = app.cli("apps", "create", "--name", "Demo files")
    app.cli("demo-data", "--app-id", created["app_id"], "--users", "6", "--rooms", "4",
            "--comments", "60", "--days", "3", "--seed", "3",
            "--files-base-url", files.url("/demo"))  # fmt: skip
    files.default = Route(b"the same demo file", content_type="image/jpeg")
    try:
        out = tmp_path / "demo"
        env = app.client(created["app_id"], created["secret"])
        args = ("backup", "--out", str(out), "--since", _since(), "--allow-private-urls")
        done = run_client(env, *args)
    finally:
        files.default = None
    assert done.returncode == 0, done.stderr
    index = _manifest(out)["attachments"]
    kinds = {url.split("/demo/")[1].split("/")[0] for url in index}
    assert kinds == {"avatars", "rooms", "files"} and len(index) > 10
    assert {e["sha256"] for e in index.values()} == {
        hashlib.sha256(b"the same demo file").hexdigest()
    }
    comments = [r for r in backup_rows(out, "comments") if r["Type"] == "file_attachment"]
    assert comments and all(r["Payload"]["url"] in index for r in comments)
