"""Export schedules (``/export_schedules``), a chatferry extension of the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from chatferry.client.errors import ApiError, ClientError
from chatferry.client.http import Api
from chatferry.client.records import Record, iter_records

PATH = "/export_schedules"


def _no_schedules(api: Api) -> ClientError:
    return ClientError(
        f"the server at {api.server} has no export schedules (/export_schedules is a "
        "chatferry extension of the API)"
    )


def _collection_call(api: Api, method: str, **kwargs: Any) -> dict[str, Any]:
    """A call on the collection; a 404/405 there means the server has no schedules."""
    try:
        return api.call(method, PATH, **kwargs)
    except ApiError as exc:
        if exc.status in (404, 405) and not api.has_extensions():
            raise _no_schedules(api) from None
        raise


def _one(api: Api, method: str, unique_id: str, **kwargs: Any) -> Record:
    if not api.has_extensions():
        raise _no_schedules(api)
    record: Record = api.call(method, f"{PATH}/{quote(unique_id, safe='')}", **kwargs)[
        "export_schedule"
    ]
    return record


def create_schedule(
    api: Api, resource: str, cron: str, window_days: int, keep_last: int, **extra: Any
) -> Record:
    body = {"type": resource, "cron": cron, "window_days": window_days, "keep_last": keep_last}
    body.update({k: v for k, v in extra.items() if v is not None})
    record: Record = _collection_call(api, "POST", json=body)["export_schedule"]
    return record


def list_schedules(api: Api) -> list[Record]:
    try:
        return list(iter_records(api, PATH, "export_schedules"))
    except ApiError as exc:
        if exc.status in (404, 405) and not api.has_extensions():
            raise _no_schedules(api) from None
        raise


def get_schedule(api: Api, unique_id: str) -> Record:
    return _one(api, "GET", unique_id)


def set_paused(api: Api, unique_id: str, paused: bool) -> Record:
    return _one(api, "PATCH", unique_id, json={"paused": paused})


def delete_schedule(api: Api, unique_id: str) -> Record:
    return _one(api, "DELETE", unique_id)
