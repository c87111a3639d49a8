"""Operator endpoints: /healthz (alive), /readyz (database and storage reachable, local
storage not under its free-space minimum), /metrics (Prometheus)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.responses import Response

from chatferry.api.deps import RuntimeDep
from chatferry.api.responses import OrjsonResponse, error, ok
from chatferry.apps.quota_metrics import QuotaCollector
from chatferry.db.outage import is_connection_failure
from chatferry.errors import new_reference
from chatferry.jobs.failures import short_error
from chatferry.jobs.queue_metrics import metrics_text
from chatferry.obs.log import log_event
from chatferry.preflight import PreflightError, check_storage
from chatferry.runtime import Runtime
from chatferry.settings import Settings
from chatferry.storage.room import low_space_problem
from chatferry.storage.store import FileStore

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])

READY_CACHE_SECONDS = 5.0
# A readiness probe answers within seconds: its storage check neither retries nor
# waits long for a connection (the jobs' own store does both).
PROBE_TIMEOUT_SECONDS = 5.0


class StorageLow(PreflightError):
    """Local storage is under CHATFERRY_STORAGE_MIN_FREE_BYTES; the message says so."""


@dataclass
class Readiness:
    """One app's last readiness check, shared by its requests (at most one check runs
    at a time; the others wait for it and read its result)."""

    settings: Settings
    lock: threading.Lock = field(default_factory=threading.Lock)
    checked_at: float = -READY_CACHE_SECONDS
    problem: str | None = None
    store: FileStore | None = None

    def check_storage(self) -> None:
        """A write and a delete through the probe's store (made on first use: opening
        a local store creates its directory, which may fail too)."""
        if self.store is None:
            try:
                self.store = probe_store(self.settings)
            except Exception as exc:
                url = self.settings.resolved_storage_url()
                message = f"cannot open the file storage at {url}: {short_error(exc)}"
                raise PreflightError(message) from exc
        low = low_space_problem(self.store, self.settings.storage_min_free_bytes)
        if low is not None:
            raise StorageLow(low)
        check_storage(self.store)


def probe_store(settings: Settings) -> FileStore:
    """The deployment's storage, reached without retries and with short timeouts."""
    return FileStore(
        settings.resolved_storage_url(),
        max_retries=0,
        retry_timeout_seconds=PROBE_TIMEOUT_SECONDS,
        connect_timeout_seconds=min(
            PROBE_TIMEOUT_SECONDS, settings.storage_connect_timeout_seconds
        ),
    )


def check_database(rt: Runtime) -> None:
    with rt.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _problem(rt: Runtime, state: Readiness) -> str | None:
    checks: tuple[tuple[str, Callable[[], None]], ...] = (
        ("database", lambda: check_database(rt)),
        ("file storage", state.check_storage),
    )
    for part, check in checks:
        try:
            check()
        except Exception as exc:
            ref = new_reference()
            detail = exc.message if isinstance(exc, PreflightError) else short_error(exc)
            if is_connection_failure(exc):  # logged once for the process (db/outage.py)
                return f"the {part} is not reachable: see the server's log (database unreachable)"
            log_event(log, "not ready", logging.WARNING, part=part, reference=ref, error=detail)
            if isinstance(exc, StorageLow):
                return f"{exc.message} (reference {ref})"
            return f"the {part} is not reachable (reference {ref}): see the server's log"
    return None


def readiness_problem(rt: Runtime, state: Readiness) -> str | None:
    """Why the process cannot serve (None when it can); checked at most every 5 s."""
    with state.lock:
        now = time.monotonic()
        if now - state.checked_at >= READY_CACHE_SECONDS:
            problem = _problem(rt, state)
            if problem is None and state.problem is not None:
                log_event(log, "ready again")
            state.problem, state.checked_at = problem, now
        return state.problem


_state_lock = threading.Lock()


def _readiness_of(request: Request, rt: Runtime) -> Readiness:
    with _state_lock:
        state: Readiness | None = getattr(request.app.state, "readiness", None)
        if state is None:
            state = request.app.state.readiness = Readiness(rt.settings)
        return state


@router.get("/healthz", summary="The process answers")
def healthz() -> Response:
    return OrjsonResponse({"status": "ok"})


@router.get(
    "/readyz",
    summary="The database and the file storage are reachable",
    responses={503: {"description": "Not ready: the message says which part failed."}},
)
def readyz(request: Request, rt: RuntimeDep) -> Response:
    problem = readiness_problem(rt, _readiness_of(request, rt))
    if problem is not None:
        return error(503, problem)
    return ok({"status": "ready"})


@router.get("/metrics", summary="Prometheus metrics of this process", response_class=Response)
def prometheus_metrics(rt: RuntimeDep) -> Response:
    quotas = QuotaCollector(rt.engine, rt.settings)
    return Response(metrics_text(rt.engine, quotas), media_type=CONTENT_TYPE_LATEST)
