"""Small file helpers: atomic JSON writes and a lock that keeps one run per directory."""

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

LOCK_NAME = ".chatferry.lock"


def write_json_atomic(path: Path, value: Any) -> None:
    """Writes ``value`` as JSON to a temporary file, syncs it, then renames it over ``path``.

    A reader (or a run started after a kill) sees the old file or the new one, never half.
    """
    data = orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with temporary.open("wb") as handle:
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

    handle = (directory / LOCK_NAME).open("a+b")
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
