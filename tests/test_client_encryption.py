"""Encrypted backups against real ``chatferry serve`` processes: a source app on SQLite,
restored into empty apps on a second server on PostgreSQL and on the source's SQLite.

keygen, backup --encrypt-to/--recipients-file (extended by a later run without them),
verify with and without the key, restore with each of two identities, a wrong identity,
a flipped byte, the refusals to mix plain and encrypted, and the files' modes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from client_helpers import assert_one_line_error, backup_rows, run_client, run_client_json
from support.servers import cli_command
from test_client_processes import (
    Deployment,
    assert_same_rows,
    postgres_url,  # noqa: F401 (a fixture)
    start_deployment,
)

pytestmark = pytest.mark.slow

APP_ID, SECRET = "private-app", "private-secret-123"
YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).date()
SINCE = YESTERDAY - timedelta(days=24)
FIRST_UNTIL = YESTERDAY - timedelta(days=6)
AGE = shutil.which("age")


@dataclass
class Backups:
    plain: Path
    encrypted: Path
    keys: list[Path]
    recipients: list[str]
    env: dict[str, str]


def _no_identity(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "CHATFERRY_IDENTITY_FILE"}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("private-source")
    deployment = start_deployment(directory)
    deployment.cli("apps", "create", "--name", "Private", "--app-id", APP_ID, "--secret", SECRET)
    deployment.cli("demo-data", "--app-id", APP_ID, "--users", "30", "--rooms", "12",
                   "--comments", "500", "--days", "22", "--seed", "3")  # fmt: skip
    yield deployment
    deployment.server.stop()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Deployment]:  # noqa: F811
    directory = tmp_path_factory.mktemp("private-target")
    deployment = start_deployment(directory, postgres_url)
    yield deployment
    deployment.server.stop()


def _backup(env: dict[str, str], out: Path, *args: str, until: date = YESTERDAY) -> None:
    """A backup in a fresh client process under a 022 umask."""
    command = cli_command("backup", "--out", str(out), "--since", SINCE.isoformat(),
                          "--until", until.isoformat(), *args)  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, umask=0o022,
                          timeout=180, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def backups(source: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Backups:
    """A plain and an encrypted backup of the same days: the encrypted one begun with two
    recipients (a flag and a recipients file), extended by a run given neither."""
    directory = tmp_path_factory.mktemp("private-backups")
    env = _no_identity(source.client(APP_ID, SECRET))
    keys = [directory / "keys" / "first.txt", directory / "keys" / "second.txt"]
    keys[0].parent.mkdir()
    recipients = [run_client(env, "keygen", "--out", str(k)).stdout.strip() for k in keys]
    listed = directory / "recipients.txt"
    listed.write_text(f"# the second key\n{recipients[1]}\n")
    plain, encrypted = directory / "plain", directory / "encrypted"
    _backup(env, plain, until=FIRST_UNTIL)  # the same windows as the encrypted one
    _backup(env, plain)
    _backup(env, encrypted, "--encrypt-to", recipients[0], "--recipients-file", str(listed),
            until=FIRST_UNTIL)  # fmt: skip
    _backup(env, encrypted)
    return Backups(plain, encrypted, keys, recipients, env)


def _manifest(directory: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((directory / "manifest.json").read_text())
    return manifest


def _decrypted_with_age(key: Path, path: Path) -> bytes:
    assert AGE is not None, "the age tool is not installed (.ci/run installs it)"
    done = subprocess.run([AGE, "-d", "-i", str(key), str(path)], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_file_is_encrypted_private_and_opened_by_age(backups: Backups) -> None:
    manifest = _manifest(backups.encrypted)
    assert manifest["encryption"] == {"format": "age-encryption.org/v1",
                                      "recipients": backups.recipients}  # fmt: skip
    assert manifest["until"] == YESTERDAY.isoformat()
    assert any(p["start_date"] > FIRST_UNTIL.isoformat() for p in manifest["parts"])
    files = [p for p in backups.encrypted.rglob("*") if p.is_file()]
    names = {p.relative_to(backups.encrypted).as_posix() for p in files}
    names -= {"restore-state.json", "restore-state.key.age"}  # if a restore test ran first
    assert names == {p["file"] for p in manifest["parts"]} | {"manifest.json", ".chatferry.lock"}
    assert all(p["file"].endswith(".json.age") for p in manifest["parts"])
    for path in [backups.encrypted, *backups.encrypted.rglob("*")]:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    for key in backups.keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600

    # No message text, email or name of the source app anywhere in the directory.
    secrets = {r["Email"].encode() for r in backup_rows(backups.plain, "users")}
    secrets |= {r["Message"].encode() for r in backup_rows(backups.plain, "comments")}
    secrets |= {r["Name"].encode() for r in backup_rows(backups.plain, "rooms")}
    secrets = {s for s in secrets if len(s) >= 6}  # "ok" may occur in random bytes
    assert len(secrets) > 40
    for path in files:
        data = path.read_bytes()
        assert not [s for s in secrets if s in data], path

    # Each part, opened by the age tool with either key, is the plain backup's export.
    key = backups.keys[0]
    plain_files = {p["file"] + ".age": p["file"] for p in _manifest(backups.plain)["parts"]}
    assert set(plain_files) == {p["file"] for p in manifest["parts"]}
    for index, part in enumerate(manifest["parts"]):
        data = _decrypted_with_age(backups.keys[index % 2], backups.encrypted / part["file"])
        assert data == (backups.plain / plain_files[part["file"]]).read_bytes()
    for resource in ("users", "rooms", "comments"):
        files = [backups.encrypted / p["file"] for p in manifest["parts"] if p["type"] == resource]
        rows = [row for path in files for row in json.loads(_decrypted_with_age(key, path))]
        assert rows == backup_rows(backups.plain, resource)


def test_verify_without_the_key_and_with_it(backups: Backups) -> None:
    keyless = run_client_json(backups.env, "verify", str(backups.encrypted))
    assert keyless["ok"] and keyless["encrypted"] and not keyless["contents_checked"]
    keyed = run_client_json(backups.env, "verify", str(backups.encrypted),
                            "--identity", str(backups.keys[1]))  # fmt: skip
    plain = run_client_json(backups.env, "verify", str(backups.plain))
    assert keyed["ok"] and keyed["contents_checked"] and keyed["rows"] == plain["rows"]
    assert plain["rows"]["comments"] > 300


def _new_app(deployment: Deployment, name: str) -> dict[str, str]:
    created = deployment.cli("apps", "create", "--name", name)
    return _no_identity(deployment.client(created["app_id"], created["secret"]))


def _plain_copy(env: dict[str, str], out: Path) -> Path:
    done = run_client(env, "backup", "--out", str(out), "--since", SINCE.isoformat(),
                      "--until", YESTERDAY.isoformat())  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def test_each_recipient_restores_into_an_empty_app(
    backups: Backups, source: Deployment, target: Deployment, tmp_path: Path
) -> None:
    on_postgres = _new_app(target, "Restored with the first key")
    summary = run_client_json(on_postgres, "restore", str(backups.encrypted),
                              "--identity", str(backups.keys[0]))  # fmt: skip
    assert summary["rows"]["comments"] > 300
    assert_same_rows(backups.plain, _plain_copy(on_postgres, tmp_path / "postgres"))

    on_sqlite = _new_app(source, "Restored with the second key")
    by_env = {**on_sqlite, "CHATFERRY_IDENTITY_FILE": str(backups.keys[1])}
    assert run_client_json(by_env, "restore", str(backups.encrypted))["rows"] == summary["rows"]
    assert_same_rows(backups.plain, _plain_copy(on_sqlite, tmp_path / "sqlite"))
    state = backups.encrypted / "restore-state.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert not [p for p in backups.encrypted.rglob("*.json") if p.name != state.name
                and p.name != "manifest.json"]  # fmt: skip


def test_a_wrong_key_or_a_flipped_byte_imports_nothing(
    backups: Backups, target: Deployment, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(backups.encrypted, copy)
    env = _new_app(target, "Never restored")
    stranger = tmp_path / "stranger.txt"
    assert run_client(env, "keygen", "--out", str(stranger)).returncode == 0
    wrong = run_client(env, "restore", str(copy), "--identity", str(stranger))
    assert_one_line_error(wrong, 4, "does not open", "nothing was decrypted")
    missing = run_client(env, "restore", str(copy))
    assert_one_line_error(missing, 4, "is encrypted", "--identity FILE")

    part = next(p for p in _manifest(copy)["parts"] if p["type"] == "comments" and p["rows"])
    data = bytearray((copy / part["file"]).read_bytes())
    data[len(data) // 2] ^= 0x20
    (copy / part["file"]).write_bytes(bytes(data))
    os.chmod(copy, 0o755)
    checked = run_client(env, "verify", str(copy))
    assert_one_line_error(checked, 4, "problem(s) in the backup")
    assert part["file"] in checked.stdout and "it was changed" in checked.stdout
    assert "open to other users" in checked.stderr
    tampered = run_client(env, "restore", str(copy), "--identity", str(backups.keys[0]))
    assert_one_line_error(tampered, 4, "nothing was restored")
    assert run_client_json(env, "import", "list", "--all") == []


def test_plain_and_encrypted_never_mix(backups: Backups, tmp_path: Path) -> None:
    env, recipient = backups.env, backups.recipients[0]
    plain, encrypted = tmp_path / "plain", tmp_path / "encrypted"
    shutil.copytree(backups.plain, plain)
    shutil.copytree(backups.encrypted, encrypted)
    cases = (
        (plain, ("--encrypt-to", recipient), "holds a plain backup: it cannot be extended"),
        (encrypted, ("--plain",), "holds an encrypted backup: it cannot be extended plain"),
        (encrypted, ("--encrypt-to", recipient), "is encrypted to other recipients"),
    )
    for directory, args, message in cases:
        before = (directory / "manifest.json").read_bytes()
        done = run_client(env, "backup", "--out", str(directory), *args)
        assert_one_line_error(done, 1, message)
        assert (directory / "manifest.json").read_bytes() == before


def test_a_killed_encrypted_backup_leaves_no_plaintext_and_resumes(
    backups: Backups, tmp_path: Path
) -> None:
    """Killed at random moments: at no point does a file hold a part's JSON; the next
    run removes the encrypted temporaries a kill left and finishes the backup."""
    out = tmp_path / "killed"
    args = ("backup", "--out", str(out), "--since", SINCE.isoformat(),
            "--until", YESTERDAY.isoformat(), "--window-days", "4")  # fmt: skip
    command = cli_command(*args, "--encrypt-to", backups.recipients[0])
    rng = random.Random(19)
    for _ in range(3):
        process = subprocess.Popen(command, env=backups.env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            process.wait(timeout=rng.uniform(0.5, 2.0))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
        for path in out.rglob("*"):
            if path.is_file() and path.name != "manifest.json":
                assert not path.read_bytes().lstrip().startswith(b"["), path
    (out / "comments").mkdir(mode=0o700, exist_ok=True)
    stale = out / "comments" / ".2020-01-01_2020-01-01.json.age.1.2.tmp"
    stale.write_bytes(b"age-encryption.org/v1 (cut)")
    os.chmod(out, 0o755)
    done = run_client(backups.env, *args)  # without --encrypt-to: the manifest's keys
    assert done.returncode == 0, done.stderr
    assert "open to other users of this machine (mode 755" in " ".join(done.stderr.split())
    assert not stale.exists() and not list(out.rglob("*.tmp"))
    assert (
        run_client_json(backups.env, "verify", str(out), "--identity", str(backups.keys[0]))["rows"]
        == run_client_json(backups.env, "verify", str(backups.plain))["rows"]
    )


def test_downloaded_exports_are_private(source: Deployment, tmp_path: Path) -> None:
    env = _no_identity(source.client(APP_ID, SECRET))
    where = tmp_path / "downloads" / "users"
    got = run_client_json(env, "export", "create", "--type", "users", "--download", str(where))
    path = Path(got["file"]["path"])
    assert path.parent == where and path.stat().st_size > 0
    modes = [stat.S_IMODE(p.stat().st_mode) for p in (where.parent, where, path)]
    assert modes == [0o700, 0o700, 0o600]
    again = run_client_json(env, "export", "download", got["export"]["unique_id"],
                            "-o", str(tmp_path / "u.json"))  # fmt: skip
    assert stat.S_IMODE(Path(again["file"]["path"]).stat().st_mode) == 0o600


def test_encrypted_downloads_restart_after_a_break_on_the_spec_alone(tmp_path: Path) -> None:
    """Against a server with no extensions that cuts every download once and expires the
    first link: each part is downloaded again from its start (never Range-resumed),
    encrypted as it streams, checked on its plaintext; it restores with the key."""
    from client_helpers import client_env
    from fake_vendor import FakeVendor, VendorApp, running, seed

    fake = FakeVendor(apps={"vendor-a": VendorApp("secret-a"), "vendor-b": VendorApp("secret-b")})
    seed(fake.apps["vendor-a"], days=20, comments=60)
    key = tmp_path / "key.txt"
    with running(fake):
        env = _no_identity(client_env(dict(os.environ), fake.base_url, "vendor-a", "secret-a"))
        recipient = run_client(env, "keygen", "--out", str(key)).stdout.strip()
        fake.expire_next = True
        out = tmp_path / "backup"
        result = run_client_json(env, "backup", "--out", str(out), "--encrypt-to", recipient)
        parts = result["manifest"]["parts"]
        assert parts and all(p["file"].endswith(".age") for p in parts)
        cut = {p["export_id"] for p in parts if p["rows"]}  # each cut once, mid-body
        assert len(cut) >= 3 and cut <= fake.broken_once
        source = fake.apps["vendor-a"].rows
        for resource in ("users", "rooms", "comments"):
            files = [out / p["file"] for p in parts if p["type"] == resource]
            rows = [r for path in files for r in json.loads(_decrypted_with_age(key, path))]
            assert rows == source[resource]
        target = _no_identity(client_env(dict(os.environ), fake.base_url, "vendor-b", "secret-b"))
        run_client_json(target, "restore", str(out), "--identity", str(key))
        assert fake.apps["vendor-b"].rows == source
