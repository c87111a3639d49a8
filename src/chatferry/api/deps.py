"""Request dependencies as typed aliases: the runtime, a session, the current app, a page.

As in the FastAPI template's ``deps.py``: routes say ``app: CurrentApp`` and get the
authenticated tenant, ``rt: RuntimeDep`` the process's runtime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import BeforeValidator
from sqlalchemy import Row
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from chatferry.api.paging import (
    MAX_PAGE,
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    Page,
    parse_page_number,
    parse_page_size,
)
from chatferry.api.ratelimit import AuthGuard
from chatferry.apps.service import (
    AppContext,
    Authenticated,
    lookup_app,
    upgrade_secret_hash,
    verify_credentials,
)
from chatferry.db.engine import is_sqlite, read_connection, reading, transaction
from chatferry.errors import Unauthorized
from chatferry.runtime import Runtime

APP_ID_HEADERS = ("qiscus-sdk-app-id", "qiscus_sdk_app_id")
SECRET_HEADERS = ("qiscus-sdk-secret", "qiscus_sdk_secret")

# For the OpenAPI document and /docs' "Authorize": the two headers the spec uses. The
# lookup itself also accepts the underscore spellings (see _header).
_app_id_scheme = APIKeyHeader(
    name="QISCUS-SDK-APP-ID", scheme_name="AppId", auto_error=False, description="Your app id."
)
_secret_scheme = APIKeyHeader(
    name="QISCUS-SDK-SECRET",
    scheme_name="Secret",
    auto_error=False,
    description="Your app's secret key.",
)


async def get_runtime(request: Request) -> Runtime:
    """The process's runtime (async: no thread hop for what needs no I/O)."""
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(rt: RuntimeDep) -> Iterator[Session]:
    """A read-only session for the routes that only read (outside a transaction: no
    BEGIN or COMMIT spent); routes that write open their own transaction."""
    with reading(rt.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

T = TypeVar("T")


async def run_read(rt: Runtime, read: Callable[[], T]) -> T:
    """Runs a short indexed read (no writes) for a request.

    On SQLite it runs at once on the event loop: in WAL mode a reader never waits for a
    writer, and the read (about 0.1 ms) costs less than the hop to a worker thread and
    back, which under load also fights the event loop for the interpreter (measured in
    bench/api_bench.py). On PostgreSQL a read is a network round trip, so it goes to the
    thread pool and never holds the loop.
    """
    if is_sqlite(rt.engine):
        return read()
    return await run_in_threadpool(read)


def _header(request: Request, names: tuple[str, ...]) -> str | None:
    """Header lookup is case-insensitive; the underscore spelling is accepted too."""
    for name in names:
        value = request.headers.get(name)
        if value:
            return value.strip()
    return None


async def current_app(
    request: Request,
    rt: RuntimeDep,
    _app_id: Annotated[str | None, Security(_app_id_scheme)] = None,
    _secret: Annotated[str | None, Security(_secret_scheme)] = None,
) -> AppContext:
    """The app the request's credentials belong to, or a 401."""
    app_id = _header(request, APP_ID_HEADERS)
    secret = _header(request, SECRET_HEADERS)
    guard: AuthGuard = request.app.state.guard
    client = request.client.host if request.client else ""

    def lookup() -> Row[Any] | None:
        with read_connection(rt.engine) as conn:
            return lookup_app(conn, app_id, secret)

    def verify(row: Row[Any] | None) -> Authenticated:
        assert app_id is not None and secret is not None  # lookup_app refused them missing
        return verify_credentials(rt.settings, rt.secrets, app_id, secret, row)

    def upgrade() -> None:
        assert secret is not None
        with transaction(rt.sessions) as session:
            upgrade_secret_hash(session, rt.secrets, found.app, secret)

    try:
        row = await run_read(rt, lookup)
        if row is None or rt.secrets.is_current(row.secret_hash):
            found = verify(row)  # a keyed hash: microseconds
        else:  # a legacy Argon2 hash: tens of milliseconds, on a worker thread
            found = await run_in_threadpool(verify, row)
    except Unauthorized:
        refusal = guard.failed(client, app_id)
        if refusal is None:
            raise
        await asyncio.sleep(guard.refusal_wait())  # see ratelimit.py: a flood waits
        raise refusal from None
    if found.legacy_hash:  # a write, once per app: on a worker thread
        await run_in_threadpool(upgrade)
    guard.admitted(found.app.app_id)
    return found.app


CurrentApp = Annotated[AppContext, Depends(current_app)]


async def page_of(
    page: Annotated[
        int,
        # Query before the validator: the document then says minimum/maximum.
        Query(ge=1, le=MAX_PAGE, description="Page number, from 1."),
        BeforeValidator(parse_page_number),
    ] = 1,
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_PAGE_SIZE, description="Extension: records a page (1-100)."),
        BeforeValidator(parse_page_size),
    ] = PAGE_SIZE,
) -> Page:
    """The ``page`` and ``limit`` query parameters (our messages for bad values)."""
    return Page(page, limit)


PageDep = Annotated[Page, Depends(page_of)]


def base_url(request: Request) -> str:
    """Where links point: CHATFERRY_BASE_URL, else the host the client called."""
    rt: Runtime = request.app.state.runtime
    configured = rt.settings.base_url
    return configured or str(request.base_url)
