"""Every error leaves as the envelope, never as a bare 500 with a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from chatferry.api.responses import error
from chatferry.errors import ChatferryError

log = logging.getLogger(__name__)

_HTTP_MESSAGES = {
    404: "no such endpoint: see the API paths under /api/v2.1/rest",
    405: "this method is not allowed on this path",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ChatferryError)
    async def domain_error(_request: Request, exc: ChatferryError) -> Response:
        return error(exc.status, exc.message, details=exc.details)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}"
            for e in exc.errors()
        )
        return error(400, f"invalid request: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        message = _HTTP_MESSAGES.get(exc.status_code) or str(exc.detail)
        return error(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error(500, "internal server error: the request was not completed; try again")
