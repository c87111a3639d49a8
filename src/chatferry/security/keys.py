"""Server keys: the link-signing key (and the previous one, during a rotation) and the
key that hashes app secrets. They come from the environment (``CHATFERRY_SIGNING_KEY``,
``CHATFERRY_PREVIOUS_SIGNING_KEY``, ``CHATFERRY_SECRET_HASH_KEY``) or from a key file in
the data dir (``keys.json``, mode 0600), created on first start; never from the database.

The database keeps only a fingerprint of the secret-hashing key, so a process started
with another key (app secrets would all fail) refuses to start with a clear message.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import orjson
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatferry.db.models import ServerKey
from chatferry.errors import ChatferryError

KEY_FILE_NAME = "keys.json"
_LEGACY_SIGNING_KEY = "download_signing_key"  # kept in the database before 0.2
_FINGERPRINT = "secret_hash_key_fingerprint"


class KeyMismatch(ChatferryError):
    """The secret-hashing key is not the one this database's secrets were hashed with."""


@dataclass(frozen=True)
class ServerKeys:
    signing: bytes
    previous_signing: bytes | None
    secret_hash: bytes


def _read_key_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # a key file must not be readable by others
    data = orjson.loads(path.read_bytes())
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def write_key_file(path: Path, keys: dict[str, str]) -> None:
    """Writes the key file atomically, readable by its owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(orjson.dumps(keys, option=orjson.OPT_INDENT_2))
    os.replace(temporary, path)


def _take_legacy_signing_key(engine: Engine) -> str | None:
    """The signing key an older version kept in the database, removed from it."""
    with Session(engine) as session, session.begin():
        value = session.scalar(select(ServerKey.value).where(ServerKey.name == _LEGACY_SIGNING_KEY))
        if value is not None:
            session.execute(delete(ServerKey).where(ServerKey.name == _LEGACY_SIGNING_KEY))
    return value


def _file_keys(path: Path, engine: Engine) -> dict[str, str]:
    """The key file's keys, creating any that is missing (the legacy signing key is
    moved out of the database, so links handed out before keep working)."""
    keys = _read_key_file(path)
    missing = "signing_key" not in keys or "secret_hash_key" not in keys
    if "signing_key" not in keys:
        keys["signing_key"] = _take_legacy_signing_key(engine) or secrets.token_hex(32)
    if "secret_hash_key" not in keys:
        keys["secret_hash_key"] = secrets.token_hex(32)
    if missing:
        write_key_file(path, keys)
    return keys


def load_keys(
    engine: Engine,
    data_dir: Path,
    signing: str | None,
    previous_signing: str | None,
    secret_hash: str | None,
) -> ServerKeys:
    """The keys in use: the environment's, else the key file's."""
    file_keys = {} if signing and secret_hash else _file_keys(data_dir / KEY_FILE_NAME, engine)
    previous = previous_signing or file_keys.get("previous_signing_key")
    return ServerKeys(
        signing=(signing or file_keys["signing_key"]).encode(),
        previous_signing=previous.encode() if previous else None,
        secret_hash=(secret_hash or file_keys["secret_hash_key"]).encode(),
    )


def rotate_signing_key(data_dir: Path) -> None:
    """Makes a new signing key in the key file; the current one becomes the previous
    one, so links already handed out keep working until they expire."""
    path = data_dir / KEY_FILE_NAME
    keys = _read_key_file(path)
    if "signing_key" in keys:
        keys["previous_signing_key"] = keys["signing_key"]
    keys["signing_key"] = secrets.token_hex(32)
    write_key_file(path, keys)


def check_fingerprint(engine: Engine, secret_hash_key: bytes) -> None:
    """Records the secret-hashing key's fingerprint, or checks it against the recorded
    one; KeyMismatch if the key differs from the one the app secrets were hashed with."""
    mine = hmac.new(secret_hash_key, b"chatferry key fingerprint", sha256).hexdigest()[:32]
    with Session(engine) as session:
        stored = session.scalar(select(ServerKey.value).where(ServerKey.name == _FINGERPRINT))
        if stored is None:
            session.add(ServerKey(name=_FINGERPRINT, value=mine))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                stored = session.scalar(
                    select(ServerKey.value).where(ServerKey.name == _FINGERPRINT)
                )
    if stored is not None and not hmac.compare_digest(stored, mine):
        raise KeyMismatch(
            "the app-secret hashing key differs from the one this database was set up "
            "with: give every process the same CHATFERRY_SECRET_HASH_KEY (or the same "
            f"{KEY_FILE_NAME} in its data dir)"
        )
