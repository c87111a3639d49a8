"""A backup's attachment index: which URLs its rows point to, fetched into the store
and recorded in ``manifest.attachments`` (saved as results arrive, at most every second).
An encrypted backup's entries go into a sealed index file per run instead
(:class:`SealedIndexWriter`, see ``chatferry.client.attachments.sealed``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from chatferry.client.attachments import store
from chatferry.client.attachments.run import AttachmentOptions, Entry, Fetcher, to_fetch
from chatferry.client.attachments.sealed import SealedStore, index_name, new_run_id, read_index
from chatferry.client.attachments.urls import collect
from chatferry.client.files import private_dir
from chatferry.client.manifest import Manifest
from chatferry.client.progress import Reporter

if TYPE_CHECKING:
    from chatferry.client.crypto import Identity, Recipient

SAVE_EVERY_SECONDS = 1.0


def backup_rows(directory: Path, manifest: Manifest) -> Iterator[tuple[str, dict[str, Any]]]:
    """(type, row) of every row in the backup's parts."""
    for part in manifest.parts:
        for row in orjson.loads((directory / part.file).read_bytes()):
            if isinstance(row, dict):
                yield part.type, row


def failures(manifest: Manifest, urls: list[str]) -> list[tuple[str, str]]:
    """(url, reason) of every URL of ``urls`` the index holds no file for."""
    index = manifest.attachments
    return [(u, str(index.get(u, {}).get("error", "not fetched"))) for u in urls
            if "sha256" not in index.get(u, {})]  # fmt: skip


class IndexWriter:
    """Records results in the manifest under ``lock`` and saves it now and then. A plain
    backup's new files are synced as a group (:func:`store.make_durable`, outside the
    lock) before the save that names them: the saved index never names an unsynced file."""

    def __init__(
        self,
        manifest: Manifest,
        lock: threading.Lock,
        save: Callable[[], None],
        store_dir: Path | None = None,
    ):
        self.manifest = manifest
        self.lock = lock
        self.save = save
        self.store_dir = store_dir  # a plain backup's: its new files are synced here
        self._saved = time.monotonic()
        self._waiting: dict[str, Entry] = {}  # recorded, not synced yet
        self._committing = threading.Lock()

    def record(self, url: str, entry: Entry) -> None:
        with self.lock:
            self._waiting[url] = entry
            due = time.monotonic() - self._saved >= SAVE_EVERY_SECONDS
        if due and self._committing.acquire(blocking=False):
            try:
                self._commit()
            finally:
                self._committing.release()

    def flush(self) -> None:
        with self._committing:
            self._commit()

    def _commit(self) -> None:
        with self.lock:
            batch, self._waiting = self._waiting, {}
            self._saved = time.monotonic()
        self._sync(batch)
        with self.lock:
            for url, entry in batch.items():
                self._keep(url, entry)
            self._persist()
            self._saved = time.monotonic()

    def _sync(self, batch: dict[str, Entry]) -> None:
        if self.store_dir is not None:
            store.make_durable(self.store_dir, (str(e["sha256"]) for e in batch.values()
                                                if "sha256" in e))  # fmt: skip

    def _keep(self, url: str, entry: Entry) -> None:
        self.manifest.attachments[url] = entry

    def _persist(self) -> None:
        self.save()


