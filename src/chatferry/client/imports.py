"""The import endpoints: upload a file (or dry-run it), list, get, wait, read problems."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from chatferry.client.errors import ApiError, ClientError, JobFailed
from chatferry.client.http import Api
from chatferry.client.records import (
    Poller,
    Record,
    iter_records,
    list_page,
    wait_until_done,
    waiting_fetch,
)

DONE = ("finished", "failed", "cancelled")


def upload(api: Api, resource: str, filename: str, content: bytes, dry_run: bool = False) -> Record:
    """``POST /imports``: the new import record.

    ``dry_run`` sends chatferry's ``validate_only=true``: only to a chatferry server, since
    a vendor's server would ignore the field and import the file for real.
    """
    data = {"type": resource}
    if dry_run:
        if not api.has_extensions():
            raise ClientError(
                f"the server at {api.server} does not support dry runs (validate_only is a "
                "chatferry extension; this server would import the file for real): "
                "import without --dry-run"
            )
        data["validate_only"] = "true"
    files = {"file": (filename, content, "application/json")}
    record: Record = api.call("POST", "/imports", data=data, files=files)["backup_history"]
    return record


def list_imports(api: Api, page: int = 1, limit: int | None = None) -> list[Record]:
    return list_page(api, "/imports", "backup_histories", page, limit)


def all_imports(api: Api) -> Iterator[Record]:
    return iter_records(api, "/imports", "backup_histories")


def find_import(api: Api, wanted: Callable[[Record], bool]) -> Record | None:
    """The newest import that ``wanted`` accepts, searching the list page by page."""
    return next((record for record in all_imports(api) if wanted(record)), None)


def get_import(api: Api, unique_id: str) -> Record:
    """``GET /imports/{id}`` on chatferry; a search of the list on a vendor's server."""
    if api.has_extensions():
        record: Record = api.call("GET", f"/imports/{quote(unique_id, safe='')}")["backup_history"]
        return record
    found = find_import(api, lambda r: r.get("unique_id") == unique_id)
    if found is None:
        raise ApiError(404, f"no import with unique_id {unique_id!r} in the server's list")
    return found


def wait_for_import(
    api: Api,
    unique_id: str,
    on_update: Callable[[Record], None] | None = None,
    poller: Poller | None = None,
) -> Record:
    """Waits until the import is done (finished or failed): with ``?wait=`` on
    chatferry, polling a vendor's server. Returns the final record."""
    if api.has_extensions():
        fetch, poller = waiting_fetch(api, f"/imports/{quote(unique_id, safe='')}", poller)
    else:
        fetch = lambda: get_import(api, unique_id)  # noqa: E731
    return wait_until_done(fetch, lambda r: r.get("status") in DONE, on_update, poller)


def problems(record: Record) -> list[dict[str, Any]]:
    """The rows of ``errors.Data`` (``row``, ``key``, ``field``, ``message``), if any."""
    errors = record.get("errors")
    data = errors.get("Data") if isinstance(errors, dict) else None
    return [p for p in data if isinstance(p, dict)] if isinstance(data, list) else []


def error_summary(record: Record) -> str:
    errors = record.get("errors")
    message = errors.get("Message") if isinstance(errors, dict) else ""
    return message if isinstance(message, str) and message else "no reason given"


def check_import(record: Record) -> None:
    """JobFailed (with the record, so its problems can be shown) unless it finished."""
    status = record.get("status")
    if status == "finished":
        return
    kind = "dry run" if record.get("dry_run") is True else "import"
    raise JobFailed(
        f"{kind} {record.get('unique_id')} of {record.get('original_filename')} ended "
        f"{status}: {error_summary(record)}",
        record,
    )
