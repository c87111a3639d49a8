"""Import statuses, as on the wire."""

from __future__ import annotations

from enum import StrEnum


class ImportStatus(StrEnum):
    STARTED = "started"  # queued or running
    FINISHED = "finished"
    FAILED = "failed"
