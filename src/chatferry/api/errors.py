"""Every error leaves as the envelope, never as a bare 500 with a stack trace.

An unexpected error gets a reference id: the tenant reads a short sentence with it, the
log holds the details (traceback, SQL, internal URLs) under the same id.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from chatferry.api.responses import error
from chatferry.db.outage import is_connection_failure
from chatferry.errors import ChatferryError, new_reference
from chatferry.obs.log import log_event
from chatferry.storage.store import StorageFull

log = logging.getLogger(__name__)

_HTTP_MESSAGES = {
    404: "no such endpoint: see the API paths under /api/v2.1/rest (and /docs)",
    405: "this method is not allowed on this path",
    413: "the request body is too large: a JSON body may have at most 64 KB",
}


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for problem in exc.errors():
        where = ".".join(str(p) for p in problem.get("loc", ()) if p not in ("body", "query"))
        problems.append(f"{where}: {problem.get('msg')}" if where else str(problem.get("msg")))
    return "invalid request: " + "; ".join(problems)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ChatferryError)
    async def domain_error(_request: Request, exc: ChatferryError) -> Response:
        return error(exc.status, exc.message, headers=exc.headers or None, details=exc.details)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        return error(400, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        message = _HTTP_MESSAGES.get(exc.status_code) or str(exc.detail)
        return error(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def client_left(request: Request, _exc: ClientDisconnect) -> Response:
        # Nobody reads the answer; one line in the log, no traceback.
        log_event(log, "client disconnected", method=request.method, path=request.url.path)
        return Response(status_code=400)

    @app.exception_handler(sa_exc.DBAPIError)
    @app.exception_handler(sa_exc.TimeoutError)
    async def database_error(request: Request, exc: Exception) -> Response:
        # The database out of reach (or every connection busy): the process logged it
        # once (db/outage.py); the client is told to come back, without a traceback.
        if is_connection_failure(exc) or isinstance(exc, sa_exc.TimeoutError):
            return error(503, DATABASE_UNAVAILABLE, headers={"Retry-After": "5"})
        return internal_error(request, exc)

    @app.exception_handler(StorageFull)
    async def storage_full(request: Request, exc: StorageFull) -> Response:
        # An upload that did not fit: one line for the operator, 503 for the client.
        log_event(log, "storage full", logging.ERROR, path=request.url.path, error=str(exc))
        return error(503, STORAGE_FULL, headers={"Retry-After": "60"})

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        return internal_error(request, exc)


DATABASE_UNAVAILABLE = (
    "the database cannot be reached right now, so the request was not completed; "
    "try again in a few seconds"
)


STORAGE_FULL = (
    "the file storage is full, so the file could not be stored (nothing was kept); try "
    "again later, and tell the operator if it lasts"
)


def internal_error(request: Request, exc: Exception) -> Response:
    """A 500 with a reference; the log has the details under it."""
    ref = new_reference()
    log_event(
        log,
        "unhandled error",
        logging.ERROR,
        method=request.method,
        path=request.url.path,
        reference=ref,
    )
    log.error("details of %s", ref, exc_info=exc)
    return error(
        500,
        "internal server error: the request was not completed; try again, and if it "
        f"fails again give the operator this reference: {ref}",
        details={"reference": ref},
    )
