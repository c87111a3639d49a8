"""Operator endpoints: /healthz (alive), /readyz (database and storage reachable),
/metrics (Prometheus)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.responses import Response

from chatferry.api.deps import RuntimeDep
from chatferry.api.responses import OrjsonResponse, error, ok
from chatferry.errors import new_reference
from chatferry.jobs.failures import short_error
from chatferry.jobs.queue_metrics import metrics_text
from chatferry.obs.log import log_event
from chatferry.preflight import PreflightError, check_storage
from chatferry.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])

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


@router.get("/metrics", summary="Prometheus metrics of this process", response_class=Response)
def prometheus_metrics(rt: RuntimeDep) -> Response:
    return Response(metrics_text(rt.engine), media_type=CONTENT_TYPE_LATEST)
