"""Free space of local storage: under the operator's minimum, no new export is taken."""

from __future__ import annotations

from chatferry.storage.store import FileStore

MIN_FREE_SETTING = "CHATFERRY_STORAGE_MIN_FREE_BYTES"


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def low_space_problem(store: FileStore, min_free: int) -> str | None:
    """Why the store has too little room (None when it has enough, when the check is
    off, or for object storage, whose room we cannot see)."""
    if min_free <= 0:
        return None
    try:
        free = store.free_bytes()
    except OSError:
        return None  # unreadable: the write probe and the jobs' writes will say why
    if free is None or free >= min_free:
        return None
    return (
        f"the file storage is nearly full: {_megabytes(free)} free, under the minimum of "
        f"{_megabytes(min_free)} ({MIN_FREE_SETTING}); the operator must free space on it "
        "(delete old exports, or set CHATFERRY_EXPORT_RETENTION_DAYS) or give it more room"
    )
