"""Small file helpers: private directories and files (0700 and 0600 whatever the umask),
atomic JSON writes, and a lock that keeps one run per directory."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from chatferry.client.errors import ClientError
from chatferry.fs import PRIVATE_DIR, PRIVATE_FILE

LOCK_NAME = ".chatferry.lock"
OPEN_TO_OTHERS = 0o077


def private_dir(path: Path) -> None:
    """Creates ``path`` and its missing parents with mode 0700 (the umask cannot widen it)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # made by another thread or process meanwhile
        os.chmod(directory, PRIVATE_DIR)
    if not path.is_dir():
        raise ClientError(f"{path} is not a directory")


def open_private(path: Path, mode: str = "wb") -> Any:
    """Opens ``path`` for writing (``wb``, ``r+b`` or ``a+b``) with mode 0600: a new file is
    created so, an older one is narrowed to it."""
    flags = {"wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "r+b": os.O_RDWR, "a+b": os.O_RDWR}
    fd = os.open(path, flags[mode] | (os.O_CREAT if mode == "a+b" else 0), PRIVATE_FILE)
    try:
        if os.fstat(fd).st_mode & 0o777 != PRIVATE_FILE:
            os.fchmod(fd, PRIVATE_FILE)
        return os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise


def temporary_name(path: Path) -> Path:
    """A hidden name beside ``path``, one per process and thread, for an atomic rename."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def open_to_others(directory: Path) -> str | None:
    """A warning when other users of the machine can read ``directory`` or a file in it."""
    loose = [
        p
        for p in (directory, *directory.rglob("*"))
        if p.stat(follow_symlinks=False).st_mode & OPEN_TO_OTHERS
    ]
    if not loose:
        return None
    first = loose[0]
    mode = first.stat(follow_symlinks=False).st_mode & 0o777
    return (
        f"warning: {first} is open to other users of this machine (mode {mode:o}; "
        f"{len(loose)} path(s) like it in the backup): run 'chmod -R go-rwx {directory}'"
    )


def write_json_atomic(path: Path, value: Any) -> None:
    """Writes ``value`` as JSON to a temporary file, syncs it, then renames it over ``path``.

    A reader (or a run started after a kill) sees the old file or the new one, never half.
    """
    write_bytes_atomic(path, orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` to a temporary file, syncs it, then renames it over ``path``."""
    temporary = temporary_name(path)
    with open_private(temporary) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    sync_dir(path.parent)


def sync_dir(directory: Path) -> None:
    """Makes a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


@contextmanager
def directory_lock(directory: Path, what: str) -> Iterator[None]:
    """Holds an exclusive lock on ``directory`` (one backup or restore at a time)."""
    import fcntl

    handle = open_private(directory / LOCK_NAME, "a+b")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ClientError(
                f"another chatferry command is using {directory}: wait for it to end "
                f"before the {what}"
            ) from None
        yield
    finally:
        handle.close()


def now_rfc3339() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
