"""Operator endpoints: /healthz (alive), /readyz (database and storage reachable),
/metrics (Prometheus)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select, text
from starlette.responses import Response

from chatferry.api.deps import RuntimeDep
from chatferry.api.responses import OrjsonResponse, error, ok
from chatferry.db.models import Job, table_of
from chatferry.errors import new_reference
from chatferry.jobs.failures import short_error
from chatferry.jobs.status import JobStatus
from chatferry.obs import metrics
from chatferry.obs.log import log_event
from chatferry.preflight import PreflightError, check_storage
from chatferry.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])
_jobs = table_of(Job)

READY_CACHE_SECONDS = 5.0


@dataclass
class _Readiness:
    checked_at: float = -READY_CACHE_SECONDS
    problem: str | None = None


_readiness = _Readiness()
_readiness_lock = threading.Lock()


def check_database(rt: Runtime) -> None:
    with rt.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _check_storage(rt: Runtime) -> None:
    check_storage(rt.store)


def _problem(rt: Runtime) -> str | None:
    for part, check in (("database", check_database), ("file storage", _check_storage)):
        try:
            check(rt)
        except Exception as exc:
            ref = new_reference()
            detail = exc.message if isinstance(exc, PreflightError) else short_error(exc)
            log_event(log, "not ready", logging.WARNING, part=part, reference=ref, error=detail)
            return f"the {part} is not reachable (reference {ref}): see the server's log"
    return None


def readiness_problem(rt: Runtime) -> str | None:
    """Why the process cannot serve (None when it can); checked at most every 5 s."""
    with _readiness_lock:
        now = time.monotonic()
        if now - _readiness.checked_at >= READY_CACHE_SECONDS:
            _readiness.problem = _problem(rt)
            _readiness.checked_at = now
        return _readiness.problem


@router.get("/healthz", summary="The process answers")
def healthz() -> Response:
    return OrjsonResponse({"status": "ok"})


@router.get(
    "/readyz",
    summary="The database and the file storage are reachable",
    responses={503: {"description": "Not ready: the message says which part failed."}},
)
def readyz(rt: RuntimeDep) -> Response:
    problem = readiness_problem(rt)
    if problem is not None:
        return error(503, problem)
    return ok({"status": "ready"})


class QueueCollector(Collector):
    """Jobs waiting and running by kind, read from the database at scrape time."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def collect(self):  # type: ignore[no-untyped-def]
        waiting = GaugeMetricFamily(
            "chatferry_jobs_waiting", "Jobs queued (due or not yet due), by kind.", labels=["kind"]
        )
        running = GaugeMetricFamily(
            "chatferry_jobs_running", "Jobs running now, by kind.", labels=["kind"]
        )
        query = (
            select(_jobs.c.kind, _jobs.c.status, func.count())
            .where(_jobs.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
            .group_by(_jobs.c.kind, _jobs.c.status)
        )
        counts = {("export", s): 0 for s in JobStatus} | {("import", s): 0 for s in JobStatus}
        with self._rt.engine.connect() as conn:
            for kind, status, count in conn.execute(query):
                counts[(kind, status)] = count
        for (kind, status), count in sorted(counts.items()):
            if status == JobStatus.QUEUED:
                waiting.add_metric([kind], count)
            elif status == JobStatus.RUNNING:
                running.add_metric([kind], count)
        yield waiting
        yield running


@router.get("/metrics", summary="Prometheus metrics of this process", response_class=Response)
def prometheus_metrics(rt: RuntimeDep) -> Response:
    queue = CollectorRegistry()
    queue.register(QueueCollector(rt))
    body = generate_latest(metrics.REGISTRY) + generate_latest(queue)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
