"""Builds the FastAPI application around a runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from chatferry import __version__
from chatferry.api import exports, health, imports, schedules, stats, webhooks
from chatferry.api import quotas as quota_routes
from chatferry.api.app_info import router as app_info_router
from chatferry.api.console import install_console
from chatferry.api.edge import EdgeMiddleware
from chatferry.api.errors import install_error_handlers
from chatferry.api.openapi import install_openapi
from chatferry.api.options import OptionsMiddleware
from chatferry.api.ratelimit import AuthGuard
from chatferry.composition import background, install_events
from chatferry.runtime import Runtime


def create_api(rt: Runtime, run_worker: bool = True) -> FastAPI:
    """The API; with ``run_worker`` the same process also runs jobs (embedded mode)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        install_events(rt)  # waiting requests and webhooks hear of jobs' ends
        jobs = background(rt) if run_worker else None
        if jobs:
            jobs.start()
        try:
            yield
        finally:
            if jobs:
                jobs.stop()

    # FastAPI's own /docs and /redoc load their assets from a CDN: ours are local (console.py).
    app = FastAPI(
        title="chatferry", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.runtime = rt
    app.state.guard = AuthGuard(
        rt.settings.rate_limit_auth_failures_per_minute,
        rt.settings.rate_limit_app_requests_per_second,
        rt.settings.rate_limit_refusal_delay_seconds,
    )
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(OptionsMiddleware)  # inside the edge: its headers and metrics
    app.add_middleware(EdgeMiddleware)
    app.include_router(exports.router)
    app.include_router(imports.router)
    app.include_router(schedules.router)
    app.include_router(health.router)
    app.include_router(stats.router)
    app.include_router(quota_routes.router)
    app.include_router(app_info_router)
    app.include_router(webhooks.router)
    install_console(app)
    return app
