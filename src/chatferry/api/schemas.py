"""The response contract: typed records, pages, envelopes and errors, for the OpenAPI
document. Routes build their answers with orjson (see records.py); these models describe
exactly what they send, and the schemathesis run in the test suite checks that they do.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from chatferry.exports.status import ExportStatus
from chatferry.imports.status import ImportStatus
from chatferry.resources import Resource

T = TypeVar("T")

_SPEC_EXPORT: dict[str, Any] = {
    "created_at": "2017-07-17T10:19:44+07:00",
    "download_url": "",
    "error_message": "",
    "original_filename": "2017-07-17T10:19:44+07:00_exported_comments.json",
    "percentage": 0,
    "resource_name": "comments",
    "size": 0,
    "status": "started",
    "total_rows": 0,
    "unique_id": "dd2c46a8-0921-4b75-837c-cee1b9804787",
}
_SPEC_IMPORT: dict[str, Any] = {
    "created_at": "2017-07-24T16:38:14+07:00",
    "errors": {"Message": "", "Data": None},
    "original_filename": "comment_single.json",
    "resource_name": "comments",
    "size": 926,
    "status": "started",
    "total_rows": 0,
    "unique_id": "13c4952f-4b77-4705-9523-7ddca9c45967",
}


class ExportRecord(BaseModel):
    """A backup: the spec's ten keys, then chatferry's extensions."""

    model_config = ConfigDict(json_schema_extra={"examples": [_SPEC_EXPORT]})

    created_at: str = Field(description="RFC 3339, in the app's timezone.")
    download_url: str = Field(description='A signed, expiring link; "" until finished.')
    error_message: str
    original_filename: str = Field(description="<created_at>_exported_<type>.json")
    percentage: int = Field(ge=0, le=100)
    resource_name: Resource
    size: int = Field(ge=0, description="Bytes of the file.")
    status: ExportStatus
    total_rows: int = Field(ge=0)
    unique_id: str
    start_date: str = Field(description="Extension: first day of the window (YYYY-MM-DD).")
    end_date: str = Field(description="Extension: last day of the window (YYYY-MM-DD).")
    finished_at: str = Field(description='Extension: RFC 3339, or "".')
    sha256: str = Field(description='Extension: SHA-256 of the file, or "".')
    run_at: str = Field(description='Extension: when a scheduled export starts, or "".')
    schedule_id: str = Field(description='Extension: the schedule that made it, or "".')
    expired_at: str = Field(description='Extension: when retention removed the file, or "".')


class Problem(BaseModel):
    """One problem of an import file: its row (the file's first object being row 1; null
    for a problem of the whole file), key, field and what is wrong."""

    row: int | None
    key: str | None
    field: str
    message: str


class ImportErrors(BaseModel):
    Message: str = Field(description="A summary sentence; empty when nothing is wrong.")
    Data: list[Problem] | None = Field(description="Every problem (at most 1,000), or null.")


class ImportRecord(BaseModel):
    """An import: the spec's keys, then chatferry's extensions."""

    model_config = ConfigDict(json_schema_extra={"examples": [_SPEC_IMPORT]})

    created_at: str
    errors: ImportErrors
    original_filename: str
    resource_name: Resource
    size: int = Field(ge=0)
    status: ImportStatus
    total_rows: int = Field(ge=0)
    unique_id: str
    percentage: int = Field(ge=0, le=100, description="Extension.")
    dry_run: bool = Field(description="Extension: validate_only was set; nothing is written.")
    finished_at: str = Field(description='Extension: RFC 3339, or "".')


class ScheduleRecord(BaseModel):
    """A periodic export (an extension: the spec has none)."""

    unique_id: str
    name: str
    type: Resource
    cron: str
    timezone: str
    window_days: int = Field(ge=1, le=30)
    keep_last: int = Field(ge=1, le=1000)
    paused: bool
    next_run_at: str
    last_run_at: str
    covered_through: str = Field(description='Every day up to this one is backed up, or "".')
    created_at: str
    updated_at: str


class PageMeta(BaseModel):
    page: int
    limit: int
    total: int


class Envelope(BaseModel, Generic[T]):
    """The success envelope: ``{"results": ..., "status": 200}``."""

    results: T
    status: Literal[200] = 200


class OneExport(BaseModel):
    backup_history: ExportRecord


class ExportPage(BaseModel):
    backup_histories: list[ExportRecord]
    meta: PageMeta = Field(description="Extension: the page, its size and the total.")


class OneImport(BaseModel):
    backup_history: ImportRecord


class ImportPage(BaseModel):
    backup_histories: list[ImportRecord]
    meta: PageMeta


class OneSchedule(BaseModel):
    export_schedule: ScheduleRecord


class SchedulePage(BaseModel):
    export_schedules: list[ScheduleRecord]
    meta: PageMeta


class ScheduleRun(BaseModel):
    export_schedule: ScheduleRecord
    backup_histories: list[ExportRecord] = Field(description="The exports the run created.")


class ErrorBody(BaseModel):
    """A sentence a person can act on; extension keys may follow for programs."""

    model_config = ConfigDict(extra="allow")

    message: str
    code: str | None = Field(default=None, description="Extension: a machine-readable kind.")


class ErrorEnvelope(BaseModel):
    status: int
    error: ErrorBody


_ERROR_MEANINGS = {
    400: "Bad input: the message says what to change.",
    401: "Missing or wrong QISCUS-SDK-APP-ID / QISCUS-SDK-SECRET.",
    403: "The download link's signature is wrong or the link expired.",
    404: "No such record for this app (another app's ids are not found either).",
    409: "Over the app's quota of stored export bytes: delete exports, then retry.",
    413: "The body is over the limit.",
    416: "The requested Range is outside the file; the Content-Range header says "
    "'bytes */<size of the file>'.",
    429: "Too many requests, or over one of the app's quotas: wait for the seconds the "
    "Retry-After header gives.",
    500: "An internal error: the message gives a reference for the operator.",
    503: "Not available for now (the file storage is nearly full, or the database is "
    "unreachable): try again after the seconds the Retry-After header gives.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of an operation, all in the error envelope."""
    return {
        status: {"model": ErrorEnvelope, "description": _ERROR_MEANINGS[status]}
        for status in statuses
    }
