"""Export statuses, as on the wire."""

from __future__ import annotations

from enum import StrEnum


class ExportStatus(StrEnum):
    SCHEDULED = "scheduled"  # waits for its run_at
    STARTED = "started"  # queued or running
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


# The export is still to be done: its job may run, update or fail it.
PENDING = (ExportStatus.SCHEDULED, ExportStatus.STARTED)
DONE = (ExportStatus.FINISHED, ExportStatus.FAILED, ExportStatus.CANCELLED)
