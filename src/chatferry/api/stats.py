"""``GET /stats/daily``: rows created per day and the days backed up (an extension)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from chatferry.api.deps import CurrentApp, RuntimeDep, SessionDep
from chatferry.api.responses import ok
from chatferry.api.schemas import Envelope, errors
from chatferry.clock import utcnow
from chatferry.resources import Resource
from chatferry.stats.daily import DEFAULT_DAYS, MAX_DAYS, daily_stats, daily_stats_record

router = APIRouter(prefix="/api/v2.1/rest", tags=["stats"])


class DayRecord(BaseModel):
    date: str = Field(description="YYYY-MM-DD, a whole day in the app's timezone.")
    rows: int = Field(ge=0, description="Rows of the type created that day.")
    backed_up: bool = Field(
        description=(
            "A finished export of the type whose file is still stored covers the day and "
            "holds all of the day's rows as they are now."
        )
    )
    changed: bool = Field(
        description=(
            "A kept export covers the day, but the day's rows changed after it was "
            "written (rows added or removed): export the day again."
        )
    )


class DailyStatsResults(BaseModel):
    days: list[DayRecord]
    limit: int = Field(description="The most rows one export of the type may hold.")
    type: Resource
    start_date: str
    end_date: str
    timezone: str = Field(description="The app's timezone, which the days are in.")
    today: str = Field(description="Today in the app's timezone (a day not over yet).")
    max_export_days: int = Field(description="The longest end_date - start_date of an export.")


Day = Annotated[str | None, Query(description="YYYY-MM-DD in the app's timezone.")]


@router.get(
    "/stats/daily",
    summary="Rows per day and the days backed up",
    description=(
        f"At most {MAX_DAYS} days; `end_date` defaults to today and `start_date` to "
        f"`end_date` minus {DEFAULT_DAYS - 1} days. A day is backed up when a finished "
        "export of the type whose file is still stored covers it and holds all of its rows "
        "as they are now; `changed` marks a covered day whose rows changed since."
    ),
    response_model=Envelope[DailyStatsResults],
    responses=errors(400, 401, 429),
)
def get_daily_stats(
    app: CurrentApp,
    session: SessionDep,
    rt: RuntimeDep,
    type: Annotated[str | None, Query(description='"users", "rooms" or "comments"')] = None,
    start_date: Day = None,
    end_date: Day = None,
) -> Response:
    stats = daily_stats(session.connection(), app, type, start_date, end_date, utcnow())
    return ok(daily_stats_record(stats, rt.settings.export_max_days))
