"""A small fake of the vendor's API, at the edge of what we can reach: the spec's keys only.

No ``meta`` in lists, no ``sha256``/``start_date`` in records, no error ``code`` keys, no
``GET /imports/{id}``, no dry run (``validate_only`` is ignored and the file imported for
real, as a vendor would), no ``/export_schedules``; 404s answer plain text. Records show
times with the vendor's ``+07:00``. An export finishes on the first read after its
creation; every file's first download breaks halfway (the client must resume with
``Range``). The test drives it in process and inspects what the client sent.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from conftest import free_port, wait_for

ZONE = timezone(timedelta(hours=7))
KEYS = {"users": "Email", "rooms": "UniqueId", "comments": "UniqueId"}
LIMITS = {"users": 1000, "rooms": 1000, "comments": 5000}


@dataclass
class VendorApp:
    secret: str
    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"users": [], "rooms": [], "comments": []}
    )
    exports: list[dict[str, Any]] = field(default_factory=list)
    imports: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class FakeVendor:
    apps: dict[str, VendorApp] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=lambda: dict(LIMITS))
    base_url: str = ""
    seen_form_fields: list[str] = field(default_factory=list)
    seen_queries: list[str] = field(default_factory=list)
    broken_once: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    expire_next: bool = False


def _now() -> str:
    return datetime.now(ZONE).replace(microsecond=0).isoformat()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "error": {"message": message}}, status_code=status)


def _ok(results: Any) -> JSONResponse:
    return JSONResponse({"results": results, "status": 200})


def _day_of(row: dict[str, Any], resource: str) -> date:
    moment = row["CreateAt" if resource == "users" else "CreatedAt"]
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone(ZONE).date()


def _app(fake: FakeVendor, request: Request) -> VendorApp | None:
    app = fake.apps.get(request.headers.get("qiscus-sdk-app-id", ""))
    secret = request.headers.get("qiscus-sdk-secret") or request.headers.get("qiscus_sdk_secret")
    return app if app is not None and app.secret == secret else None


def _page(request: Request, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    page = int(request.query_params.get("page") or 1)
    return list(reversed(records))[(page - 1) * 20 : page * 20]


def _export_record(resource: str, size: int = 0) -> dict[str, Any]:
    created = _now()
    return {
        "created_at": created,
        "download_url": "",
        "error_message": "",
        "original_filename": f"{created}_exported_{resource}.json",
        "percentage": 0,
        "resource_name": resource,
        "size": size,
        "status": "started",
        "total_rows": 0,
        "unique_id": str(uuid.uuid4()),
    }


def _window(body: dict[str, Any]) -> tuple[date, date]:
    end = (
        date.fromisoformat(body["end_date"]) if body.get("end_date") else datetime.now(ZONE).date()
    )
    start = (
        date.fromisoformat(body["start_date"]) if body.get("start_date") else end - timedelta(30)
    )
    return start, end


def _create_export(fake: FakeVendor, app: VendorApp, body: dict[str, Any]) -> Response:
    resource = body.get("type")
    if resource not in KEYS:
        return _error(400, "type is invalid")
    start, end = _window(body)
    if (end - start).days > 30:
        return _error(400, "maximum date range is 30 days")
    rows = [r for r in app.rows[resource] if start <= _day_of(r, resource) <= end]
    if len(rows) > fake.limits[resource]:
        return _error(400, f"maximum total {resource} rows of export is {fake.limits[resource]}")
    record = _export_record(resource)
    lines = ",\n".join(json.dumps(r) for r in rows)
    app.files[record["unique_id"]] = f"[\n{lines}\n]\n".encode() if rows else b"[]"
    record["_rows"] = len(rows)
    app.exports.append(record)
    return _ok(_shown(record))


def _advance(fake: FakeVendor, app: VendorApp, record: dict[str, Any]) -> None:
    """An export finishes on the first read after it was created."""
    if record["status"] == "started" and record.get("_seen"):
        data = app.files[record["unique_id"]]
        record.update(status="finished", percentage=100, size=len(data),
                      total_rows=record["_rows"],
                      download_url=f"{fake.base_url}/files/{record['unique_id']}.json"
                      "?signature=s3cr3t-signature")  # fmt: skip
    record["_seen"] = True


def _shown(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _import_problems(app: VendorApp, resource: str, rows: list[Any]) -> list[dict[str, Any]]:
    existing = {r[KEYS[resource]] for r in app.rows[resource]}
    problems = []
    for number, row in enumerate(rows, start=1):  # the file's first object is row 1
        key = row.get(KEYS[resource]) if isinstance(row, dict) else None
        if key in existing:
            problems.append({"row": number, "key": key, "field": KEYS[resource],
                             "message": "already exists"})  # fmt: skip
        existing.add(key)
    return problems


async def _create_import(fake: FakeVendor, app: VendorApp, request: Request) -> Response:
    form = await request.form()
    fake.seen_form_fields.extend(str(k) for k in form)
    resource, upload = form.get("type"), form.get("file")
    if resource not in KEYS or upload is None or isinstance(upload, str):
        return _error(400, "type and file are required")
    data = await upload.read()
    if len(data) > 4 * 1024 * 1024:
        return _error(413, "file is too large")
    rows = json.loads(data)
    problems = _import_problems(app, str(resource), rows)
    record = {"created_at": _now(), "errors": {"Message": "", "Data": None},
              "original_filename": upload.filename, "resource_name": resource,
              "size": len(data), "status": "started", "total_rows": 0,
              "unique_id": str(uuid.uuid4())}  # fmt: skip
    app.imports.append(record)
    if problems:
        record["_final"] = {
            "status": "failed",
            "errors": {"Message": "duplicates", "Data": problems},
        }
    else:
        app.rows[str(resource)].extend(rows)
        record["_final"] = {"status": "finished", "total_rows": len(rows)}
    return _ok({"backup_history": _shown(record)})


def _range_start(request: Request) -> int:
    value = request.headers.get("range", "")
    return int(value.removeprefix("bytes=").split("-")[0]) if value.startswith("bytes=") else 0


def _download(fake: FakeVendor, unique_id: str, request: Request) -> Response:
    data = next((a.files[unique_id] for a in fake.apps.values() if unique_id in a.files), None)
    if data is None:
        return PlainTextResponse("404 page not found", status_code=404)
    if fake.expire_next:
        fake.expire_next = False
        return PlainTextResponse("link expired", status_code=403)
    start = _range_start(request)
    body = data[start:]
    headers = {"content-length": str(len(body)), "accept-ranges": "bytes"}
    if start:
        headers["content-range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
    if unique_id not in fake.broken_once and len(body) > 8:
        fake.broken_once.add(unique_id)

        async def half() -> Any:
            yield body[: len(body) // 2]
            raise ConnectionResetError("the fake breaks the connection")

        return StreamingResponse(half(), status_code=206 if start else 200, headers=headers)
    return Response(body, status_code=206 if start else 200, headers=headers)


class _Routes:
    """The fake's endpoints."""

    def __init__(self, fake: FakeVendor) -> None:
        self.fake = fake

    async def exports(self, request: Request) -> Response:
        fake, app = self.fake, _app(self.fake, request)
        fake.seen_queries.append(str(request.query_params))
        if app is None:
            return _error(401, "unauthorized")
        if request.method == "POST":
            return _create_export(fake, app, await request.json())
        for record in app.exports:
            _advance(fake, app, record)
        return _ok({"backup_histories": [_shown(r) for r in _page(request, app.exports)]})

    async def one_export(self, request: Request) -> Response:
        app = _app(self.fake, request)
        if app is None:
            return _error(401, "unauthorized")
        uid = request.path_params["uid"]
        record = next((r for r in app.exports if r["unique_id"] == uid), None)
        if record is None:
            return _error(404, "backup not found")
        if request.method == "DELETE":
            app.exports.remove(record)
            app.files.pop(record["unique_id"], None)
        else:
            _advance(self.fake, app, record)
        return _ok({"backup_history": _shown(record)})

    async def imports(self, request: Request) -> Response:
        fake, app = self.fake, _app(self.fake, request)
        fake.seen_queries.append(str(request.query_params))
        if app is None:
            return _error(401, "unauthorized")
        if request.method == "POST":
            return await _create_import(fake, app, request)
        for record in app.imports:
            record.update(record.pop("_final", {}))
        return _ok({"backup_histories": [_shown(r) for r in _page(request, app.imports)]})

    async def file(self, request: Request) -> Response:
        return _download(self.fake, request.path_params["uid"], request)

    async def not_found(self, request: Request) -> Response:
        return PlainTextResponse("404 page not found", status_code=404)


