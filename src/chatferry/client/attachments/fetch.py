"""One attachment download: redirects checked hop by hop, retries with backoff, resumed
with ``Range`` after a cut, streamed to disk under a size cap, hashed on the way.

A resume sends ``If-Range`` with the ETag (or Last-Modified) of the answer the partial
file started from: a server whose file changed since answers 200 with the whole new file,
which is then written from byte 0 (as is any 206 for another range than the one asked),
so bytes of two versions are never joined under the hash of the mix. The validator is
kept in memory for the retries of this run; for a body of KEEP_VALIDATOR_BYTES or more
(or of unknown length) also beside the partial file, for a later run after this one was
stopped. A partial file an earlier run left without a validator is started over.

Into an encrypted backup (a :class:`SealedStore`) the body is encrypted as it streams in,
hashed and size-capped on the way; such a download starts over after a cut (an encrypted
file is not a prefix to continue), and no plaintext reaches the disk."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from chatferry.client.attachments import store
from chatferry.client.attachments.addresses import RefusedAddress, UnresolvedHost
from chatferry.client.attachments.pinned import PinnedClient, Response, Timeout, TransportError
from chatferry.client.attachments.sealed import SealedStore
from chatferry.client.ranges import range_start, range_validator, resume_headers

MAX_REDIRECTS = 5
MAX_WAIT_SECONDS = 60.0
DEFAULT_RETRIES = 3
KEEP_VALIDATOR_BYTES = 1 << 20  # smaller downloads start over after a stopped run
# An encrypted download of at most this many bytes (by its Content-Length) is read whole
# and encrypted in one call: a streaming encryption's thread and per-file syncs cost a
# 50 KB file more than its bytes do.
SEAL_IN_MEMORY_BYTES = 1 << 20


@dataclass(frozen=True)
class FetchSettings:
    max_bytes: int
    retries: int = DEFAULT_RETRIES
    backoff_seconds: float = 0.5


@dataclass(frozen=True)
class Fetched:
    sha256: str
    bytes: int
    content_type: str
    file: str = ""  # encrypted: the age file's name, and its bytes and sha256
    encrypted_bytes: int = 0
    encrypted_sha256: str = ""
    stored_now: bool = True  # False: the same bytes were stored already in this run


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.wait = reason, wait


class Failed(Exception):
    """The URL cannot be fetched; ``reason`` says why (it goes into the manifest)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), at most MAX_WAIT_SECONDS."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_WAIT_SECONDS)


