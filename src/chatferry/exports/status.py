"""Export statuses, as on the wire."""

SCHEDULED = "scheduled"
STARTED = "started"
FINISHED = "finished"
FAILED = "failed"
CANCELLED = "cancelled"
