"""An encrypted backup's attachments: each file an age file under a random name, the URL
index sealed per run, and a readable map of every encrypted file's size and sha256.

Layout: ``DIR/attachments/<32 random hex>.age`` (the plaintext's hash is not in the name:
it would let anyone holding a file confirm that the backup has it) and
``DIR/attachments/index/<run id>.json.age``, one per run, holding that run's entries
``{url: {sha256, bytes, content_type, fetched_at, file} | {error, failed_at}}`` (the
``file`` is the encrypted file's name under the backup directory). The manifest's
``encrypted_files`` maps each of these files to ``{bytes, sha256}`` of its encrypted bytes,
so ``verify`` checks them without a key. Within a run, the same bytes under two URLs are
stored once (by the plaintext's sha256); across runs they may be stored twice, as a run
without the key cannot read what earlier runs hold (a run given the key reads them, and
stores no bytes twice).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from chatferry.client.attachments.store import ATTACHMENTS_DIR, attachments_dir

if TYPE_CHECKING:
    from chatferry.client.crypto import EncryptingWriter, Identity, Recipient, SealedFile

INDEX_DIR = "index"
Entry = dict[str, Any]


def new_run_id() -> str:
    """Ordered by time (a later run's entries win), unique by its random tail."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def index_name(run_id: str) -> str:
    return f"{ATTACHMENTS_DIR}/{INDEX_DIR}/{run_id}.json.age"


def index_files(files: dict[str, Any]) -> list[str]:
    """The index files among ``encrypted_files``, oldest run first."""
    prefix = f"{ATTACHMENTS_DIR}/{INDEX_DIR}/"
    return sorted(name for name in files if name.startswith(prefix))


def stale_temporaries(directory: Path) -> list[Path]:
    """Encrypted files a killed run left half-written."""
    folder = directory / ATTACHMENTS_DIR
    return [*folder.glob(".*.age.*.tmp"), *(folder / INDEX_DIR).glob(".*.age.*.tmp")]


class SealedStore:
    """Writes attachments encrypted to ``recipients``; one per distinct content in a run."""

    def __init__(
        self,
        directory: Path,
        recipients: Sequence[Recipient],
        known: dict[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.recipients = recipients
        self._kept: dict[str, str] = dict(known or {})  # plaintext sha256 -> file
        self._lock = threading.Lock()
        attachments_dir(directory)

    @contextmanager
    def writer(self) -> Iterator[tuple[EncryptingWriter, str]]:
        """An encrypting writer to a new random name, and that name (relative)."""
        from chatferry.client.crypto import encrypting_writer

        name = f"{ATTACHMENTS_DIR}/{secrets.token_hex(16)}.age"
        with encrypting_writer(self.directory / name, self.recipients) as writer:
            yield writer, name

    def store_bytes(self, data: bytes) -> tuple[str, SealedFile]:
        """``data`` encrypted to a new random name, not synced yet (the index writer syncs
        it before naming it); that name (relative) and the encrypted file's size and hash."""
        from chatferry.client.crypto import encrypt_bytes

        name = f"{ATTACHMENTS_DIR}/{secrets.token_hex(16)}.age"
        return name, encrypt_bytes(self.directory / name, data, self.recipients, sync=False)

    def keep(self, sha256: str, name: str) -> tuple[str, bool]:
        """The file that holds these bytes, and whether it is ``name`` (a copy of bytes
        stored already in this run is removed)."""
        with self._lock:
            kept = self._kept.setdefault(sha256, name)
        if kept != name:
            (self.directory / name).unlink(missing_ok=True)
        return kept, kept == name


def read_index(
    directory: Path, files: dict[str, Any], identities: Sequence[Identity]
) -> dict[str, Entry]:
    """Every run's entries merged (a later run's entry for a URL wins)."""
    from chatferry.client.crypto import decrypt_bytes

    merged: dict[str, Entry] = {}
    for name in index_files(files):
        data = decrypt_bytes(directory / name, identities)[0]
        merged.update(orjson.loads(data))
    return merged


@contextmanager
def open_sealed(directory: Path, name: str, identities: Sequence[Identity]) -> Iterator[BinaryIO]:
    """The plaintext of an encrypted attachment, streamed (nothing written to disk)."""
    from chatferry.client.crypto import decrypting_reader

    with decrypting_reader(directory / name, identities) as stream:
        yield stream
