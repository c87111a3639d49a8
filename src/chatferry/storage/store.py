"""A thin layer over obstore so local and object storage share one interface."""

from __future__ import annotations

import contextlib
import glob
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlparse

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import LocalStore, ObjectStore, from_url

# Parts of a streamed upload held in memory at once: chunk size x concurrency.
_CHUNK_SIZE = 5 * 1024 * 1024
_MAX_CONCURRENCY = 2


class FileStore:
    """Stores whole files under keys; writes are atomic (no half file is ever visible)."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = urlparse(url)
        self._local_root: Path | None = None
        if parsed.scheme == "file":
            self._local_root = Path(unquote(parsed.path))
            self._store: ObjectStore = LocalStore(self._local_root, mkdir=True)
        else:
            self._store = from_url(url)

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> None:
        """Uploads the chunks as they come; if the iterator raises, nothing is stored."""
        self._remove_partial_uploads(key)
        obstore.put(
            self._store,
            key,
            iter(chunks),
            use_multipart=True,
            chunk_size=_CHUNK_SIZE,
            max_concurrency=_MAX_CONCURRENCY,
        )

    def delete(self, key: str) -> None:
        """Removes the file; a file that is already gone is not an error."""
        self._remove_partial_uploads(key)
        with contextlib.suppress(NotFoundError, FileNotFoundError):
            obstore.delete(self._store, key)

    def exists(self, key: str) -> bool:
        try:
            obstore.head(self._store, key)
        except (NotFoundError, FileNotFoundError):
            return False
        return True

    def read_bytes(self, key: str) -> bytes:
        return bytes(obstore.get(self._store, key).bytes())

    def _remove_partial_uploads(self, key: str) -> None:
        """Deletes what a killed writer left of ``key`` on local disk.

        obstore's local store writes a multipart upload to ``<key>#<n>`` and renames it
        when complete; a process killed mid-upload leaves that staging file behind, and
        obstore's own listing hides it. (On S3 an unfinished multipart upload is never
        visible as an object.)
        """
        path = self.local_path(key)
        if path is not None:
            for partial in path.parent.glob(glob.escape(path.name) + "#*"):
                partial.unlink(missing_ok=True)

    def local_path(self, key: str) -> Path | None:
        """The file's path on disk when the store is local, else None."""
        return None if self._local_root is None else self._local_root / key
