"""Uploaded import files never outlive their import.

The import job deletes its file when it ends (finished, failed or dry run) and the
worker's failure paths delete it too; a process killed between the end and the delete
leaves a stray. This sweep (a periodic task of every worker process) deletes uploaded
files whose import has ended or is gone, and staging files killed writers left behind.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from chatferry.clock import utcnow
from chatferry.db.models import Import, table_of
from chatferry.imports.status import ImportStatus
from chatferry.obs.log import log_event
from chatferry.runtime import Runtime

log = logging.getLogger(__name__)
_imports = table_of(Import)

# A file younger than this may belong to an upload whose record is not committed yet.
GRACE = timedelta(hours=1)
PREFIX = "imports/"


def _unique_id_of(key: str) -> str:
    """``imports/<app id>/<unique id>.json`` -> the unique id."""
    return key.rsplit("/", 1)[-1].removesuffix(".json")


def _still_needed(rt: Runtime, unique_ids: list[str]) -> set[str]:
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(_imports.c.unique_id).where(
                _imports.c.unique_id.in_(unique_ids), _imports.c.status == ImportStatus.STARTED
            )
        )
        return {row.unique_id for row in rows}


def sweep_stray_uploads(rt: Runtime, now: datetime | None = None) -> int:
    """Deletes stray uploaded files and stale staging files; returns how many files."""
    cutoff = (now or utcnow()) - GRACE
    old = [key for key, modified in rt.store.list_keys(PREFIX) if modified < cutoff]
    removed = 0
    for start in range(0, len(old), 500):
        batch = old[start : start + 500]
        needed = _still_needed(rt, [_unique_id_of(key) for key in batch])
        for key in batch:
            if _unique_id_of(key) not in needed:
                rt.store.delete(key)
                removed += 1
    removed += rt.store.remove_stale_partials(cutoff)
    if removed:
        log_event(log, "retention removed stray files", files=removed)
    return removed
