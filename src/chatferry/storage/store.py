"""A thin layer over obstore so local and object storage share one interface."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlparse

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import LocalStore, ObjectStore, S3Store, from_url

from chatferry.fs import make_private

if TYPE_CHECKING:
    from obstore import Attributes
    from obstore.store import ClientConfig, RetryConfig

# Parts of a streamed upload held in memory at once: chunk size x concurrency.
_CHUNK_SIZE = 5 * 1024 * 1024
_MAX_CONCURRENCY = 2

# The longest lifetime S3 accepts for a presigned URL (SigV4): 7 days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600

# What obstore raises for a key (or bucket) that is not there.
_MISSING = (NotFoundError, FileNotFoundError)

# Where obstore's S3 store reads the endpoint from, most specific first.
_ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")


class StorageError(Exception):
    """The object store failed; the store's own error (with its debug output, URLs and
    keys: for the log only) is the ``__cause__``."""


class StorageFull(StorageError):
    """The storage has no room left for the file (a full disk, ENOSPC; an S3-compatible
    server out of space): retrying cannot help until the operator frees space."""


# How a store says it is out of space: the OS error (obstore's local store reports it
# as "No space left on device (os error 28)"), or an S3-compatible server's answer.
_FULL_SIGNS = ("os error 28", "no space left on device", "insufficient storage", "storagefull")


def _is_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return any(sign in str(exc).lower() for sign in _FULL_SIGNS)


def _storage_error(action: str, key: str, exc: BaseException) -> StorageError:
    """The failure, with the first line of the store's own error (for operators)."""
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    if _is_full(exc):
        return StorageFull(f"the file storage is full: could not {action} {key!r} ({first})")
    return StorageError(f"could not {action} {key!r} ({type(exc).__name__}: {first})")


@contextlib.contextmanager
def _failing_as_storage(action: str, key: str) -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        raise _storage_error(action, key, exc) from exc


