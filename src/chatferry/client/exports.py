"""The export endpoints: create, list, get, delete, and waiting for one to finish."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any
from urllib.parse import quote

from chatferry.client.errors import JobFailed
from chatferry.client.http import Api
from chatferry.client.records import (
    Poller,
    Record,
    iter_records,
    list_page,
    wait_until_done,
    waiting_fetch,
)

RESOURCES = ("users", "rooms", "comments")
DONE = ("finished", "failed", "cancelled")


def _path(unique_id: str) -> str:
    return f"/exports/{quote(unique_id, safe='')}"


def create_export(
    api: Api,
    resource: str,
    start: date | None = None,
    end: date | None = None,
    run_at: str | None = None,
) -> Record:
    """``POST /exports``: the new record (``started``, or ``scheduled`` with ``run_at``)."""
    body: dict[str, Any] = {"type": resource}
    if start is not None:
        body["start_date"] = start.isoformat()
    if end is not None:
        body["end_date"] = end.isoformat()
    if run_at:
        body["run_at"] = run_at
    return api.call("POST", "/exports", json=body)


def get_export(api: Api, unique_id: str) -> Record:
    record: Record = api.call("GET", _path(unique_id))["backup_history"]
    return record


def delete_export(api: Api, unique_id: str) -> Record:
    record: Record = api.call("DELETE", _path(unique_id))["backup_history"]
    return record


def list_exports(api: Api, page: int = 1, limit: int | None = None) -> list[Record]:
    return list_page(api, "/exports", "backup_histories", page, limit)


def all_exports(api: Api) -> Iterator[Record]:
    return iter_records(api, "/exports", "backup_histories")


def wait_for_export(
    api: Api,
    unique_id: str,
    on_update: Callable[[Record], None] | None = None,
    poller: Poller | None = None,
) -> Record:
    """Waits until the export is finished (with ``?wait=`` on chatferry, polling a
    vendor's server); JobFailed if it ended failed or cancelled."""
    fetch, poller = waiting_fetch(api, _path(unique_id), poller)
    record = wait_until_done(fetch, lambda r: r.get("status") in DONE, on_update, poller)
    check_finished(record)
    return record


def check_finished(record: Record) -> None:
    """JobFailed with the server's reason unless the export finished."""
    status = record.get("status")
    if status == "finished":
        return
    reason = record.get("error_message") or "no reason given"
    raise JobFailed(f"export {record.get('unique_id')} ended {status}: {reason}", record)
