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
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

# The edge middleware (edge.py) adds the Content-Security-Policy, X-Frame-Options,
# nosniff, no-referrer and no-store to every answer.
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


# Files are kept by the browser but checked (ETag) on every use: an upgrade shows at once.
REVALIDATE = {"cache-control": "no-cache"}


class RevalidatedFiles(StaticFiles):
    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(REVALIDATE)
        return response


def _page(name: str) -> FileResponse:
    return FileResponse(
        CONSOLE_DIR / name, media_type="text/html; charset=utf-8", headers=REVALIDATE
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
    return FileResponse(SWAGGER_DIR / name, media_type=media_type, headers=REVALIDATE)


@router.api_route("/favicon.ico", methods=["GET", "HEAD"])
def favicon() -> Response:
    return RedirectResponse("/console/static/favicon.svg", status_code=307)


def install_console(app: FastAPI) -> None:
    """The console and docs routes and their static files."""
    app.include_router(router)
    app.mount("/console/static", RevalidatedFiles(directory=CONSOLE_DIR), name="console-static")
