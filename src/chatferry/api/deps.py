"""Request dependencies: the process runtime and the authenticated app."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from chatferry.apps.service import AppContext, authenticate
from chatferry.db.engine import transaction
from chatferry.runtime import Runtime

APP_ID_HEADERS = ("qiscus-sdk-app-id", "qiscus_sdk_app_id")
SECRET_HEADERS = ("qiscus-sdk-secret", "qiscus_sdk_secret")


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def _header(request: Request, names: tuple[str, ...]) -> str | None:
    """Header lookup is case-insensitive; the underscore spelling is accepted too."""
    for name in names:
        value = request.headers.get(name)
        if value:
            return value.strip()
    return None


async def current_app(request: Request) -> AppContext:
    rt = get_runtime(request)
    app_id = _header(request, APP_ID_HEADERS)
    secret = _header(request, SECRET_HEADERS)

    def check() -> AppContext:
        with transaction(rt.sessions) as session:
            return authenticate(session, rt.verifier, rt.settings, app_id, secret)

    return await run_in_threadpool(check)


def base_url(request: Request) -> str:
    """Where links point: CHATFERRY_BASE_URL, else the host the client called."""
    configured = get_runtime(request).settings.base_url
    return configured or str(request.base_url)
