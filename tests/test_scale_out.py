"""The scale-out deployment shape, as real processes: three `chatferry worker` and two
`chatferry serve --no-worker` on one PostgreSQL schema and one S3 bucket (moto on
loopback). Sixty exports and twenty-four imports go in through both APIs at once; every
job runs exactly once, on a worker, and leaves exactly the file or rows it should."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import signal
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import obstore
import orjson
import pytest
from obstore.store import from_url
from sqlalchemy import func, select

from chatferry.db.engine import transaction
from chatferry.db.models import Comment, Export, Import, Job, Room, RoomParticipant, User
from chatferry.demo.generate import DemoSpec, generate
from chatferry.runtime import Runtime
from support.apps import TEST_PASSWORD_HASH, Credentials, NewApp
from support.exports import COMMENT_KEYS, ROOM_KEYS, USER_KEYS, create_export, get_record
from support.imports import upload
from support.rows import app_pk
from support.s3 import S3Bucket
from support.servers import StartServer, StartWorker
from support.waiting import wait_for

WORKERS = 3
EXPORTS = 60
USER_IMPORTS = 20
USERS_PER_IMPORT = 3
# Imported rows are dated long ago, outside every export's window, so the exports'
# content does not depend on when the imports ran.
IMPORTED_AT = "2020-01-02T03:04:05Z"


@pytest.fixture
def settings_env(settings_env: dict[str, str], s3_bucket: S3Bucket) -> dict[str, str]:
    return {**settings_env, "CHATFERRY_STORAGE_URL": s3_bucket.storage_url}


@dataclass(frozen=True)
class SentImport:
    creds: Credentials
    resource: str
    rows: list[dict[str, Any]]
    unique_id: str = ""


def _post_import(http: httpx.Client, sent: SentImport) -> SentImport:
    response = upload(http, sent.creds, sent.resource, sent.rows, f"{sent.resource}.json")
    assert response.status_code == 200, response.text
    record = response.json()["results"]["backup_history"]
    assert record["status"] == "started", record
    return SentImport(sent.creds, sent.resource, sent.rows, record["unique_id"])


def _s3_requests(bucket: S3Bucket) -> Counter[tuple[str, str, str]]:
    """(method, key, first query parameter name) of every request moto logged for the
    bucket's objects, counted."""
    pattern = re.compile(rf'"([A-Z]+) /{re.escape(bucket.name)}/([^ ?]+)(?:\?([^ =&]*))?')
    found: Counter[tuple[str, str, str]] = Counter()
    for line in bucket.server.log_path.read_text(errors="replace").splitlines():
        if match := pattern.search(line):
            method, key, query = match.groups()
            found[(method, unquote(key), query or "")] += 1
    return found


def _window(body: dict[str, Any], today: date) -> tuple[datetime, datetime]:
    """The [lower, upper) UTC bounds an export of ``body`` covers (apps are in UTC)."""
    end = date.fromisoformat(body["end_date"]) if "end_date" in body else today
    start = date.fromisoformat(body["start_date"]) if "start_date" in body else end - timedelta(30)
    return (
        datetime.combine(start, time.min, UTC),
        datetime.combine(end + timedelta(days=1), time.min, UTC),
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _file_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.removesuffix("Z") + "+00:00")