class Download:
    """Fetches one URL into the backup directory's attachment store."""

    def __init__(
        self,
        client: PinnedClient,
        directory: Path,
        settings: FetchSettings,
        progress: Callable[[int], None] = lambda _: None,
        sealed: SealedStore | None = None,
        fresh: bool = False,  # no partial file of the URL was there when the run began
    ) -> None:
        self.fresh = fresh
        self.client = client
        self.directory = directory
        self.settings = settings
        self.progress = progress
        self.sealed = sealed
        self._validator: str | None = None  # of the answer the partial file started from
        self._known = False  # _validator is this run's (or read from the disk)
        self._on_disk = False

    def fetch(self, url: str) -> Fetched:
        """The stored attachment; Failed (with the reason) once retries are spent."""
        key = store.partial_key(url)
        attempt = 0
        while True:
            try:
                return self._follow(url, key)
            except _Retry as retry:
                attempt += 1
                if attempt > self.settings.retries:
                    raise Failed(retry.reason) from None
                time.sleep(self._backoff(attempt) if retry.wait is None else retry.wait)
            except Failed:
                if self.sealed is None:
                    store.discard(self.directory, key)
                raise

    def _backoff(self, attempt: int) -> float:
        return float(self.settings.backoff_seconds * 2 ** (attempt - 1) * random.uniform(1, 1.5))

    def _follow(self, url: str, key: str) -> Fetched:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            if urlsplit(current).scheme not in ("http", "https"):
                raise Failed(f"redirected to a URL that is not http(s): {current}")
            offset = self._resume_from(key)
            self.fresh = False  # a retry resumes what this attempt wrote
            headers = resume_headers(offset, self._validator)
            try:
                with self.client.stream("GET", current, headers=headers) as response:
                    if response.is_redirect and "location" in response.headers:
                        current = urljoin(current, response.headers["location"])
                        continue
                    return self._receive(response, key, offset)
            except (RefusedAddress, UnresolvedHost) as exc:
                raise Failed(exc.reason) from None
            except Timeout:
                raise _Retry("timeout") from None
            except TransportError as exc:
                raise _Retry(f"connection failed ({exc})") from None
        raise Failed(f"more than {MAX_REDIRECTS} redirects")

    def _resume_from(self, key: str) -> int:
        """The offset to resume the partial file from (0: start over)."""
        offset = 0 if self.sealed or self.fresh else store.partial_size(self.directory, key)
        if offset and not self._known:  # left by an earlier run: resumed if it kept one
            self._validator, self._known = store.validator(self.directory, key), True
            self._on_disk = self._validator is not None
            return offset if self._on_disk else 0
        return offset

    def _keep_validator(self, response: Response, key: str, length: int | None) -> None:
        """Notes what ``If-Range`` sends if this download, started from byte 0, is cut."""
        self._validator, self._known = range_validator(response), True
        if self._validator and (length is None or length >= KEEP_VALIDATOR_BYTES):
            store.keep_validator(self.directory, key, self._validator)
            self._on_disk = True
        elif self._on_disk:
            store.keep_validator(self.directory, key, None)
            self._on_disk = False

    def _receive(self, response: Response, key: str, offset: int) -> Fetched:
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}", retry_after(response.headers.get("retry-after")))
        if status == 416 and offset:
            store.discard(self.directory, key)
            raise _Retry("HTTP 416 (the partial download was started over)", 0.0)
        if status not in (200, 206):
            raise Failed(f"HTTP {status}")
        resumed = status == 206 and range_start(response) == offset
        if status == 206 and not resumed:
            if self.sealed is None:
                store.discard(self.directory, key)
            raise _Retry("HTTP 206 for another range (started over)", 0.0)
        start = offset if resumed else 0
        length = response.headers.get("content-length")
        size = int(length) if length is not None and length.isdigit() else None
        if size is not None:
            self._check_size(start + size)
        if self.sealed is not None and size is not None and size <= SEAL_IN_MEMORY_BYTES:
            return self._seal_in_memory(response, self.sealed)
        if self.sealed is not None:
            return self._seal(response, self.sealed)
        if not start:
            self._keep_validator(response, key, size)
        return self._write(response, key, start)

    def _check_size(self, size: int, more: bool = False) -> None:
        cap = self.settings.max_bytes
        if size > cap:
            raise Failed(f"too large ({size}{'+' if more else ''} bytes > {cap})")

    def _receive_into(
        self, response: Response, write: Callable[[bytes], Any], hasher: Any = None, size: int = 0
    ) -> Any:
        """Streams the body into ``write`` under the size cap, going on from ``hasher`` and
        ``size`` (the bytes a resumed download holds already); its sha256 state and size."""
        hasher = hasher or _new_hash()
        for chunk in response.iter_raw():
            size += len(chunk)
            self._check_size(size, more=True)
            hasher.update(chunk)
            write(chunk)
            self.progress(len(chunk))
        return hasher, size

    def _seal(self, response: Response, sealed: SealedStore) -> Fetched:
        with sealed.writer() as (writer, name):
            hasher, size = self._receive_into(response, writer.write)
        return _sealed(response, sealed, hasher.hexdigest(), size, name, writer)

    def _seal_in_memory(self, response: Response, sealed: SealedStore) -> Fetched:
        """A small body read whole and encrypted in one call (no encryption thread)."""
        body = bytearray()
        hasher, size = self._receive_into(response, body.extend)
        name, stored = sealed.store_bytes(bytes(body))
        return _sealed(response, sealed, hasher.hexdigest(), size, name, stored)

    def _write(self, response: Response, key: str, start: int) -> Fetched:
        hasher: Any = store.partial_hash(self.directory, key) if start else _new_hash()
        with store.open_for_write(self.directory, key, append=start > 0) as handle:
            hasher, size = self._receive_into(response, handle.write, hasher, start)
        sha256 = hasher.hexdigest()
        store.finalize(self.directory, key, sha256, sync=False)  # see IndexWriter
        if self._on_disk:
            store.keep_validator(self.directory, key, None)
        return Fetched(sha256, size, _content_type(response))


def _sealed(
    response: Response, sealed: SealedStore, sha256: str, size: int, name: str, stored: Any
) -> Fetched:
    """What an encrypted download stored (``stored``: the age file's size and sha256); a
    copy of bytes this run stored already is dropped for the earlier file."""
    kept, new = sealed.keep(sha256, name)
    return Fetched(sha256, size, _content_type(response), kept, stored.size, stored.sha256, new)


def _content_type(response: Response) -> str:
    """The media type, without parameters (``text/plain; charset=utf-8`` -> ``text/plain``)."""
    return response.headers.get("content-type", "").split(";")[0].strip()


def _new_hash() -> Any:
    import hashlib

    return hashlib.sha256()