class SealedIndexWriter(IndexWriter):
    """An encrypted backup's: this run's entries sealed in its own index file (rewritten
    atomically), every encrypted file's size and sha256 in the manifest."""

    def __init__(
        self,
        manifest: Manifest,
        lock: threading.Lock,
        save: Callable[[], None],
        directory: Path,
        recipients: Sequence[Recipient],
    ) -> None:
        super().__init__(manifest, lock, save)
        self.directory = directory
        self.recipients = recipients
        self.entries: dict[str, Entry] = {}
        self.name = index_name(new_run_id())

    def _sync(self, batch: dict[str, Entry]) -> None:
        """Syncs the encrypted files this batch stored (a small one is written unsynced)."""
        stored = [self.directory / str(e["file"]) for e in batch.values() if "encrypted" in e]
        store.sync_files(stored, self.directory / store.ATTACHMENTS_DIR)

    def _keep(self, url: str, entry: Entry) -> None:
        encrypted = entry.pop("encrypted", None)
        if encrypted is not None:
            self.manifest.encrypted_files[entry["file"]] = encrypted
        self.entries[url] = entry

    def _persist(self) -> None:
        from chatferry.client.crypto import encrypt_bytes

        if self.entries:
            path = self.directory / self.name
            private_dir(path.parent)
            sealed = encrypt_bytes(path, orjson.dumps(self.entries), self.recipients)
            self.manifest.encrypted_files[self.name] = {
                "bytes": sealed.size,
                "sha256": sealed.sha256,
            }
        self.save()


def sealed_rows(
    directory: Path, manifest: Manifest, identities: Sequence[Identity]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(type, row) of every row of an encrypted backup's parts, decrypted in memory."""
    from chatferry.client.crypto import decrypt_bytes

    for part in manifest.parts:
        for row in orjson.loads(decrypt_bytes(directory / part.file, identities)[0]):
            if isinstance(row, dict):
                yield part.type, row


def retry_sealed(
    directory: Path,
    manifest: Manifest,
    identities: Sequence[Identity],
    options: AttachmentOptions,
    writer: SealedIndexWriter,
    reporter: Reporter,
) -> list[tuple[str, str]]:
    """With the key: the URLs of every part, against every run's index (new URLs, earlier
    failures, files gone missing are fetched; stored bytes are not stored again)."""
    urls = collect(sealed_rows(directory, manifest, identities), options.mode)
    earlier = read_index(directory, manifest.encrypted_files, identities)
    present = {u: e for u, e in earlier.items()
               if "sha256" in e and (directory / str(e.get("file"))).is_file()}  # fmt: skip
    wanted = [u for u in urls if u not in present]
    known = {e["sha256"]: str(e["file"]) for e in present.values()}
    fetch_sealed(directory, wanted, options, writer, reporter, known)
    merged = {**earlier, **writer.entries}
    return [(u, str(merged.get(u, {}).get("error", "not fetched"))) for u in urls
            if "sha256" not in merged.get(u, {})]  # fmt: skip


def fetch_sealed(
    directory: Path,
    urls: list[str],
    options: AttachmentOptions,
    writer: SealedIndexWriter,
    reporter: Reporter,
    known: dict[str, str] | None = None,
) -> list[tuple[str, str]]:
    """Fetches ``urls`` (those of the parts this run downloaded) encrypted; returns the
    (url, reason) of those that could not be. ``known``: plaintext sha256 -> the file
    that holds those bytes already."""
    sealed = SealedStore(directory, writer.recipients, known)
    try:
        Fetcher(directory, options, writer.record, reporter, sealed).run(urls)
    finally:
        writer.flush()
    return [(u, str(e.get("error", "not fetched"))) for u, e in writer.entries.items()
            if "sha256" not in e]  # fmt: skip


def fetch_attachments(
    directory: Path,
    manifest: Manifest,
    options: AttachmentOptions,
    writer: IndexWriter,
    reporter: Reporter,
) -> list[tuple[str, str]]:
    """Fetches every attachment of the backup not stored yet (new URLs, earlier failures,
    files gone missing); returns the (url, reason) of those still missing."""
    if options.mode == "none":
        return []
    urls = collect(backup_rows(directory, manifest), options.mode)
    index = manifest.attachments
    named = {str(e["sha256"]) for e in index.values() if "sha256" in e}
    stored = store.drop_unnamed(directory, named)
    missing = [u for u in urls if "sha256" in index.get(u, {})
               and index[u]["sha256"] not in stored]  # fmt: skip
    wanted = to_fetch(index, urls) + missing
    try:
        Fetcher(directory, options, writer.record, reporter).run(wanted)
    finally:
        writer.flush()
    return failures(manifest, urls)
