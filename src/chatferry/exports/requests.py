"""The export request as the API receives it: typed, with the spec's examples."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from chatferry.exports.dates import RUN_AT_PLACEHOLDER, parse_day, parse_moment
from chatferry.resources import Resource, parse_resource


def _day(field: str) -> BeforeValidator:
    return BeforeValidator(lambda value: parse_day(value, field))


def _require(*fields: str) -> Any:
    """JSON-schema hook: these fields are required (their validators say so in words)."""

    def mark(schema: dict[str, Any]) -> None:
        schema["required"] = list(fields)

    return mark


class ExportRequest(BaseModel):
    """``POST /exports``: a resource and a window of whole days in the app's timezone."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra=_require("type"),
        title="ExportRequest",
    )

    type: Annotated[
        Resource,
        BeforeValidator(parse_resource),
        Field(
            default=None,
            validate_default=True,
            description='The resource to export: "users", "rooms" or "comments".',
            examples=["comments"],
        ),
    ]
    start_date: Annotated[
        date | None,
        _day("start_date"),
        Field(
            description="First day (YYYY-MM-DD, inclusive); default end_date minus 30 days.",
            examples=["2017-01-01"],
        ),
    ] = None
    end_date: Annotated[
        date | None,
        _day("end_date"),
        Field(
            description="Last day (YYYY-MM-DD, inclusive); default today.", examples=["2017-01-05"]
        ),
    ] = None
    run_at: Annotated[
        datetime | None,
        BeforeValidator(lambda value: parse_moment(value, "run_at")),
        Field(
            description=(
                "Extension: run later, at this RFC 3339 time with a UTC offset "
                "(at most a year ahead); the export waits as `scheduled`."
            ),
            examples=[RUN_AT_PLACEHOLDER],  # shown as a date ahead (see api/openapi.py)
        ),
    ] = None
