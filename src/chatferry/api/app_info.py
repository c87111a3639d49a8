"""``GET /app``: the signed-in app's name and time zone (an extension).

The console shows every time in the app's time zone and takes "Run at" in it, so it
reads the zone here when it signs in.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.responses import Response

from chatferry.api.deps import CurrentApp
from chatferry.api.responses import ok
from chatferry.api.schemas import Envelope, errors
from chatferry.apps.service import AppContext
from chatferry.clock import rfc3339_in_zone, utcnow

router = APIRouter(prefix="/api/v2.1/rest", tags=["app"])


class AppRecord(BaseModel):
    app_id: str
    name: str
    timezone: str = Field(description="The IANA time zone the app's days and times are in.")
    utc_offset: str = Field(description='The zone\'s UTC offset now, e.g. "+07:00".')
    now: str = Field(description="RFC 3339, in the app's time zone.")
    today: str = Field(description="YYYY-MM-DD in the app's time zone.")


class OneApp(BaseModel):
    app: AppRecord


def app_record(app: AppContext) -> dict[str, Any]:
    now = utcnow()
    moment = rfc3339_in_zone(now, app.timezone)
    return {
        "app_id": app.app_id,
        "name": app.name,
        "timezone": app.timezone,
        "utc_offset": moment[19:],
        "now": moment,
        "today": now.astimezone(ZoneInfo(app.timezone)).date().isoformat(),
    }


@router.get(
    "/app",
    summary="The app these credentials belong to",
    description="Its id, name and time zone (the zone of every day and time the API shows).",
    response_model=Envelope[OneApp],
    responses=errors(401, 429),
)
def get_app(app: CurrentApp) -> Response:
    return ok({"app": app_record(app)})
