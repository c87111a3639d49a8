"""Every read and write of attachment files goes through here.

Layout: ``DIR/attachments/<sha256 hex of the bytes>`` (no extension), one file per
distinct content, 0600 in a 0700 directory. A download in progress lives in
``DIR/attachments/.partial/<key>`` (the key is derived from the URL) until
:func:`finalize` moves it under its content name; beside it, ``<key>.validator`` keeps the
ETag or Last-Modified of the answer it started from (sent as ``If-Range`` on resuming).
Wrapping these few functions (for example to encrypt what is stored) changes how every
attachment is kept.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, BinaryIO

from chatferry.client.files import sync_dir

ATTACHMENTS_DIR = "attachments"
PARTIAL_DIR = ".partial"
_CHUNK = 1 << 20
_HEX = frozenset("0123456789abcdef")


def attachments_dir(directory: Path) -> Path:
    path = directory / ATTACHMENTS_DIR
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def stored_path(directory: Path, sha256: str) -> Path:
    """Where the attachment with these bytes is kept (whether or not it is there)."""
    return directory / ATTACHMENTS_DIR / sha256


def partial_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def partial_path(directory: Path, key: str) -> Path:
    """Where a download in progress is kept (its directories are made)."""
    (attachments_dir(directory) / PARTIAL_DIR).mkdir(mode=0o700, exist_ok=True)
    return _partial(directory, key)


def _partial(directory: Path, key: str) -> Path:
    """:func:`partial_path` without making the directories (once a file, not per call)."""
    return directory / ATTACHMENTS_DIR / PARTIAL_DIR / key


def partial_size(directory: Path, key: str) -> int:
    try:
        return os.stat(_partial(directory, key)).st_size
    except FileNotFoundError:
        return 0


def partial_keys(directory: Path) -> set[str]:
    """The keys of the partial files there are (listed once a run, not stat'ed per URL)."""
    try:
        return set(os.listdir(directory / ATTACHMENTS_DIR / PARTIAL_DIR))
    except FileNotFoundError:
        return set()


def open_for_write(directory: Path, key: str, append: bool) -> BinaryIO:
    """The partial file of a download: appended to when resuming, else started over (the
    directories are made when the first one is opened)."""
    path = _partial(directory, key)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        (attachments_dir(directory) / PARTIAL_DIR).mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, flags, 0o600)
    return os.fdopen(fd, "ab" if append else "wb")


def partial_hash(directory: Path, key: str) -> hashlib._Hash:
    """The sha256 state of the bytes a partial file holds (to go on from when resuming)."""
    digest = hashlib.sha256()
    path = _partial(directory, key)
    if path.is_file():
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest


def discard(directory: Path, key: str) -> None:
    _partial(directory, key).unlink(missing_ok=True)
    _validator_path(directory, key).unlink(missing_ok=True)


def _validator_path(directory: Path, key: str) -> Path:
    return _partial(directory, key).with_suffix(".validator")


def keep_validator(directory: Path, key: str, validator: str | None) -> None:
    """Notes the ETag or Last-Modified of a download started from byte 0 (none: forgets)."""
    path = _validator_path(directory, key)
    if validator is None:
        path.unlink(missing_ok=True)
        return
    partial_path(directory, key)  # its directories are made (a large body's, now and then)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(validator)


def validator(directory: Path, key: str) -> str | None:
    """The ETag or Last-Modified a partial download started from, if it had one."""
    path = _validator_path(directory, key)
    return path.read_text() if path.is_file() else None


def finalize(directory: Path, key: str, sha256: str, sync: bool = True) -> Path:
    """Moves a finished download under its content name (dropped if that is there already:
    the same bytes under another URL are stored once). ``sync=False`` leaves the file and
    the rename to :func:`make_durable`, which the caller runs before anything names it."""
    source = _partial(directory, key)
    target = stored_path(directory, sha256)
    if sync:
        with source.open("rb") as handle:
            os.fsync(handle.fileno())
    try:
        present = os.stat(target).st_size == os.stat(source).st_size
    except FileNotFoundError:
        present = False
    if present:
        source.unlink()
    else:
        os.replace(source, target)
        if sync:
            sync_dir(target.parent)
    return target


# fsyncs at once: the file system commits its journal for several of them together (2,000
# files of 50 KB here: 0.56 s one after the other, 0.16 s eight at a time).
SYNCS_AT_ONCE = 8


def _fsync_stored(path: Path) -> bool:
    """Syncs the file at ``path``; False if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def make_durable(directory: Path, sha256s: Iterable[str]) -> None:
    """Syncs the stored files with these contents (several at once), then (once) the
    directory naming them."""
    paths = [stored_path(directory, sha256) for sha256 in set(sha256s)]
    sync_files(paths, directory / ATTACHMENTS_DIR)


def sync_files(paths: list[Path], folder: Path) -> None:
    """Syncs the files at ``paths`` (several at once: missing ones are skipped), then, if
    any was there, ``folder``, which names them."""
    if len(paths) > 1:
        with ThreadPoolExecutor(min(SYNCS_AT_ONCE, len(paths))) as pool:
            synced = any(list(pool.map(_fsync_stored, paths)))
    else:
        synced = any(_fsync_stored(path) for path in paths)
    if synced:
        sync_dir(folder)


def drop_unnamed(directory: Path, named: set[str]) -> set[str]:
    """Removes the stored files no index entry names (a run killed before its index named
    them, maybe before they were synced: they are fetched again); returns those kept."""
    try:
        names = os.listdir(directory / ATTACHMENTS_DIR)
    except FileNotFoundError:
        return set()
    stored = {n for n in names if len(n) == 64 and all(c in _HEX for c in n)}
    for name in stored - named:
        (directory / ATTACHMENTS_DIR / name).unlink(missing_ok=True)
    return stored & named


def is_stored(directory: Path, sha256: str) -> bool:
    return stored_path(directory, sha256).is_file()


def open_for_read(directory: Path, sha256: str) -> BinaryIO:
    """The stored bytes of an attachment (FileNotFoundError if it is missing)."""
    return stored_path(directory, sha256).open("rb")


def digest(directory: Path, sha256: str) -> tuple[int, str]:
    """(size, sha256) of the stored attachment's bytes."""
    return path_digest(stored_path(directory, sha256))


def path_digest(path: Path) -> tuple[int, str]:
    """(size, sha256) of a file's bytes, read in chunks (FileNotFoundError if missing)."""
    hasher, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return size, hasher.hexdigest()


def store_stream(directory: Path, source: IO[bytes]) -> tuple[str, int]:
    """Stores the bytes of an open file (e.g. a converter's export) under their sha256;
    returns (sha256, size). The same bytes already stored are kept once."""
    key = f"stream-{os.getpid()}-{id(source)}"
    hasher, size = hashlib.sha256(), 0
    try:
        with open_for_write(directory, key, append=False) as handle:
            while chunk := source.read(_CHUNK):
                hasher.update(chunk)
                handle.write(chunk)
                size += len(chunk)
        sha256 = hasher.hexdigest()
        finalize(directory, key, sha256)
    except BaseException:
        discard(directory, key)
        raise
    return sha256, size
