"""Schedule requests as the API receives them: create, and change (PATCH)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from chatferry.errors import BadRequest, show
from chatferry.resources import Resource, parse_resource
from chatferry.schedules.cron import parse_cron

MAX_WINDOW_DAYS = 30
MAX_KEEP_LAST = 1000
MAX_NAME_LENGTH = 200
CHANGEABLE = ("paused", "name", "cron", "window_days", "keep_last")

_WINDOW_MEANING = "the whole days before each run to export"
_KEEP_MEANING = "how many finished exports of the schedule to keep"


def _whole_number(value: Any, name: str, low: int, high: int, meaning: str) -> int:
    # bool is an int in Python, but true is not a number of days.
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(
            f"{name} must be a whole number from {low} to {high} ({meaning}), got {show(value)}"
        )
    if not low <= value <= high:
        raise BadRequest(f"{name}, {value}, is out of range: use {low} to {high} ({meaning})")
    return value


def parse_window_days(value: Any) -> int:
    if value is None:
        raise BadRequest(
            f"window_days is required: each run exports that many whole days before "
            f"the run's day, 1 to {MAX_WINDOW_DAYS}"
        )
    return _whole_number(
        value, "the days per run (window_days)", 1, MAX_WINDOW_DAYS, _WINDOW_MEANING
    )


def parse_keep_last(value: Any) -> int:
    if value is None:
        raise BadRequest(
            "keep_last is required: how many finished exports of this schedule to keep "
            "(older ones are deleted with their files)"
        )
    return _whole_number(value, "keep last (keep_last)", 1, MAX_KEEP_LAST, _KEEP_MEANING)


def parse_paused(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"paused must be true or false, got {show(value)}")
    return value


def parse_name(value: Any) -> str:
    """A label for people: a string of at most 200 characters, no control characters."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"name must be a string, got {show(value)}")
    if len(value) > MAX_NAME_LENGTH:
        raise BadRequest(f"name is {len(value)} characters long, over the limit of 200")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise BadRequest("name must not contain control characters (line breaks, tabs, NUL)")
    return value.strip()


def _required(*fields: str) -> Any:
    def mark(schema: dict[str, Any]) -> None:
        schema["required"] = list(fields)

    return mark


_Cron = Annotated[
    str,
    BeforeValidator(parse_cron),
    Field(
        description=(
            'Five cron fields "minute hour day-of-month month day-of-week" in the app\'s '
            "timezone, or @daily, @weekly, @monthly."
        ),
        examples=["0 2 * * *"],
    ),
]
_WindowDays = Annotated[
    int,
    BeforeValidator(parse_window_days),
    Field(description="Whole days before each run's day that a run exports (1-30).", examples=[1]),
]
_KeepLast = Annotated[
    int,
    BeforeValidator(parse_keep_last),
    Field(description="Finished exports of the schedule to keep (1-1000).", examples=[7]),
]
_Name = Annotated[
    str,
    BeforeValidator(parse_name),
    Field(description="A label for people (at most 200 characters).", examples=["nightly"]),
]
_Paused = Annotated[bool, BeforeValidator(parse_paused), Field(description="Paused or not.")]


class ScheduleRequest(BaseModel):
    """``POST /export_schedules``: a periodic export of one resource."""

    model_config = ConfigDict(
        extra="ignore",
        title="ScheduleRequest",
        json_schema_extra=_required("type", "cron", "window_days", "keep_last"),
    )

    type: Annotated[
        Resource,
        BeforeValidator(parse_resource),
        Field(default=None, validate_default=True, examples=["comments"]),
    ]
    cron: Annotated[_Cron, Field(default=None, validate_default=True)]
    window_days: Annotated[_WindowDays, Field(default=None, validate_default=True)]
    keep_last: Annotated[_KeepLast, Field(default=None, validate_default=True)]
    name: _Name = ""
    paused: _Paused = False


def _refuse_null(value: Any, info: ValidationInfo) -> Any:
    """A PATCH field is left out to keep its value; ``null`` is not a value."""
    if value is None:
        raise BadRequest(f"{info.field_name} must not be null: leave it out to keep it as it is")
    return value


def _without_nulls(schema: dict[str, Any]) -> None:
    """JSON-schema hook: the fields are optional, but none of them takes null, and at
    least one is sent."""
    for prop in schema.get("properties", {}).values():
        kept = [option for option in prop.pop("anyOf", []) if option.get("type") != "null"]
        if kept:
            prop.update(kept[0])
        prop.pop("default", None)
    schema["minProperties"] = 1


_NotNull = BeforeValidator(_refuse_null)


class ScheduleChange(BaseModel):
    """``PATCH /export_schedules/{id}``: any of the fields below; the others stay."""

    model_config = ConfigDict(
        extra="forbid", title="ScheduleChange", json_schema_extra=_without_nulls
    )

    paused: Annotated[_Paused | None, _NotNull] = None
    name: Annotated[_Name | None, _NotNull] = None
    cron: Annotated[_Cron | None, _NotNull] = None
    window_days: Annotated[_WindowDays | None, _NotNull] = None
    keep_last: Annotated[_KeepLast | None, _NotNull] = None

    def changes(self) -> dict[str, Any]:
        """The fields the request sent, with their checked values."""
        sent = {name: getattr(self, name) for name in self.model_fields_set}
        if not sent:
            raise BadRequest(
                "send at least one of " + ", ".join(CHANGEABLE) + ', e.g. {"paused": true}'
            )
        return sent