class _Chunks:
    """The caller's chunks, remembering an error the caller's iterator raised, so it
    leaves put_stream as itself (a cancelled export), not as a storage failure."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._source = iter(chunks)
        self.raised: BaseException | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._source)
        except StopIteration:
            raise
        except BaseException as exc:
            self.raised = exc
            raise


def content_disposition(filename: str) -> str:
    """``attachment`` with the file name, plain when ASCII-safe, else RFC 5987 too."""
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_")
    ascii_name = ascii_name.replace("\\", "_")
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != filename:
        value += f"; filename*=utf-8''{quote(filename, safe='')}"
    return value


def _endpoint_is_http() -> bool:
    for name in _ENDPOINT_ENV:
        value = os.environ.get(name)
        if value:
            return value.lower().startswith("http://")
    return False


class FileStore:
    """Stores whole files under keys; writes are atomic (no half file is ever visible).

    ``file://`` URLs are local directories; anything else goes to obstore's
    ``from_url`` (``s3://bucket/prefix`` for S3 and S3-compatible servers, with the
    endpoint, region and credentials taken from the usual ``AWS_*`` environment
    variables). An ``http://`` endpoint (a server on the same host or network) is
    allowed; S3 itself is always reached over HTTPS.
    """

    def __init__(
        self,
        url: str,
        *,
        max_retries: int = 3,
        retry_timeout_seconds: float = 60.0,
        connect_timeout_seconds: float = 10.0,
    ) -> None:
        self.url = url
        parsed = urlparse(url)
        self._local_root: Path | None = None
        if parsed.scheme == "file":
            self._local_root = Path(unquote(parsed.path))
            self._store: ObjectStore = LocalStore(self._local_root, mkdir=True)
        else:
            client: ClientConfig = {"connect_timeout": timedelta(seconds=connect_timeout_seconds)}
            if _endpoint_is_http():
                client["allow_http"] = True
            retry: RetryConfig = {
                "max_retries": max_retries,
                "retry_timeout": timedelta(seconds=retry_timeout_seconds),
            }
            self._store = from_url(url, client_options=client, retry_config=retry)

    @property
    def is_local(self) -> bool:
        return self._local_root is not None

    def put_stream(self, key: str, chunks: Iterable[bytes], filename: str | None = None) -> None:
        """Uploads the chunks as they come; if the iterator raises, nothing is stored.

        On object storage the upload is multipart, so at most chunk size x concurrency
        bytes are held in memory; ``filename`` becomes the object's Content-Disposition,
        which S3 sends back with every (presigned) download.
        """
        self._remove_partial_uploads(key)
        attributes: Attributes | None = None
        if filename is not None and not self.is_local:
            attributes = {
                "Content-Type": "application/json",
                "Content-Disposition": content_disposition(filename),
            }
        source = _Chunks(chunks)
        try:
            obstore.put(
                self._store,
                key,
                source,
                use_multipart=True,
                chunk_size=_CHUNK_SIZE,
                max_concurrency=_MAX_CONCURRENCY,
                attributes=attributes,
            )
        except BaseException as exc:
            with contextlib.suppress(OSError):  # nothing half-written stays behind
                self._remove_partial_uploads(key)
            if source.raised is not None:
                raise source.raised from None
            raise _storage_error("write", key, exc) from exc
        path = self.local_path(key)
        if path is not None:
            make_private(path)

    def free_bytes(self) -> int | None:
        """The free space of a local store's file system (None for object storage)."""
        if self._local_root is None:
            return None
        where = self._local_root
        while not where.exists() and where != where.parent:
            where = where.parent
        return shutil.disk_usage(where).free

    def delete(self, key: str) -> None:
        """Removes the file; a file that is already gone is not an error."""
        self._remove_partial_uploads(key)
        with _failing_as_storage("delete", key), contextlib.suppress(*_MISSING):
            obstore.delete(self._store, key)

    def exists(self, key: str) -> bool:
        try:
            with _failing_as_storage("look up", key):
                obstore.head(self._store, key)
        except StorageError as exc:
            if isinstance(exc.__cause__, _MISSING):
                return False
            raise
        return True

    def list_keys(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        """Every stored key under ``prefix``, with its last-modified time."""
        with _failing_as_storage("list", prefix):
            for batch in obstore.list(self._store, prefix, chunk_size=500):
                for meta in batch:
                    yield meta["path"], meta["last_modified"]

    def remove_stale_partials(self, older_than: datetime) -> int:
        """Deletes the staging files killed writers left on local disk (see
        ``_remove_partial_uploads``) that are older than ``older_than``; returns how many."""
        if self._local_root is None or not self._local_root.exists():
            return 0
        removed = 0
        cutoff = older_than.timestamp()
        for partial in self._local_root.rglob("*#*"):
            with contextlib.suppress(FileNotFoundError):
                if partial.is_file() and partial.stat().st_mtime < cutoff:
                    partial.unlink()
                    removed += 1
        return removed

    def read_bytes(self, key: str) -> bytes:
        with _failing_as_storage("read", key):
            return bytes(obstore.get(self._store, key).bytes())

    def presigned_url(self, key: str, ttl_seconds: int) -> str | None:
        """A GET URL for the object that needs no credentials and expires in
        ``ttl_seconds`` (at most 7 days, S3's limit); None for local storage, which
        serves files through the API's own signed links instead."""
        if not isinstance(self._store, S3Store):
            return None
        lifetime = timedelta(seconds=max(1, min(ttl_seconds, MAX_PRESIGN_SECONDS)))
        with _failing_as_storage("sign a link to", key):
            return obstore.sign(self._store, "GET", key, lifetime)

    def _remove_partial_uploads(self, key: str) -> None:
        """Deletes what a killed writer left of ``key`` on local disk.

        obstore's local store writes a multipart upload to ``<key>#<n>`` and renames it
        when complete; a process killed mid-upload leaves that staging file behind, and
        obstore's own listing hides it. (On S3 an unfinished multipart upload is never
        visible as an object.)
        """
        path = self.local_path(key)
        if path is not None:
            for partial in _partials(path):
                partial.unlink(missing_ok=True)

    def local_path(self, key: str) -> Path | None:
        """The file's path on disk when the store is local, else None."""
        return None if self._local_root is None else self._local_root / key


def _partials(path: Path) -> list[Path]:
    """The staging files ``<name>#<n>`` beside ``path`` (a prefix test per entry: a glob
    compiled a new pattern for every key, a tenth of a millisecond each export)."""
    prefix = path.name + "#"
    try:
        with os.scandir(path.parent) as entries:
            return [Path(entry.path) for entry in entries if entry.name.startswith(prefix)]
    except OSError:  # no directory there (or none to read): nothing to clean up, and the
        return []  # write or delete that follows reports what is wrong, as a storage error