def _expected_rows(
    rt: Runtime, pk: int, resource: str, lower: datetime, upper: datetime
) -> list[dict[str, Any]]:
    """What the database holds for the window, read with the ORM (not the export code),
    in export order (created_at, then id), with times as aware datetimes."""
    with transaction(rt.sessions) as session:
        emails = dict(session.execute(select(User.id, User.email).where(User.app_pk == pk)).all())
        if resource == "users":
            users = session.scalars(select(User).where(User.app_pk == pk)).all()
            picked = sorted(
                (u for u in users if lower <= _aware(u.created_at) < upper),
                key=lambda u: (_aware(u.created_at), u.id),
            )
            return [
                {
                    "Email": u.email,
                    "Name": u.name,
                    "AvatarUrl": u.avatar_url,
                    "AuthenticationToken": u.authentication_token,
                    "PasswordHash": u.password_hash,
                    "CreateAt": _aware(u.created_at),
                }
                for u in picked
            ]
        rooms = {r.id: r for r in session.scalars(select(Room).where(Room.app_pk == pk))}
        if resource == "rooms":
            members: dict[int, list[tuple[int, int]]] = {}
            for p in session.scalars(
                select(RoomParticipant).where(RoomParticipant.room_id.in_(rooms))
            ):
                members.setdefault(p.room_id, []).append((p.position, p.user_id))
            picked_rooms = sorted(
                (r for r in rooms.values() if lower <= _aware(r.created_at) < upper),
                key=lambda r: (_aware(r.created_at), r.id),
            )
            return [
                {
                    "Name": r.name,
                    "Type": r.type,
                    "Options": r.options,
                    "CreatorEmail": emails[r.creator_id],
                    "CreatedAt": _aware(r.created_at),
                    "AvatarUrl": r.avatar_url,
                    "UniqueId": r.unique_id,
                    "ParticipantEmails": [emails[u] for _, u in sorted(members.get(r.id, []))],
                }
                for r in picked_rooms
            ]
        comments = session.scalars(select(Comment).where(Comment.app_pk == pk)).all()
        unique_ids = {c.id: c.unique_id for c in comments}
        picked_comments = sorted(
            (c for c in comments if lower <= _aware(c.created_at) < upper),
            key=lambda c: (_aware(c.created_at), c.id),
        )
        return [
            {
                "Message": c.message,
                "DisableLinkPreview": c.disable_link_preview,
                "Type": c.type,
                "UniqueId": c.unique_id,
                "CreatorEmail": emails[c.user_id],
                "RoomUniqueId": rooms[c.room_id].unique_id,
                "CreatedAt": _aware(c.created_at),
                "Payload": json.loads(c.payload) if c.payload is not None else None,
                "ParentCommentUniqueId": unique_ids[c.parent_id] if c.parent_id else "",
            }
            for c in picked_comments
        ]


