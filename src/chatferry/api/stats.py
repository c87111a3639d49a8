"""``GET /stats/daily``: rows created per day and the days backed up (an extension)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from chatferry.api.deps import current_app, get_runtime
from chatferry.api.responses import ok
from chatferry.apps.service import AppContext
from chatferry.clock import utcnow
from chatferry.db.engine import transaction
from chatferry.stats.daily import daily_stats, daily_stats_record

router = APIRouter(prefix="/api/v2.1/rest")


@router.get("/stats/daily")
def get_daily_stats(
    request: Request,
    app: AppContext = Depends(current_app),
    type: str | None = Query(None, description='"users", "rooms" or "comments"'),
    start_date: str | None = Query(
        None, description="YYYY-MM-DD in the app's timezone; default end_date minus 89 days"
    ),
    end_date: str | None = Query(
        None, description="YYYY-MM-DD in the app's timezone; default today"
    ),
) -> Response:
    """Rows created on each day (at most 366 days) and whether a finished export
    still on file covers the day, plus the export row limit."""
    rt = get_runtime(request)
    with transaction(rt.sessions) as session:
        stats = daily_stats(session.connection(), app, type, start_date, end_date, utcnow())
    return ok(daily_stats_record(stats, rt.settings.export_max_days))
