"""Fetching a backup's attachments: a few at once, a few per host, each result recorded
in the attachment index as it arrives (a run that is stopped keeps what it fetched)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from chatferry.client.attachments import store
from chatferry.client.attachments.addresses import AddressPins, pinned_client
from chatferry.client.attachments.fetch import Download, Failed, Fetched, FetchSettings
from chatferry.client.attachments.sealed import SealedStore
from chatferry.client.files import now_rfc3339
from chatferry.client.progress import NullReporter, Reporter

DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_TIMEOUT = 30.0
PER_HOST = 4
Entry = dict[str, Any]


@dataclass(frozen=True)
class AttachmentOptions:
    mode: str = "files"  # none, files, all
    concurrency: int = DEFAULT_CONCURRENCY
    max_bytes: int = DEFAULT_MAX_BYTES
    allow_private: bool = False
    timeout: float = DEFAULT_TIMEOUT
    retries: int = 3
    backoff_seconds: float = 0.5


def to_fetch(index: dict[str, Entry], urls: list[str]) -> list[str]:
    """The URLs not fetched yet: new ones and those that failed before."""
    return [url for url in urls if "sha256" not in index.get(url, {})]


class Fetcher:
    """Fetches URLs into ``directory``; ``record(url, entry)`` gets each result."""

    def __init__(
        self,
        directory: Path,
        options: AttachmentOptions,
        record: Callable[[str, Entry], None],
        reporter: Reporter | None = None,
        sealed: SealedStore | None = None,
    ) -> None:
        self.sealed = sealed
        self.directory = directory
        self.options = options
        self.record = record
        self.reporter = reporter or NullReporter()
        self.settings = FetchSettings(options.max_bytes, options.retries, options.backoff_seconds)
        self._hosts: dict[str, threading.Semaphore] = {}
        self._lock = threading.Lock()
        self._bytes = 0
        self._stop = threading.Event()
        self._partials: set[str] = set()

    def run(self, urls: list[str]) -> None:
        if not urls:
            return
        task = self.reporter.task("attachments", total=len(urls), transient=False)
        self._partials = set() if self.sealed else store.partial_keys(self.directory)
        pins = AddressPins(self.options.allow_private)
        workers = self.options.concurrency
        with (
            pinned_client(pins, workers, self.options.timeout) as client,
            ThreadPoolExecutor(workers) as pool,
        ):
            futures = [pool.submit(self._one, client, url) for url in urls]
            try:
                for done, future in enumerate(as_completed(futures), 1):
                    future.result()
                    label = f"attachments: {done} of {len(urls)}, {self._bytes >> 20} MiB"
                    task.update(done, label=label)
            except BaseException:
                self._stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        task.done()

    @contextmanager
    def _host_slot(self, url: str) -> Iterator[None]:
        host = urlsplit(url).hostname or ""
        with self._lock:
            slot = self._hosts.setdefault(host, threading.Semaphore(PER_HOST))
        with slot:
            yield

    def _count(self, size: int) -> None:
        with self._lock:
            self._bytes += size

    def _one(self, client: httpx.Client, url: str) -> None:
        if self._stop.is_set():
            return
        with self._host_slot(url):
            try:
                fresh = store.partial_key(url) not in self._partials
                download = Download(
                    client, self.directory, self.settings, self._count, self.sealed, fresh
                )
                got = download.fetch(url)
            except Failed as failed:
                self.record(url, {"error": failed.reason, "failed_at": now_rfc3339()})
                return
        self.record(url, entry_of(got))


def entry_of(got: Fetched) -> Entry:
    """The index entry of a fetched attachment (an encrypted one names its file; when this
    fetch stored it, ``encrypted`` gives the age file's bytes and sha256)."""
    entry: Entry = {
        "sha256": got.sha256,
        "bytes": got.bytes,
        "content_type": got.content_type,
        "fetched_at": now_rfc3339(),
    }
    if got.file:
        entry["file"] = got.file
    if got.file and got.stored_now:
        entry["encrypted"] = {"bytes": got.encrypted_bytes, "sha256": got.encrypted_sha256}
    return entry