def _as_expected(row: dict[str, Any], resource: str) -> dict[str, Any]:
    """A file row with its time parsed, and its keys checked, to compare with the DB."""
    keys = {"users": USER_KEYS, "rooms": ROOM_KEYS, "comments": COMMENT_KEYS}[resource]
    assert list(row) == keys, row
    field = "CreateAt" if resource == "users" else "CreatedAt"
    return {**row, field: _file_time(row[field])}


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_three_workers_and_two_apis_run_every_job_exactly_once(
    runtime: Runtime,
    new_app: NewApp,
    start_server: StartServer,
    start_worker: StartWorker,
    s3_bucket: S3Bucket,
    tmp_path: Path,
) -> None:
    # Two apps with demo data over the last 10 days (every row in the default window).
    apps = [new_app(f"Scale {i}") for i in range(2)]
    for index, creds in enumerate(apps):
        with transaction(runtime.sessions) as session:
            generate(session, app_pk(runtime, creds.app_id), DemoSpec(40, 20, 400, 10, seed=index))

    workers = [start_worker(name=f"worker-{i}", ready=False) for i in range(WORKERS)]
    try:
        apis = [start_server(None, "--no-worker") for _ in range(2)]
        https = [api.http for api in apis]
        for worker in workers:
            worker.wait_started()

        # --- 60 exports and 24 imports, through both APIs alternately, 8 at a time -----
        today = datetime.now(UTC).date()
        windows: list[dict[str, str]] = [
            {},
            {"start_date": (today - timedelta(3)).isoformat()},
            {
                "start_date": (today - timedelta(8)).isoformat(),
                "end_date": (today - timedelta(5)).isoformat(),
            },
        ]
        plans = itertools.product(["users", "rooms", "comments"], range(2), windows)
        export_bodies = [
            (apps[app], {"type": resource, **window})
            for resource, app, window in itertools.islice(itertools.cycle(plans), EXPORTS)
        ]
        # A real Argon2id hash, stored as is (cheap parameters: no hashing cost in the test).
        hashed = TEST_PASSWORD_HASH
        imports = [
            SentImport(
                apps[i % 2],
                "users",
                [
                    {
                        "Email": f"imported-{i}-{j}@example.com",
                        "Name": f"Imported {i} {j}",
                        "AvatarUrl": "",
                        "AuthenticationToken": f"imported-token-{i}-{j}",
                        "PasswordHash": hashed,
                        "CreateAt": IMPORTED_AT,
                    }
                    for j in range(USERS_PER_IMPORT)
                ],
            )
            for i in range(USER_IMPORTS)
        ]
        # A few rooms and comments too, naming the apps' demo users and rooms.
        for index, creds in enumerate(apps):
            pk = app_pk(runtime, creds.app_id)
            with transaction(runtime.sessions) as session:
                people = list(session.scalars(select(User.email).where(User.app_pk == pk).limit(3)))
                room_id = session.scalar(select(Room.unique_id).where(Room.app_pk == pk).limit(1))
            imports.append(
                SentImport(
                    creds,
                    "rooms",
                    [
                        {
                            "Name": f"Imported room {index}-{k}",
                            "Type": "group",
                            "Options": "",
                            "CreatorEmail": people[0],
                            "CreatedAt": IMPORTED_AT,
                            "AvatarUrl": "",
                            "UniqueId": f"imported-room-{index}-{k}",
                            "ParticipantEmails": people,
                        }
                        for k in range(2)
                    ],
                )
            )
            imports.append(
                SentImport(
                    creds,
                    "comments",
                    [
                        {
                            "Message": f"imported message {index}-{k}",
                            "DisableLinkPreview": False,
                            "Type": "text",
                            "UniqueId": f"imported-comment-{index}-{k}",
                            "CreatorEmail": people[k % len(people)],
                            "RoomUniqueId": room_id,
                            "CreatedAt": IMPORTED_AT,
                            "Payload": None,
                            "ParentCommentUniqueId": "",
                        }
                        for k in range(3)
                    ],
                )
            )

        # Interleaved (an import after every few exports), each request to the API
        # after the one the previous request went to.
        sends: list[tuple[Credentials, dict[str, Any]] | SentImport] = []
        pending = list(imports)
        for index, item in enumerate(export_bodies):
            sends.append(item)
            if index % 3 == 2 and pending:
                sends.append(pending.pop(0))
        sends.extend(pending)

        def send(index: int, item: tuple[Credentials, dict[str, Any]] | SentImport) -> Any:
            http = https[index % 2]
            if isinstance(item, SentImport):
                return _post_import(http, item)
            creds, body = item
            return create_export(http, creds.headers, **body)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, range(len(sends)), sends))
        export_records = [a for a in answers if isinstance(a, dict)]
        sent_imports = [a for a in answers if isinstance(a, SentImport)]
        assert (len(export_records), len(sent_imports)) == (EXPORTS, len(imports))
        export_ids = [r["unique_id"] for r in export_records]
        import_ids = [s.unique_id for s in sent_imports]

        # --- all of them end, within 90 s ----------------------------------------------
        def all_ended() -> bool:
            with transaction(runtime.sessions) as session:
                exports = Counter(session.scalars(select(Export.status)))
                imported = Counter(session.scalars(select(Import.status)))
            return exports["started"] == 0 and imported["started"] == 0

        wait_for(all_ended, timeout=90, interval=0.2)
        for i, worker in enumerate(workers):
            assert worker.poll() is None, f"worker {i} died"
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        exits = []
        for worker in workers:
            try:
                exits.append(worker.wait(20))
            except subprocess.TimeoutExpired:
                worker.kill()
                exits.append(worker.wait())
    assert exits == [0] * WORKERS

    with transaction(runtime.sessions) as session:
        exports = {e.unique_id: e for e in session.scalars(select(Export))}
        import_rows = {i.unique_id: i for i in session.scalars(select(Import))}
        jobs = list(session.scalars(select(Job)))
        session.expunge_all()
    assert sorted(exports) == sorted(export_ids)
    assert sorted(import_rows) == sorted(import_ids)
    failed = {
        uid: (e.status, e.error_message) for uid, e in exports.items() if e.status != "finished"
    }
    failed.update(
        {
            uid: (i.status, i.error_message, i.error_data)
            for uid, i in import_rows.items()
            if i.status != "finished"
        }
    )
    assert not failed, failed

    # --- every job ran exactly once, on one of the workers ---------------------------
    targets = {("export", e.id) for e in exports.values()} | {
        ("import", i.id) for i in import_rows.values()
    }
    assert len(jobs) == len(targets) == EXPORTS + len(imports)
    assert {(j.kind, j.target_id) for j in jobs} == targets
    assert [(j.status, j.attempts) for j in jobs] == [("done", 1)] * len(jobs), [
        (j.kind, j.target_id, j.status, j.attempts, j.last_error)
        for j in jobs
        if (j.status, j.attempts) != ("done", 1)
    ]
    worker_pids = {str(w.pid) for w in workers}
    owners = Counter((j.lease_owner or "").split(":")[1] for j in jobs)
    assert set(owners) <= worker_pids, (owners, worker_pids)  # never an API process
    print(f"jobs per worker process: {dict(owners)}")
    assert len(owners) == WORKERS, f"not every worker claimed jobs: {dict(owners)}"

    # The S3 server's request log says the same: each export's object was uploaded once
    # (one CreateMultipartUpload) and each import's file was read once, by its job, then
    # deleted (the job table alone would not show two workers running one job at once).
    requests = _s3_requests(s3_bucket)
    for e in exports.values():
        key = f"{s3_bucket.prefix}/{e.storage_key}"
        assert requests[("POST", key, "uploads")] == 1, (key, e.unique_id)
    app_ids = {app_pk(runtime, creds.app_id): creds.app_id for creds in apps}
    for i in import_rows.values():
        assert i.storage_key == ""  # the upload is gone once its import ended
        key = f"{s3_bucket.prefix}/imports/{app_ids[i.app_pk]}/{i.unique_id}.json"
        read_once = (requests[("POST", key, "uploads")], requests[("GET", key, "")])
        assert read_once == (1, 1), key

    # --- the bucket: exactly one object per export, nothing else ----------------------
    store = from_url(f"s3://{s3_bucket.name}", client_options={"allow_http": True})
    listed = {
        meta["path"]: meta["size"]
        for batch in obstore.list(store, prefix=s3_bucket.prefix)
        for meta in batch
    }
    prefix = s3_bucket.prefix
    export_keys = {f"{prefix}/{e.storage_key}": uid for uid, e in exports.items()}
    assert all(e.storage_key for e in exports.values())
    assert set(listed) == set(export_keys), sorted(set(listed) ^ set(export_keys))
    assert len(listed) == EXPORTS
    assert set(s3_bucket.object_keys()) == set(listed)  # nothing outside the prefix either

    # --- every export's object is what the database holds for its window -------------
    pks = {creds.app_id: app_pk(runtime, creds.app_id) for creds in apps}
    for record, (creds, body) in zip(export_records, export_bodies, strict=True):
        export = exports[record["unique_id"]]
        key = f"{prefix}/{export.storage_key}"
        content = bytes(obstore.get(store, key).bytes())
        assert len(content) == export.size == listed[key]
        assert hashlib.sha256(content).hexdigest() == export.sha256
        rows = orjson.loads(content)
        assert len(rows) == export.total_rows
        lower, upper = _window(body, today)
        assert (export.start_date, export.end_date) == (lower.date(), upper.date() - timedelta(1))
        expected = _expected_rows(runtime, pks[creds.app_id], body["type"], lower, upper)
        assert [_as_expected(row, body["type"]) for row in rows] == expected, record["unique_id"]
    assert sum(e.total_rows for e in exports.values()) > EXPORTS * 10  # not trivially empty

    # A sample through the other API: the record, and its presigned link to the object.
    for index in (0, 1, EXPORTS - 1):
        creds, _ = export_bodies[index]
        record = get_record(https[(index + 1) % 2], creds.headers, export_ids[index])
        export = exports[export_ids[index]]
        assert (record["status"], record["percentage"]) == ("finished", 100)
        assert (record["total_rows"], record["size"], record["sha256"]) == (
            export.total_rows,
            export.size,
            export.sha256,
        )
        download = httpx.get(record["download_url"], timeout=10)
        assert download.status_code == 200, download.text
        assert hashlib.sha256(download.content).hexdigest() == export.sha256

    # --- every imported row is in the database exactly once, in its app --------------
    with transaction(runtime.sessions) as session:
        for sent in sent_imports:
            record = import_rows[sent.unique_id]
            assert (record.total_rows, record.percentage) == (len(sent.rows), 100)
            pk = pks[sent.creds.app_id]
            model, column, key = {
                "users": (User, User.email, "Email"),
                "rooms": (Room, Room.unique_id, "UniqueId"),
                "comments": (Comment, Comment.unique_id, "UniqueId"),
            }[sent.resource]
            for row in sent.rows:
                found = session.execute(
                    select(model.app_pk, func.count())
                    .where(column == row[key])
                    .group_by(model.app_pk)
                ).all()
                assert found == [(pk, 1)], (sent.resource, row[key], found)
            if sent.resource == "users":
                stored = session.execute(
                    select(User.password_hash, User.authentication_token).where(
                        User.email.in_([r["Email"] for r in sent.rows])
                    )
                ).all()
                assert sorted(stored) == sorted(
                    (hashed, r["AuthenticationToken"]) for r in sent.rows
                )
        imported_users = session.scalar(
            select(func.count()).select_from(User).where(User.email.like("imported-%"))
        )
    assert imported_users == USER_IMPORTS * USERS_PER_IMPORT

    # No process logged an error or a traceback.
    for log in sorted(tmp_path.glob("*.log")):
        if log.name.startswith(("worker-", "serve-")):
            text = log.read_text(errors="replace")
            assert "Traceback" not in text and " ERROR " not in text, log.name
