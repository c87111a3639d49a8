"""The OpenAPI document as the API really behaves: no 422 (bad input is a 400 in our
envelope), the request models that routes read themselves, and the spec's description."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from chatferry.exports.dates import RUN_AT_PLACEHOLDER, example_run_at
from chatferry.exports.requests import ExportRequest
from chatferry.schedules.requests import ScheduleChange, ScheduleRequest
from chatferry.webhooks.requests import WebhookRequest

REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    ExportRequest,
    ScheduleRequest,
    ScheduleChange,
    WebhookRequest,
)

DESCRIPTION = """\
chatferry backs up (exports) and restores (imports) a chat app's users, rooms and
messages, wire-compatible with the vendor's "Data Backup (Export) and Import" API:
existing scripts work by changing only the host.

Every call under `/api/v2.1/rest` needs the app's credentials in the
`QISCUS-SDK-APP-ID` and `QISCUS-SDK-SECRET` headers: enter them with the
**Authorize** button below, then "Try it out" sends them. The web console is at
[/console](/console).
Answers are `{"results": ..., "status": 200}`; errors are
`{"status": <code>, "error": {"message": "..."}}` with the same HTTP status.
"""


def _drop_validation_errors(schema: dict[str, Any]) -> None:
    for operation in _operations(schema):
        operation.get("responses", {}).pop("422", None)
    schemas = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        operation
        for path_item in schema.get("paths", {}).values()
        for operation in path_item.values()
        if isinstance(operation, dict)
    ]


def _require_both_headers(schema: dict[str, Any]) -> None:
    """FastAPI lists each header scheme as an alternative (app id OR secret); a call
    needs both, which OpenAPI says with one requirement naming both schemes."""
    for operation in _operations(schema):
        requirements = operation.get("security")
        if requirements:
            operation["security"] = [{k: v for req in requirements for k, v in req.items()}]


def _add_request_models(schema: dict[str, Any]) -> None:
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in REQUEST_MODELS:
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(model_schema.pop("$defs", {}))
        schemas[model.__name__] = model_schema


def _dated_examples(value: Any, run_at: str) -> Any:
    """The document with every run_at example a time ahead that the API accepts (built
    again each day: a fixed date would fall out of the year that run_at may lie ahead)."""
    if isinstance(value, dict):
        return {key: _dated_examples(item, run_at) for key, item in value.items()}
    if isinstance(value, list):
        return [_dated_examples(item, run_at) for item in value]
    return run_at if value == RUN_AT_PLACEHOLDER else value


def install_openapi(app: FastAPI) -> None:
    """Replaces the app's OpenAPI builder with one that fixes up the document once."""

    built_on: list[date] = []  # the day the cached document's examples are for

    def build() -> dict[str, Any]:
        today = datetime.now(UTC).date()
        if app.openapi_schema is None or built_on != [today]:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=DESCRIPTION,
                routes=app.routes,
                tags=[
                    {
                        "name": "exports",
                        "description": "Backups: create, list, get, delete, download.",
                    },
                    {"name": "imports", "description": "Restores: upload a file, follow it."},
                    {"name": "schedules", "description": "Periodic exports (an extension)."},
                    {
                        "name": "stats",
                        "description": "Rows per day and backup coverage (an extension).",
                    },
                    {"name": "quotas", "description": "The app's quotas and usage (an extension)."},
                    {"name": "app", "description": "The app the credentials belong to."},
                    {
                        "name": "webhooks",
                        "description": "Signed messages when jobs end (an extension).",
                    },
                    {"name": "operations", "description": "Health, readiness and metrics."},
                ],
            )
            _drop_validation_errors(schema)
            _add_request_models(schema)
            _require_both_headers(schema)
            app.openapi_schema = _dated_examples(schema, example_run_at(today))
            built_on[:] = [today]
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
