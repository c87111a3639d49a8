"""An encrypted backup's attachments, against real ``chatferry serve`` processes (a source
on SQLite, an empty target on PostgreSQL) and a local file server on 127.0.0.1 standing in
for a CDN: every file stored encrypted under a random name, the URL index sealed per run,
nothing of the app readable in the directory, ``verify`` with and without the key, a
restore that re-hosts the decrypted files, and a later run that fetches only new URLs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyrage import decrypt, x25519

from attachment_helpers import file_comment, import_rows, moment, rooms, text_comment, users
from client_helpers import backup_rows, run_client, run_client_json
from support.file_server import FileServer, Route, file_server
from test_client_processes import (
    Deployment,
    postgres_url,  # noqa: F401 (a fixture)
    start_deployment,
)

pytestmark = pytest.mark.slow

APP, SECRET = "sealed-files", "sealed-secret-123"
PICTURE = os.urandom(3000)
DOCUMENT = os.urandom(150_000)
LATER = os.urandom(5000)
CAP = 200_000
NEW_BASE = "https://files.new.example/chat"
AGE = shutil.which("age")


def _day(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).date().isoformat()


@dataclass
class Sealed:
    out: Path
    key: Path
    env: dict[str, str]
    first: subprocess.CompletedProcess[str]
    hits_after_first: dict[str, int]
    second: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    with file_server() as server:
        server.routes.update({
            "/a.png": Route(PICTURE, content_type="image/png"),
            "/copy-of-a.png": Route(PICTURE, content_type="image/png"),
            "/doc.pdf": Route(DOCUMENT, content_type="application/pdf"),
            "/huge.bin": Route(os.urandom(CAP + 1000)),
            "/later.bin": Route(LATER),
        })  # fmt: skip
        yield server


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, files: FileServer) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("sealed-app")
    deployment = start_deployment(directory)
    deployment.cli("apps", "create", "--name", "Sealed", "--app-id", APP, "--secret", SECRET)
    env = deployment.client(APP, SECRET)
    when, uploads = moment(4), directory / "uploads"
    uploads.mkdir()
    import_rows(env, uploads, "users", users({1: files.url("/a.png")}, when))
    import_rows(env, uploads, "rooms", rooms(2, when, files.url("/copy-of-a.png")))
    comments = [file_comment(f"f-{n}", files.url(f"/{n}"), when)
                for n in ("doc.pdf", "missing.bin", "huge.bin")]  # fmt: skip
    comments.append(text_comment("plain-text-comment", when))
    import_rows(env, uploads, "comments", comments)
    yield deployment
    deployment.server.stop()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Deployment]:  # noqa: F811
    directory = tmp_path_factory.mktemp("sealed-target")
    deployment = start_deployment(directory, postgres_url)
    yield deployment
    deployment.server.stop()


def _backup(env: dict[str, str], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_client(env, "backup", "--out", str(out), "--since", _day(6), "--allow-private-urls",
                      "--max-attachment-bytes", str(CAP), *extra)  # fmt: skip


@pytest.fixture(scope="module")
def sealed(app: Deployment, files: FileServer, tmp_path_factory: pytest.TempPathFactory) -> Sealed:
    """Two runs: the first up to three days ago, the second (no --encrypt-to) after a
    comment with a new URL was imported into a later day."""
    directory = tmp_path_factory.mktemp("sealed")
    env = {k: v for k, v in app.client(APP, SECRET).items() if k != "CHATFERRY_IDENTITY_FILE"}
    key = directory / "key.txt"
    recipient = run_client(env, "keygen", "--out", str(key)).stdout.strip()
    out = directory / "backup"
    first = _backup(env, out, "--encrypt-to", recipient, "--until", _day(3))
    hits = {p: len(files.hits(p)) for p in files.routes}
    uploads = directory / "uploads"
    uploads.mkdir()
    import_rows(
        env, uploads, "comments", [file_comment("f-later", files.url("/later.bin"), moment(1.5))]
    )
    second = _backup(env, out)
    return Sealed(out, key, env, first, hits, second)


def _manifest(directory: Path) -> dict[str, Any]:
    return dict(json.loads((directory / "manifest.json").read_text()))


def _attachment_files(directory: Path) -> list[Path]:
    return sorted((directory / "attachments").glob("*.age"))


def test_every_attachment_is_stored_encrypted_and_nothing_is_readable(
    sealed: Sealed, files: FileServer
) -> None:
    assert sealed.first.returncode == 5, sealed.first.stderr  # missing.bin and huge.bin
    assert "2 attachment(s) could not be fetched" in sealed.first.stderr
    assert sealed.second.returncode == 0, sealed.second.stderr
    manifest = _manifest(sealed.out)
    assert "attachments" not in manifest
    listed = manifest["encrypted_files"]
    indexes = sorted(n for n in listed if n.startswith("attachments/index/"))
    assert len(indexes) == 2 and all(n.endswith(".json.age") for n in indexes)
    stored = _attachment_files(sealed.out)
    # The picture (under two URLs) once, the document, the later file; random names.
    assert len(stored) == 3
    assert {f"attachments/{p.name}" for p in stored} | set(indexes) == set(listed)
    assert not list(sealed.out.rglob("*.tmp")) and not list(sealed.out.rglob(".partial"))
    for path in [sealed.out, *sealed.out.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path

    secrets = {files.base_url.encode(), b"a.png", b"doc.pdf", b"later.bin", b"files.example",
               b"plain-text-comment", b"a file f-doc.pdf", PICTURE[:64], DOCUMENT[:64]}  # fmt: skip
    secrets |= {hashlib.sha256(b).hexdigest().encode() for b in (PICTURE, DOCUMENT, LATER)}
    for path in (p for p in sealed.out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert not [s for s in secrets if s in data], path


def test_age_and_pyrage_open_every_attachment(sealed: Sealed) -> None:
    identity = x25519.Identity.from_str(sealed.key.read_text().splitlines()[-1])
    opened = {decrypt(p.read_bytes(), [identity]) for p in _attachment_files(sealed.out)}
    assert opened == {PICTURE, DOCUMENT, LATER}
    assert AGE is not None, "the age tool is not installed (.ci/run installs it)"
    index = sorted((sealed.out / "attachments" / "index").iterdir())[0]
    done = subprocess.run([AGE, "-d", "-i", str(sealed.key), str(index)], capture_output=True,
                          check=True)  # fmt: skip
    entries = json.loads(done.stdout)
    picture = hashlib.sha256(PICTURE).hexdigest()
    avatar = next(e for u, e in entries.items() if u.endswith("/a.png"))
    assert avatar["sha256"] == picture and avatar["bytes"] == len(PICTURE)
    assert (
        avatar["file"]
        == next(e for u, e in entries.items() if u.endswith("/copy-of-a.png"))["file"]
    )
    assert "too large" in next(e for u, e in entries.items() if u.endswith("/huge.bin"))["error"]
    assert next(e for u, e in entries.items() if u.endswith("/missing.bin"))["error"] == "HTTP 404"


def test_a_later_run_fetches_only_the_urls_of_its_new_parts(
    sealed: Sealed, files: FileServer
) -> None:
    assert sealed.hits_after_first["/later.bin"] == 0
    for path in ("/a.png", "/copy-of-a.png", "/doc.pdf", "/huge.bin"):
        assert len(files.hits(path)) == sealed.hits_after_first[path], path
    assert len(files.hits("/later.bin")) == 1
    assert all("range" not in h for h in files.hits("/doc.pdf"))


def test_verify_without_the_key_checks_every_encrypted_file(sealed: Sealed, tmp_path: Path) -> None:
    report = run_client_json(sealed.env, "verify", str(sealed.out))
    assert report["ok"] and not report["contents_checked"], report
    assert (report["attachments"], report["attachments_checked"]) == (3, 3)
    copy = tmp_path / "copy"
    shutil.copytree(sealed.out, copy)
    flipped, deleted = _attachment_files(copy)[:2]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    deleted.unlink()
    done = run_client(sealed.env, "verify", str(copy), "--json")
    assert done.returncode != 0
    problems = {p["where"]: p["problem"] for p in json.loads(done.stdout)["problems"]}
    assert "sha256 differs" in problems[f"attachments/{flipped.name}"]
    assert problems[f"attachments/{deleted.name}"] == "the file is missing"
    keyed = run_client(sealed.env, "verify", str(copy), "--identity", str(sealed.key), "--json")
    found = {p["where"]: p["problem"] for p in json.loads(keyed.stdout)["problems"]}
    assert "cannot be decrypted" in found[f"attachments/{flipped.name}"], found
    assert found[f"attachments/{deleted.name}"] == "the file is missing"


def test_verify_with_the_key_checks_every_attachment(sealed: Sealed) -> None:
    report = run_client_json(sealed.env, "verify", str(sealed.out), "--identity", str(sealed.key))
    assert report["ok"] and report["contents_checked"], report
    assert (report["attachments"], report["attachments_checked"]) == (3, 3)
    assert report["attachments_failed"] == 2
    some = run_client_json(sealed.env, "verify", str(sealed.out), "--identity", str(sealed.key),
                           "--sample", "10")  # fmt: skip
    assert some["attachments_checked"] == 1


def test_restore_rehosts_the_decrypted_files_and_rewrites_every_url(
    sealed: Sealed, target: Deployment, files: FileServer, tmp_path: Path
) -> None:
    created = target.cli("apps", "create", "--name", "Rehosted from sealed")
    env = target.client(created["app_id"], created["secret"])
    cdn = tmp_path / "cdn"
    summary = run_client_json(env, "restore", str(sealed.out), "--identity", str(sealed.key),
                              "--rehost-attachments", cdn.as_uri(),
                              "--attachments-base-url", NEW_BASE)  # fmt: skip
    assert summary["rehosted"] == {"uploaded": 3, "already_there": 0}
    sha = {b: hashlib.sha256(b).hexdigest() for b in (PICTURE, DOCUMENT, LATER)}
    assert {p.name: p.read_bytes() for p in cdn.iterdir()} == {s: b for b, s in sha.items()}
    copy = tmp_path / "restored"
    done = run_client(env, "backup", "--out", str(copy), "--since", _day(6), "--no-attachments")
    assert done.returncode == 0, done.stderr
    assert backup_rows(copy, "users")[0]["AvatarUrl"] == f"{NEW_BASE}/{sha[PICTURE]}"
    assert backup_rows(copy, "rooms")[0]["AvatarUrl"] == f"{NEW_BASE}/{sha[PICTURE]}"
    urls = {r["UniqueId"]: (r["Payload"] or {}).get("url") for r in backup_rows(copy, "comments")}
    assert urls["f-doc.pdf"] == f"{NEW_BASE}/{sha[DOCUMENT]}"
    assert urls["f-later"] == f"{NEW_BASE}/{sha[LATER]}"
    assert urls["f-missing.bin"] == files.url("/missing.bin")
    assert not list(sealed.out.rglob("*.tmp"))


def test_a_scoped_restore_writes_its_rows_encrypted_and_rehosts(
    sealed: Sealed, target: Deployment, files: FileServer, tmp_path: Path
) -> None:
    created = target.cli("apps", "create", "--name", "Scoped from sealed")
    env = target.client(created["app_id"], created["secret"])
    cdn = tmp_path / "cdn"
    summary = run_client_json(env, "restore", str(sealed.out), "--identity", str(sealed.key),
                              "--rooms", "room-1", "--rehost-attachments", cdn.as_uri(),
                              "--attachments-base-url", NEW_BASE)  # fmt: skip
    assert summary["rows"] == {"users": 3, "rooms": 1, "comments": 5}, summary
    scoped = [p for p in (sealed.out / "scoped").rglob("*") if p.is_file()]
    parts = {f"{t}.json.age" for t in ("users", "rooms", "comments")}
    kept = {"manifest.json", "restore-state.json", "restore-state.key.age", ".chatferry.lock"}
    assert {p.name for p in scoped} == parts | kept
    for path in scoped:
        data = path.read_bytes()
        assert b"files.example" not in data and files.base_url.encode() not in data, path
        assert b"room-1" not in data and b"plain-text-comment" not in data, path
    copy = tmp_path / "restored"
    done = run_client(env, "backup", "--out", str(copy), "--since", _day(6), "--no-attachments")
    assert done.returncode == 0, done.stderr
    urls = {r["UniqueId"]: (r["Payload"] or {}).get("url") for r in backup_rows(copy, "comments")}
    assert urls["f-doc.pdf"] == f"{NEW_BASE}/{hashlib.sha256(DOCUMENT).hexdigest()}"
    again = run_client_json(env, "restore", str(sealed.out), "--identity", str(sealed.key),
                            "--rooms", "room-1")  # fmt: skip
    assert again["rows"] == {"users": 0, "rooms": 0, "comments": 0}, again


def test_a_run_given_the_key_retries_what_earlier_runs_could_not_fetch(
    sealed: Sealed, files: FileServer, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(sealed.out, copy)
    before = {p: len(files.hits(p)) for p in [*files.routes, "/missing.bin"]}
    files.routes["/missing.bin"] = Route(b"there at last")
    try:
        done = _backup(sealed.env, copy, "--identity", str(sealed.key))
    finally:
        del files.routes["/missing.bin"]
    assert done.returncode == 5 and "1 attachment(s) could not be fetched" in done.stderr
    assert len(files.hits("/missing.bin")) == before["/missing.bin"] + 1
    assert len(files.hits("/huge.bin")) == before["/huge.bin"] + 1
    for path in ("/a.png", "/copy-of-a.png", "/doc.pdf", "/later.bin"):
        assert len(files.hits(path)) == before[path], path
    report = run_client_json(sealed.env, "verify", str(copy), "--identity", str(sealed.key))
    assert report["ok"] and (report["attachments"], report["attachments_failed"]) == (4, 1)
    wrong = tmp_path / "wrong.txt"
    run_client(sealed.env, "keygen", "--out", str(wrong))
    refused = _backup(sealed.env, copy, "--identity", str(wrong))
    assert refused.returncode == 4 and "does not open" in refused.stderr, refused.stderr


def test_a_dry_run_compares_with_the_key_and_imports_nothing(sealed: Sealed) -> None:
    """Against the source app itself: every row is there already (the target's rows are
    exported encrypted to the backup's recipients and compared in memory)."""
    planned = run_client_json(sealed.env, "restore", str(sealed.out), "--dry-run",
                              "--identity", str(sealed.key))  # fmt: skip
    assert planned["diff"]["counts"] == {
        "users": {"new": 0, "present": 3, "conflict": 0},
        "rooms": {"new": 0, "present": 2, "conflict": 0},
        "comments": {"new": 0, "present": 5, "conflict": 0},
    }


def test_the_restore_state_of_an_encrypted_backup_keeps_no_row_key_in_plain(
    sealed: Sealed, app: Deployment, target: Deployment, tmp_path: Path
) -> None:
    """The keys a provisional part's uploads remember (emails here) are HMACs under a
    secret kept encrypted; a restore run again still imports nothing twice."""
    today = {"Email": "today@files.example", "Name": "Today", "AvatarUrl": "",
             "Password": "not-a-real-password-1", "AuthenticationToken": "tok-today",
             "CreateAt": moment(0)}  # fmt: skip
    (tmp_path / "uploads").mkdir()
    import_rows(sealed.env, tmp_path / "uploads", "users", [today])
    copy = tmp_path / "copy"
    shutil.copytree(sealed.out, copy)
    done = _backup(sealed.env, copy, "--until", "now")
    assert done.returncode == 0, done.stderr
    created = target.cli("apps", "create", "--name", "Provisional from sealed")
    env = target.client(created["app_id"], created["secret"])
    first = run_client_json(env, "restore", str(copy), "--identity", str(sealed.key))
    assert first["rows"]["users"] == 4, first
    state = (copy / "restore-state.json").read_bytes()
    assert b"files.example" not in state and b"f-doc.pdf" not in state
    restores = json.loads(state)["restores"].values()
    keys = [k for r in restores for u in r["uploads"] for k in u["keys"]]
    assert keys and all(len(k) == 64 and int(k, 16) >= 0 for k in keys), keys
    assert b"age-encryption.org/v1" in (copy / "restore-state.key.age").read_bytes()[:30]
    again = run_client_json(env, "restore", str(copy), "--identity", str(sealed.key))
    assert again["imported_now"] == 0, again