def build(fake: FakeVendor) -> Any:
    """The fake as an ASGI app that records every request's method and path."""
    routes, base = _Routes(fake), "/api/v2.1/rest"
    inner = Starlette(
        routes=[
            Route(f"{base}/exports", routes.exports, methods=["GET", "POST"]),
            Route(f"{base}/exports/{{uid}}", routes.one_export, methods=["GET", "DELETE"]),
            Route(f"{base}/imports", routes.imports, methods=["GET", "POST"]),
            Route("/files/{uid}.json", routes.file, methods=["GET"]),
            Route("/{rest:path}", routes.not_found, methods=["GET", "POST", "PATCH", "DELETE"]),
        ]
    )

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            fake.requests.append(f"{scope['method']} {scope['path']}")
        await inner(scope, receive, send)

    return recording


@contextmanager
def running(fake: FakeVendor) -> Iterator[FakeVendor]:
    """Serves the fake on a free loopback port in a thread."""
    port = free_port()
    fake.base_url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(build(fake), host="127.0.0.1", port=port, log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=20)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(10)


def seed(app: VendorApp, days: int = 60, comments: int = 150) -> None:
    """Users, rooms and comments (every fifth a reply) spread over the last ``days`` days."""
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)  # over in any zone
    first = now - timedelta(days=days)

    def moment(fraction: float) -> str:
        return (first + (now - first) * fraction).strftime("%Y-%m-%dT%H:%M:%SZ")

    emails = [f"vendor{i}@example.com" for i in range(8)]
    for i, email in enumerate(emails):
        app.rows["users"].append({"Email": email, "Name": f"V{i}", "AvatarUrl": "",
                                  "AuthenticationToken": f"vt{i}", "PasswordHash": "",
                                  "CreateAt": moment(i / 40)})  # fmt: skip
    for r in range(3):
        app.rows["rooms"].append({"Name": f"room {r}", "Type": "group", "Options": "",
                                  "CreatorEmail": emails[r], "CreatedAt": moment(0.25 + r / 40),
                                  "AvatarUrl": "", "UniqueId": f"vroom-{r}",
                                  "ParticipantEmails": emails[r : r + 3]})  # fmt: skip
    for c in range(comments):
        parent = f"vc-{c - 1}" if c % 5 == 4 else ""
        app.rows["comments"].append({"Message": f"m{c}", "DisableLinkPreview": False,
                                     "Type": "reply" if parent else "text",
                                     "UniqueId": f"vc-{c}", "CreatorEmail": emails[c % 3],
                                     "RoomUniqueId": "vroom-0",
                                     "CreatedAt": moment(0.35 + 0.64 * c / comments),
                                     "Payload": {"text": f"m{c}", "replied_comment_id": 1}
                                     if parent else None,
                                     "ParentCommentUniqueId": parent})  # fmt: skip
