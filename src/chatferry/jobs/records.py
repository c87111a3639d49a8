"""The records a job works on (exports, imports): guarded progress and failure updates.

Each update names the statuses in which the job may still change the record, so a job
that lost its record (deleted, cancelled, finished by another run) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, select, update
from sqlalchemy.orm import Session

from chatferry.clock import utcnow


@dataclass(frozen=True)
class TrackedRecords:
    table: Table
    running: str  # the status while the job works on the record
    pending: tuple[str, ...]  # statuses from which the job may still fail it
    failed: str

    def resource_of(self, engine: Engine, record_id: int) -> str:
        """The record's type (users, rooms, comments), for the logs ("" if it is gone)."""
        with engine.connect() as conn:
            value = conn.scalar(
                select(self.table.c.resource_name).where(self.table.c.id == record_id)
            )
        return str(value or "")

    def set_progress(self, engine: Engine, record_id: int, percentage: int) -> bool:
        """Records progress; False if the record no longer runs (deleted, cancelled)."""
        with engine.begin() as conn:
            result = conn.execute(
                update(self.table)
                .where(self.table.c.id == record_id, self.table.c.status == self.running)
                .values(percentage=percentage)
            )
        return bool(result.rowcount)

    def note(self, executor: Session | Connection, record_id: int, message: str) -> None:
        """Shows the tenant a message while the record is still pending (a retry)."""
        executor.execute(
            update(self.table)
            .where(self.table.c.id == record_id, self.table.c.status.in_(self.pending))
            .values(error_message=message)
        )

    def mark_failed(
        self, executor: Session | Connection, record_id: int, message: str, **extra: Any
    ) -> bool:
        """Fails a pending record with ``message``; False if it was no longer pending."""
        result = executor.execute(
            update(self.table)
            .where(self.table.c.id == record_id, self.table.c.status.in_(self.pending))
            .values(status=self.failed, error_message=message, finished_at=utcnow(), **extra)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
