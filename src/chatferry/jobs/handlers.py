"""What a kind of job must provide to the worker, and what it reports back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chatferry.jobs.queue import ClaimedJob
    from chatferry.jobs.records import TrackedRecords
    from chatferry.runtime import Runtime


@dataclass(frozen=True)
class JobReport:
    """The outcome of one run, for the logs and metrics."""

    outcome: str = "finished"  # finished, failed (the record failed), cancelled, skipped
    resource: str = ""
    rows: int = 0
    bytes: int = 0


class JobHandler(Protocol):
    """Runs one kind of job. The composition root (cli/, api/app.py) registers them."""

    kind: str
    noun: str  # what the tenant calls the record: "export", "import"
    redo: str  # what the tenant does after a failure: "create the export again"
    records: TrackedRecords  # the table of the job's targets (exports, imports)

    def run(self, rt: Runtime, job: ClaimedJob) -> JobReport:
        """Does the work; raises to fail or retry the job (a ChatferryError's message is
        shown to the tenant as it is)."""
        ...

    def discard(self, rt: Runtime, job: ClaimedJob) -> None:
        """Removes what the job left in storage once it failed for good (any path)."""
        ...


Handlers = dict[str, JobHandler]


def handlers_of(*handlers: JobHandler) -> Handlers:
    return {handler.kind: handler for handler in handlers}
