"""Builds the FastAPI application around a runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from chatferry import __version__
from chatferry.api import exports, imports, schedules, stats
from chatferry.api.console import install_console
from chatferry.api.errors import install_error_handlers
from chatferry.jobs.worker import Worker
from chatferry.runtime import Runtime
from chatferry.schedules.scheduler import Scheduler


def create_api(rt: Runtime, run_worker: bool = True) -> FastAPI:
    """The API; with ``run_worker`` the same process also runs jobs (embedded mode)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = Worker(rt, rt.settings.worker_concurrency) if run_worker else None
        scheduler = Scheduler(rt) if run_worker else None
        if worker:
            worker.start()
        if scheduler:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler:
                scheduler.stop()
            if worker:
                worker.stop()

    # FastAPI's own /docs and /redoc load their assets from a CDN: ours are local (console.py).
    app = FastAPI(
        title="chatferry", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.runtime = rt
    install_error_handlers(app)
    app.include_router(exports.router)
    app.include_router(imports.router)
    app.include_router(schedules.router)
    app.include_router(stats.router)
    install_console(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
