"""``GET /quotas``: the app's quotas and what it uses of them (an extension)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.responses import Response

from chatferry.api.deps import CurrentApp, RuntimeDep, run_read
from chatferry.api.responses import ok
from chatferry.api.schemas import Envelope, errors
from chatferry.apps import quotas
from chatferry.db.engine import read_connection

router = APIRouter(prefix="/api/v2.1/rest", tags=["quotas"])


class QuotaRecord(BaseModel):
    name: str = Field(description="exports_per_hour, imports_per_hour, active_jobs, stored_bytes")
    description: str
    limit: int = Field(ge=0, description="The quota; 0 means no limit.")
    used: int = Field(ge=0, description="What the app uses of it now.")
    unit: str
    setting: str = Field(description="The deployment setting that gives the default.")
    overridden: bool = Field(description="The operator set this app's own value.")


class QuotaResults(BaseModel):
    quotas: list[QuotaRecord]


@router.get(
    "/quotas",
    summary="The app's quotas and usage",
    description=(
        "Exports and imports created in the last hour, exports and imports queued or "
        "running, and bytes of export files kept on storage, each with its limit."
    ),
    response_model=Envelope[QuotaResults],
    responses=errors(401, 429),
)
async def get_quotas(app: CurrentApp, rt: RuntimeDep) -> Response:
    def read() -> dict[str, Any]:
        with read_connection(rt.engine) as conn:
            return {"quotas": quotas.report(conn, rt.settings, app.pk)}

    return ok(await run_read(rt, read))
