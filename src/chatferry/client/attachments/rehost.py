"""Re-hosting on restore: each stored attachment is uploaded to another storage under its
content name, and every URL the backup fetched is rewritten to ``<base url>/<sha256>`` in
the rows a restore imports. An object already there with the same size is not uploaded
again, so a run again uploads nothing twice. An encrypted backup's attachments are
decrypted as they are uploaded (with the restore's identities; nothing on disk).

Storage URLs take the forms of ``CHATFERRY_STORAGE_URL``: ``file:///a/directory`` or
``s3://bucket/prefix`` (endpoint, region and credentials from the usual ``AWS_*``
environment variables; an ``http://`` endpoint is allowed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import unquote, urlparse

import obstore
from obstore.store import LocalStore, ObjectStore, from_url

from chatferry.client.attachments import store
from chatferry.client.attachments.sealed import open_sealed, read_index
from chatferry.client.errors import ClientError
from chatferry.client.manifest import Manifest
from chatferry.client.progress import NullReporter, Reporter

if TYPE_CHECKING:
    from chatferry.client.crypto import Identity

CHUNK = 1 << 20
Index = dict[str, dict[str, Any]]
_ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")
Row = dict[str, Any]


@dataclass
class RehostResult:
    uploaded: int = 0
    already: int = 0


def open_storage(url: str) -> ObjectStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStore(Path(unquote(parsed.path)), mkdir=True)
    if parsed.scheme != "s3":
        raise ClientError(f"--rehost-attachments {url}: use a file:// or s3:// URL")
    endpoint = next((os.environ[n] for n in _ENDPOINT_ENV if os.environ.get(n)), "")
    options: Any = {"allow_http": True} if endpoint.lower().startswith("http://") else {}
    return from_url(url, client_options=options)


def _present(target: ObjectStore, name: str, size: int) -> bool:
    try:
        return int(obstore.head(target, name)["size"]) == size
    except FileNotFoundError:
        return False


def _attributes(target: ObjectStore, entry: dict[str, Any]) -> Any:
    """The Content-Type for object storage (a local directory keeps no attributes)."""
    if isinstance(target, LocalStore):
        return None
    return {"Content-Type": entry.get("content_type") or "application/octet-stream"}


def attachment_index(
    directory: Path, manifest: Manifest, identities: Sequence[Identity] | None = None
) -> Index:
    """URL -> entry: the manifest's, or an encrypted backup's sealed index decrypted."""
    if not manifest.encrypted:
        return manifest.attachments
    return read_index(directory, manifest.encrypted_files, identities or [])


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def _upload(
    directory: Path,
    target: ObjectStore,
    entry: dict[str, Any],
    identities: Sequence[Identity] | None,
) -> None:
    """One attachment under its content name; an encrypted one decrypted as it streams."""
    attributes = _attributes(target, entry)
    if "file" in entry:
        with open_sealed(directory, entry["file"], identities or []) as stream:
            obstore.put(target, entry["sha256"], _chunks(stream), attributes=attributes)
        return
    with store.open_for_read(directory, entry["sha256"]) as handle:
        obstore.put(target, entry["sha256"], handle, attributes=attributes)


def upload_attachments(
    directory: Path,
    index: Index,
    url: str,
    reporter: Reporter | None = None,
    identities: Sequence[Identity] | None = None,
) -> RehostResult:
    """Uploads every stored attachment of ``index`` not in the target storage yet (an
    encrypted backup's decrypted with ``identities`` as they stream; nothing on disk)."""
    target = open_storage(url)
    files = {e["sha256"]: e for e in index.values() if "sha256" in e}
    result = RehostResult()
    task = (reporter or NullReporter()).task("re-hosting attachments", total=len(files))
    for done, (sha256, entry) in enumerate(sorted(files.items()), 1):
        if _present(target, sha256, int(entry["bytes"])):
            result.already += 1
        else:
            _upload(directory, target, entry, identities)
            result.uploaded += 1
        task.update(done)
    task.done()
    return result


def url_rewriter(index: Index, base_url: str) -> Callable[[Row], Row]:
    """A function giving a row with every fetched URL pointing at the re-hosted copy."""
    base = base_url.rstrip("/")
    moved = {u: f"{base}/{e['sha256']}" for u, e in index.items() if "sha256" in e}

    def swap(value: Any) -> Any:
        if isinstance(value, str):
            return moved.get(value, value)
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    def rewrite(row: Row) -> Row:
        return {k: swap(v) if k in ("AvatarUrl", "Payload") else v for k, v in row.items()}

    return rewrite
