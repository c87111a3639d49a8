"""Pages: the web console at /console, offline Swagger UI at /docs, security headers.

Everything is served from files in installed packages: the console from
``chatferry/console/static``, the Swagger UI bundle and stylesheet from the pinned
``fastapi-offline`` package (FastAPI's own /docs loads them from a CDN and runs an
inline script, which the Content-Security-Policy below forbids).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException
from starlette.datastructures import MutableHeaders
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}

router = APIRouter(include_in_schema=False)


def package_dir(package: str, *parts: str) -> Path:
    """A directory inside an installed package, as a real path on disk."""
    path = files(package).joinpath(*parts)
    if not isinstance(path, Path) or not path.is_dir():
        raise RuntimeError(f"{package}/{'/'.join(parts)} is not a directory on disk")
    return path


CONSOLE_DIR = package_dir("chatferry.console", "static")
SWAGGER_DIR = package_dir("fastapi_offline", "static")


def _page(name: str) -> FileResponse:
    """An HTML page, revalidated on every visit so an upgrade shows at once."""
    return FileResponse(
        CONSOLE_DIR / name,
        media_type="text/html; charset=utf-8",
        headers={"cache-control": "no-cache"},
    )


@router.api_route("/", methods=["GET", "HEAD"])
def root() -> Response:
    return RedirectResponse("/console", status_code=307)


@router.api_route("/console", methods=["GET", "HEAD"])
def console_page() -> Response:
    return _page("index.html")


@router.api_route("/console/", methods=["GET", "HEAD"])
def console_slash() -> Response:
    return RedirectResponse("/console", status_code=307)


@router.api_route("/docs", methods=["GET", "HEAD"])
def docs_page() -> Response:
    return _page("docs.html")


@router.api_route("/docs/{name}", methods=["GET", "HEAD"])
def swagger_asset(name: str) -> Response:
    media_type = SWAGGER_FILES.get(name)
    if media_type is None:
        raise HTTPException(404)
    return FileResponse(SWAGGER_DIR / name, media_type=media_type)


@router.api_route("/favicon.ico", methods=["GET", "HEAD"])
def favicon() -> Response:
    return RedirectResponse("/console/static/favicon.svg", status_code=307)


class SecurityHeaders:
    """Adds the CSP and friends to every response that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


API_PREFIX = "/api/v2.1/rest"
SECURITY_SCHEMES = {
    "AppId": {"type": "apiKey", "in": "header", "name": "QISCUS-SDK-APP-ID"},
    "Secret": {"type": "apiKey", "in": "header", "name": "QISCUS-SDK-SECRET"},
}


def document_credentials(app: FastAPI) -> None:
    """Declares the two credential headers in the OpenAPI document, so /docs can send
    them ("Authorize"); the signed file download needs none."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        for path, operations in schema.get("paths", {}).items():
            if path.startswith(API_PREFIX) and not path.endswith("/file"):
                for operation in operations.values():
                    operation["security"] = [{"AppId": [], "Secret": []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_console(app: FastAPI) -> None:
    """The console and docs routes, their static files and the security headers."""
    app.include_router(router)
    document_credentials(app)
    app.mount("/console/static", StaticFiles(directory=CONSOLE_DIR), name="console-static")
    app.add_middleware(SecurityHeaders)
