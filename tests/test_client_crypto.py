"""Private backups without a server: keys, age files, modes, verify and restore's refusals.

Encrypted files are checked against the system ``age`` tool (any age implementation must
open them) and pyrage alone; the backups are synthetic (``write_backup``) and encrypted
part by part as ``chatferry backup --encrypt-to`` writes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyrage
import pytest

from chatferry.client import crypto
from chatferry.client.errors import ClientError
from chatferry.client.files import open_private, open_to_others, private_dir, write_json_atomic
from chatferry.client.verify import verify_backup
from client_helpers import assert_one_line_error, comment, room, run_client, user, write_backup

AGE = shutil.which("age")
needs_age = pytest.mark.skipif(AGE is None, reason="the age tool is not installed")


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _keys(tmp_path: Path, name: str = "key.txt") -> tuple[Path, str]:
    path = tmp_path / name
    return path, crypto.keygen(path)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != crypto.ENV_IDENTITY}


# -- keys ------------------------------------------------------------------------------


@needs_age
def test_keygen_writes_a_private_age_identity_and_refuses_to_overwrite_it(
    tmp_path: Path, umask_022: None
) -> None:
    key = tmp_path / "key.txt"
    done = run_client(_env(), "keygen", "--out", str(key))
    assert done.returncode == 0, done.stderr
    recipient = done.stdout.strip()
    assert recipient.startswith("age1") and len(recipient) == 62
    assert _mode(key) == 0o600
    assert f"# public key: {recipient}" in key.read_text()
    before = key.read_bytes()
    again = run_client(_env(), "keygen", "--out", str(key))
    assert_one_line_error(again, 1, "already exists", "never overwritten")
    assert key.read_bytes() == before
    # The age tool encrypts to the printed recipient and opens it with the file.
    sealed = subprocess.run([AGE, "-r", recipient], input=b"hello", capture_output=True, check=True)
    opened = subprocess.run([AGE, "-d", "-i", str(key)], input=sealed.stdout, capture_output=True)
    assert opened.stdout == b"hello", opened.stderr


def test_recipients_from_flags_and_files_ssh_keys_included(tmp_path: Path) -> None:
    _, first = _keys(tmp_path, "one.txt")
    _, second = _keys(tmp_path, "two.txt")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ssh")],
                   check=True)  # fmt: skip
    ssh_public = (tmp_path / "ssh.pub").read_text().strip()
    listed = tmp_path / "recipients.txt"
    listed.write_text(f"# the team\n\n{second}\n{ssh_public}\n{first}\n")
    texts = crypto.recipient_texts([first], [listed])
    assert texts == [first, second, ssh_public]  # each once, in order
    recipients = crypto.recipients_of(texts)
    path = tmp_path / "x.age"
    crypto.encrypt_bytes(path, b"to three keys", recipients)
    for identity_file in (tmp_path / "one.txt", tmp_path / "two.txt", tmp_path / "ssh"):
        identities = crypto.load_identities(identity_file)
        assert crypto.decrypt_bytes(path, identities)[0] == b"to three keys"
    for bad, message in (("age1nothing", "not a valid age or SSH recipient"),
                         ("hello", "not a recipient: use an age public key")):  # fmt: skip
        with pytest.raises(ClientError, match=message):
            crypto.recipient_texts([bad], [])
    (tmp_path / "empty.txt").write_text("# nobody\n")
    with pytest.raises(ClientError, match="holds no recipient"):
        crypto.recipient_texts([], [tmp_path / "empty.txt"])
    for text, message in (("AGE-SECRET-KEY-1XYZ\n", "not an age identity file"),
                          ("# only a comment\n", "holds no key")):  # fmt: skip
        (tmp_path / "bad-key").write_text(text)
        with pytest.raises(crypto.KeyProblem, match=message):
            crypto.load_identities(tmp_path / "bad-key")
    with pytest.raises(crypto.KeyProblem, match="cannot read the identity file"):
        crypto.load_identities(tmp_path / "missing")


# -- streams ---------------------------------------------------------------------------


@needs_age
def test_the_writer_streams_an_age_file_that_age_opens(tmp_path: Path, umask_022: None) -> None:
    key, recipient = _keys(tmp_path)
    data = os.urandom(3 * crypto.CHUNK + 12345)
    path = tmp_path / "data.bin.age"
    with crypto.encrypting_writer(path, crypto.recipients_of([recipient])) as writer:
        for start in range(0, len(data), 70_000):
            writer.write(data[start : start + 70_000])
        assert not path.exists()  # only a temporary name until the block ends
    assert writer.plain_size == len(data)
    assert writer.size == path.stat().st_size
    assert writer.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert _mode(path) == 0o600 and sorted(os.listdir(tmp_path)) == ["data.bin.age", "key.txt"]
    assert data not in path.read_bytes()
    opened = subprocess.run([AGE, "-d", "-i", str(key), str(path)], capture_output=True)
    assert opened.returncode == 0 and opened.stdout == data, opened.stderr
    identities = crypto.load_identities(key)
    assert pyrage.decrypt(path.read_bytes(), identities) == data
    with crypto.decrypting_reader(path, identities) as reader:
        assert reader.read() == data
    threads = threading.active_count()
    with crypto.decrypting_reader(path, identities) as reader:
        assert reader.read(10) == data[:10]  # an early stop ends the decrypting thread
    assert threading.active_count() == threads


def test_a_failed_block_leaves_no_file_and_bad_files_are_named(tmp_path: Path) -> None:
    key, recipient = _keys(tmp_path)
    recipients = crypto.recipients_of([recipient])
    with pytest.raises(RuntimeError), crypto.encrypting_writer(tmp_path / "x.age", recipients) as w:
        w.write(b"secret " * 100_000)
        raise RuntimeError("the download broke")
    assert sorted(os.listdir(tmp_path)) == ["key.txt"]

    path = tmp_path / "part.json.age"
    crypto.encrypt_bytes(path, b"[]", recipients)
    other, _ = _keys(tmp_path, "other.txt")
    with pytest.raises(crypto.KeyProblem, match="not one of the keys the backup was encrypted"):
        crypto.decrypt_bytes(path, crypto.load_identities(other))
    damaged = bytearray(path.read_bytes())
    damaged[-5] ^= 1
    path.write_bytes(bytes(damaged))
    with pytest.raises(crypto.CorruptFile, match=r"part\.json\.age cannot be decrypted"):
        crypto.decrypt_bytes(path, crypto.load_identities(key))
    with (
        pytest.raises(crypto.CorruptFile),
        crypto.decrypting_reader(path, crypto.load_identities(key)) as reader,
    ):
        reader.read()


def test_private_directories_and_files_whatever_the_umask(tmp_path: Path, umask_022: None) -> None:
    deep = tmp_path / "a" / "b" / "c"
    private_dir(deep)
    assert [_mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", deep)] == [0o700] * 3
    write_json_atomic(deep / "state.json", {"x": 1})
    assert _mode(deep / "state.json") == 0o600
    loose = deep / "old.json"
    loose.write_text("{}")
    assert _mode(loose) == 0o644
    with open_private(loose, "r+b"):
        pass
    assert _mode(loose) == 0o600
    assert open_to_others(tmp_path / "a") is None
    os.chmod(deep, 0o755)
    warning = open_to_others(tmp_path / "a")
    assert warning is not None and "mode 755" in warning and "chmod -R go-rwx" in warning


# -- encrypted backups offline ---------------------------------------------------------


def encrypt_backup(directory: Path, recipients: list[str]) -> dict[str, Any]:
    """Turns a plain synthetic backup into the encrypted one backup --encrypt-to writes."""
    path = directory / "manifest.json"
    manifest: dict[str, Any] = json.loads(path.read_text())
    parsed = crypto.recipients_of(recipients)
    for part in manifest["parts"]:
        plain = directory / part["file"]
        written = crypto.encrypt_bytes(plain.with_name(plain.name + ".age"), plain.read_bytes(),
                                       parsed)  # fmt: skip
        plain.unlink()
        part.update(file=part["file"] + ".age", bytes=written.size, sha256=written.sha256)
    manifest["encryption"] = {"format": "age-encryption.org/v1", "recipients": recipients}
    path.write_text(json.dumps(manifest))
    return manifest


def _encrypted_backup(directory: Path, recipient: str) -> dict[str, Any]:
    write_backup(
        directory,
        {
            "users": [[user(1), user(2)], [user(3)]],
            "rooms": [[room(1, 1, [2, 3])], []],
            "comments": [[comment(1, 1, 1), comment(2, 1, 2, parent=1)], [comment(3, 1, 3, 2)]],
        },
    )
    return encrypt_backup(directory, [recipient])


def test_verify_checks_encrypted_files_without_the_key_and_everything_with_it(
    tmp_path: Path,
) -> None:
    key, recipient = _keys(tmp_path)
    backup = tmp_path / "backup"
    manifest = _encrypted_backup(backup, recipient)
    keyless = verify_backup(backup)
    assert keyless.ok and keyless.encrypted and not keyless.contents_checked
    assert keyless.rows == {"users": 3, "rooms": 1, "comments": 3}  # the manifest's
    keyed = verify_backup(backup, identities=crypto.load_identities(key))
    assert keyed.ok and keyed.contents_checked and keyed.rows == keyless.rows

    done = run_client(_env(), "verify", str(backup))
    assert done.returncode == 0, done.stderr
    assert "give --identity to check rows and references too" in " ".join(done.stderr.split())
    with_key = run_client(_env(), "verify", str(backup), "--identity", str(key), "--json")
    assert with_key.returncode == 0 and json.loads(with_key.stdout)["contents_checked"] is True
    by_env = run_client({**_env(), crypto.ENV_IDENTITY: str(key)}, "verify", str(backup), "--json")
    assert json.loads(by_env.stdout)["contents_checked"] is True

    # A flipped byte in a part: caught without the key (its sha256), and with it.
    flipped = backup / manifest["parts"][3]["file"]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    for args in ((), ("--identity", str(key))):
        caught = run_client(_env(), "verify", str(backup), *args, "--json")
        assert caught.returncode == 4, caught.stderr
        problems = json.loads(caught.stdout)["problems"]
        assert {"where": manifest["parts"][3]["file"],
                "problem": "the file's sha256 differs from the manifest's: it was changed"
                } in problems  # fmt: skip


def test_a_missing_or_wrong_identity_is_one_line_exit_4(tmp_path: Path) -> None:
    _, recipient = _keys(tmp_path)
    other, _ = _keys(tmp_path, "other.txt")
    backup = tmp_path / "backup"
    _encrypted_backup(backup, recipient)
    wrong = run_client(_env(), "verify", str(backup), "--identity", str(other))
    assert_one_line_error(wrong, 4, "does not open", "nothing was decrypted")
    absent = run_client(_env(), "verify", str(backup), "--identity", str(tmp_path / "nope"))
    assert_one_line_error(absent, 4, "cannot read the identity file")
    # restore refuses before it contacts the server (there is none at this address).
    server = ("--server", "http://127.0.0.1:9", "--app-id", "a", "--secret", "s")
    for args, fragments in (((), ("is encrypted", "--identity FILE", "nothing was restored")),
                            (("--identity", str(other)), ("does not open",))):  # fmt: skip
        refused = run_client(_env(), "restore", str(backup), *args, *server)
        assert_one_line_error(refused, 4, *fragments)
    assert not (backup / "restore-state.json").exists()


def test_a_plain_file_in_an_encrypted_backup_is_a_problem(tmp_path: Path) -> None:
    key, recipient = _keys(tmp_path)
    backup = tmp_path / "backup"
    manifest = _encrypted_backup(backup, recipient)
    first = manifest["parts"][0]
    plain = backup / first["file"].removesuffix(".age")
    plain.write_bytes(crypto.decrypt_bytes(backup / first["file"], crypto.load_identities(key))[0])
    first.update(file=first["file"].removesuffix(".age"), bytes=plain.stat().st_size,
                 sha256=hashlib.sha256(plain.read_bytes()).hexdigest())  # fmt: skip
    (backup / "manifest.json").write_text(json.dumps(manifest))
    problems = verify_backup(backup).problems
    assert {"where": first["file"],
            "problem": "the file does not belong in an encrypted backup"} in problems  # fmt: skip


def test_a_converted_backup_is_private_too(tmp_path: Path, umask_022: None) -> None:
    from convert_exports import write_mattermost

    out = tmp_path / "converted"
    export = write_mattermost(tmp_path / "mm")
    done = run_client(_env(), "convert", "mattermost", str(export), "--out", str(out))
    assert done.returncode == 0, done.stderr
    paths = [out, *out.rglob("*")]
    assert len(paths) > 5
    assert {p: _mode(p) for p in paths} == {p: 0o700 if p.is_dir() else 0o600 for p in paths}
