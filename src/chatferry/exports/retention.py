"""Retention: export files are deleted a set number of days after the export finished.

The record stays, marked ``expired_at``, with no file (so its ``download_url`` is
``""``). Every worker process sweeps as a periodic task; sweeps racing each other or a
DELETE are harmless: deleting a file twice is not an error, and the record is updated
only while it still names the file.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update

from chatferry.clock import utcnow
from chatferry.db.models import Export, table_of
from chatferry.exports.status import ExportStatus
from chatferry.runtime import Runtime

log = logging.getLogger(__name__)
_exports = table_of(Export)

# Exports handled per query; a sweep goes on until none is left.
BATCH_SIZE = 200


def sweep_expired_exports(rt: Runtime, now: datetime | None = None) -> int:
    """Deletes the files of exports finished more than ``export_retention_days`` days
    before ``now``; returns how many exports it expired. A no-op when retention is 0."""
    days = rt.settings.export_retention_days
    if days <= 0:
        return 0
    now = now or utcnow()
    cutoff = now - timedelta(days=days)
    expired = 0
    while True:
        with rt.engine.connect() as conn:
            rows = conn.execute(
                select(_exports.c.id, _exports.c.storage_key)
                .where(
                    _exports.c.status == ExportStatus.FINISHED,
                    _exports.c.finished_at < cutoff,
                    _exports.c.storage_key != "",
                )
                .order_by(_exports.c.finished_at, _exports.c.id)
                .limit(BATCH_SIZE)
            ).all()
        if not rows:
            return expired
        for row in rows:
            # The file first: a crash in between leaves a record whose file is gone
            # (the next sweep marks it), never a file that no record names.
            rt.store.delete(row.storage_key)
            with rt.engine.begin() as conn:
                result = conn.execute(
                    update(_exports)
                    .where(_exports.c.id == row.id, _exports.c.storage_key == row.storage_key)
                    .values(storage_key="", expired_at=now)
                )
            expired += result.rowcount
        log.info("retention: deleted the files of %s exports finished before %s", expired, cutoff)
        if len(rows) < BATCH_SIZE:
            return expired
