"""Fetching a backup's attachments: a few at once, a few per host, each result recorded
in the attachment index as it arrives (a run that is stopped keeps what it fetched)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatferry.client.attachments import store
from chatferry.client.attachments.addresses import AddressPins
from chatferry.client.attachments.fetch import Download, Failed, Fetched, FetchSettings
from chatferry.client.attachments.hosts import HostQueue
from chatferry.client.attachments.pinned import PinnedClient, pinned_client
from chatferry.client.attachments.sealed import SealedStore
from chatferry.client.files import now_rfc3339
from chatferry.client.progress import NullReporter, Reporter, Task

DEFAULT_CONCURRENCY = 8
DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_TIMEOUT = 30.0
PER_HOST = 4
REPORT_EVERY_SECONDS = 0.1
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
        self._lock = threading.Lock()
        self._bytes = 0
        self._partials: set[str] = set()
        self._queue = HostQueue([], PER_HOST)
        self._done = 0
        self._error: BaseException | None = None

    def run(self, urls: list[str]) -> None:
        """Fetches every URL, ``concurrency`` at a time; the first unexpected error stops
        the others (each finishes the file it is on) and is raised here."""
        if not urls:
            return
        task = self.reporter.task("attachments", total=len(urls), transient=False)
        self._partials = set() if self.sealed else store.partial_keys(self.directory)
        self._queue, self._done, self._error = HostQueue(urls, PER_HOST), 0, None
        pins = AddressPins(self.options.allow_private)
        with pinned_client(pins, self.options.concurrency, self.options.timeout) as client:
            threads = self._start_workers(client, min(self.options.concurrency, len(urls)))
            try:
                self._report(threads, task, len(urls))
            finally:
                self._queue.stop()
                for thread in threads:
                    thread.join()
        if self._error is not None:
            raise self._error
        task.done()

    def _start_workers(self, client: PinnedClient, count: int) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._work, args=(client,), name=f"attachments-{n}")
            for n in range(count)
        ]
        for thread in threads:
            thread.start()
        return threads

    def _report(self, threads: list[threading.Thread], task: Task, total: int) -> None:
        """Shows the progress now and then until the workers are done."""
        while alive := [thread for thread in threads if thread.is_alive()]:
            alive[0].join(REPORT_EVERY_SECONDS)
            label = f"attachments: {self._done} of {total}, {self._bytes >> 20} MiB"
            task.update(self._done, label=label)

    def _work(self, client: PinnedClient) -> None:
        """One worker: takes the next URL until there are none (or the run is stopped)."""
        host: str | None = None
        try:
            while (taken := self._queue.take(host)) is not None:
                host, url = taken
                self._one(client, url)
                with self._lock:
                    self._done += 1
        except BaseException as exc:
            with self._lock:
                self._error = self._error or exc
            self._queue.stop()

    def _count(self, size: int) -> None:
        with self._lock:
            self._bytes += size

    def _one(self, client: PinnedClient, url: str) -> None:
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
