"""A backup's attachment index: which URLs its rows point to, fetched into the store
and recorded in ``manifest.attachments`` (saved as results arrive, at most every second)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from chatferry.client.attachments import store
from chatferry.client.attachments.run import AttachmentOptions, Entry, Fetcher, to_fetch
from chatferry.client.attachments.urls import collect
from chatferry.client.manifest import Manifest
from chatferry.client.progress import Reporter

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
    """Records results in the manifest under ``lock`` and saves it now and then."""

    def __init__(self, manifest: Manifest, lock: threading.Lock, save: Callable[[], None]):
        self.manifest = manifest
        self.lock = lock
        self.save = save
        self._saved = time.monotonic()

    def record(self, url: str, entry: Entry) -> None:
        with self.lock:
            self.manifest.attachments[url] = entry
            if time.monotonic() - self._saved >= SAVE_EVERY_SECONDS:
                self.save()
                self._saved = time.monotonic()

    def flush(self) -> None:
        with self.lock:
            self.save()


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
    missing = [u for u in urls if "sha256" in index.get(u, {})
               and not store.is_stored(directory, index[u]["sha256"])]  # fmt: skip
    wanted = to_fetch(index, urls) + missing
    try:
        Fetcher(directory, options, writer.record, reporter).run(wanted)
    finally:
        writer.flush()
    return failures(manifest, urls)
