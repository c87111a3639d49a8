"""Import benchmark on the user's path: a 4 MB comments file uploaded to a real
``chatferry serve`` until ``finished``, against a plain ``executemany`` of the same rows;
and 1,000 users with plain passwords against the Argon2 bound.

Run: ``.venv/bin/python bench/import_bench.py [--postgres URL | --sqlite-only]
[--repeat 3] [--users 1000] [--small] [--keep]``

Each database (SQLite in a temporary directory; PostgreSQL in fresh schemas of
``--postgres``, default postgresql://postgres@127.0.0.1:5432/test, dropped after) gets two
copies with the same ``chatferry.demo`` users and rooms: one served by ``chatferry serve``
(default settings, embedded workers), one for the baseline.

1. Comments: a file just under the 4 MB upload limit (text messages, replies to earlier
   rows of the same room, attachments, locations and custom payloads) is sent as
   ``POST /api/v2.1/rest/imports`` (multipart) and timed from the upload's start until
   ``GET /imports/{id}?wait=5`` says ``finished`` (the server holds the GET until the job
   ends, as for ``chatferry import --wait``; until this round the bench polled every 20 ms,
   which added 15-45 ms: the wait for the next poll, and each GET's ~1.3 ms of the
   server's CPU taken from the job). Shown too: ``created_at``
   to ``finished_at`` from the database, which covers the job's pick-up, parsing and
   checks only (``finished_at`` is stamped as the writing transaction begins). The baseline, in
   the other copy, parses the same file and inserts the same rows with the driver's own
   ``executemany`` in one transaction, without any check (creator and room ids from a
   dict, ids assigned up front so replies point at their parents). Imports and baselines
   alternate; both copies are compared row by row after each pair. Target (issue 23):
   best import <= 1.5 x best baseline.
2. Users: 1,000 users with plain passwords, upload to ``finished``, against 1,000 x one
   Argon2id hash with the import's parameters (measured here) / cores. Target: <= 1.2 x.

``--small`` (a 256 KB comments file, 50 users, one run) checks that the bench works and
judges nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import create_engine, text

from benchlib import (
    API,
    DEFAULT_POSTGRES,
    Summary,
    argument_parser,
    chatferry_env,
    headers,
    load_average,
    postgres_schemas,
    run_main,
    seconds_list,
    serve,
)
from chatferry.apps.service import create_app
from chatferry.db.engine import transaction
from chatferry.demo.generate import DemoSpec, generate
from chatferry.imports.passwords import hash_password, verify_password
from chatferry.runtime import build_runtime
from chatferry.settings import Settings

COMMENTS_TARGET = 1.5
USERS_TARGET = 1.2
IMPORT_LIMIT = 4 * 1024 * 1024
DEMO = DemoSpec(users=1000, rooms=300, comments=0, days=30, seed=7)
COMMENTS_APP = "bench-comments"
USERS_APP = "bench-users"  # -0, -1, ... one per users import
SECRET = "bench-secret-0123456789"
IMPORT_TIMEOUT_SECONDS = 600

PLACE = {
    "name": "Monas",
    "address": "Gambir, Central Jakarta",
    "latitude": -6.1754,
    "longitude": 106.8272,
    "map_url": "https://maps.example.com/?q=-6.1754,106.8272",
}
MESSAGES = [
    "Halo doc",
    "ok 👍",
    "See you at 7 tomorrow, don't be late!",
    "Это сообщение на русском языке, чтобы проверить UTF-8.",
    "明天见, 我们在老地方碰头。",
    "Can you send me the report before the meeting? I need to check the numbers again.",
    "https://example.com/some/long/link?with=query&and=more#fragment",
    "😀😃😄😁😆😅😂🤣",
    'quotes "inside" and a backslash \\ and a tab\there',
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua.",
]


# ---------------------------------------------------------------- databases


@dataclass(frozen=True)
class Copy:
    """One of a backend's two databases: ``import`` (served) or ``baseline``."""

    data_dir: Path
    database_url: str | None  # None: SQLite under the data dir

    @property
    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir, database_url=self.database_url)

    @property
    def sqlite_path(self) -> Path:
        return (self.data_dir / "chatferry.db").resolve()


@dataclass(frozen=True)
class Backend:
    name: str
    served: Copy
    baseline: Copy


@contextmanager
def backends(root: Path, args: argparse.Namespace) -> Iterator[list[Backend]]:
    sqlite = Backend("SQLite", Copy(root / "sqlite-import", None), Copy(root / "sqlite-base", None))
    with postgres_schemas(None if args.sqlite_only else args.postgres, 2) as schemas:
        if not schemas:
            yield [sqlite]
            return
        served, baseline = schemas
        postgres = Backend(
            "PostgreSQL", Copy(root / "pg-import", served), Copy(root / "pg-base", baseline)
        )
        yield [sqlite, postgres]


def build_database(copy: Copy, users_apps: int) -> None:
    """The tenant with demo users and rooms (no comments), and empty tenants for users."""
    rt = build_runtime(copy.settings)
    try:
        with transaction(rt.sessions) as session:
            app, _ = create_app(
                session, rt.secrets, "bench comments", app_id=COMMENTS_APP, secret=SECRET
            )
            generate(session, app.id, DEMO)
        for k in range(users_apps):
            with transaction(rt.sessions) as session:
                create_app(
                    session,
                    rt.secrets,
                    f"bench users {k}",
                    app_id=f"{USERS_APP}-{k}",
                    secret=SECRET,
                )
    finally:
        rt.close()


def query_all(copy: Copy, sql: str, params: dict[str, Any]) -> list[Any]:
    engine = create_engine(copy.settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def execute(copy: Copy, sql: str, params: dict[str, Any]) -> None:
    engine = create_engine(copy.settings.resolved_database_url())
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


# ---------------------------------------------------------------- the files


def room_members(copy: Copy) -> dict[str, list[str]]:
    members: dict[str, list[str]] = {}
    for unique_id, email in query_all(
        copy,
        "SELECT r.unique_id, u.email FROM rooms r JOIN room_participants p ON p.room_id = r.id "
        "JOIN users u ON u.id = p.user_id ORDER BY r.id, p.position",
        {},
    ):
        members.setdefault(unique_id, []).append(email)
    return members


@dataclass(frozen=True)
class CommentsFile:
    body: bytes
    rows: int
    replies: int


def comments_file(copy: Copy, budget: int) -> CommentsFile:
    """A comments file of at most ``budget`` bytes, replies pointing at earlier rows."""
    members = room_members(copy)
    rng = random.Random(11)
    rooms = list(members)
    history: dict[str, list[str]] = {}
    lines: list[bytes] = []
    size, replies = 2, 0  # "[\n"
    while True:
        room = rooms[int(rng.random() * len(rooms))]
        earlier = history.setdefault(room, [])
        row = comment_row(rng, len(lines), room, members[room], earlier)
        line = orjson.dumps(row)
        if size + len(line) + 3 > budget:
            break
        lines.append(line)
        size += len(line) + 2
        replies += row["Type"] == "reply"
        earlier.append(row["UniqueId"])
    return CommentsFile(b"[\n" + b",\n".join(lines) + b"\n]\n", len(lines), replies)


def comment_payload(
    rng: random.Random, index: int, message: str, earlier: list[str]
) -> tuple[str, str, dict[str, Any] | None]:
    """(type, parent unique id, payload) of a row: mostly text, some replies and others."""
    roll = rng.random()
    if earlier and roll < 0.15:
        parent = earlier[-1 - int(rng.random() * min(50, len(earlier)))]
        return "reply", parent, {"text": message, "replied_comment_id": 1}
    if roll < 0.18:
        attachment = {"url": f"https://files.example.com/{index}.jpg", "caption": message}
        return "file_attachment", "", attachment
    if roll < 0.20:
        return "location", "", PLACE
    if roll < 0.23:
        return "custom", "", {"type": "promo", "content": {"code": f"PROMO{index}", "percent": 10}}
    return "text", "", None


def comment_row(
    rng: random.Random, index: int, room: str, people: list[str], earlier: list[str]
) -> dict[str, Any]:
    message = MESSAGES[int(rng.random() * len(MESSAGES))]
    kind, parent, payload = comment_payload(rng, index, message, earlier)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    moment = start + timedelta(seconds=index * 7, microseconds=index % 1000 * 1000)
    return {
        "Message": message,
        "DisableLinkPreview": rng.random() < 0.05,
        "Type": kind,
        "UniqueId": f"bench-msg-{index:06d}-{uuid.UUID(int=rng.getrandbits(128))}",
        "CreatorEmail": people[int(rng.random() * len(people))],
        "RoomUniqueId": room,
        "CreatedAt": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "Payload": payload,
        "ParentCommentUniqueId": parent,
    }


def users_file(count: int) -> bytes:
    rows = [
        {
            "Email": f"imported{i}@bench.example.com",
            "Name": f"Imported User {i}",
            "AvatarUrl": f"https://avatars.example.com/imported/{i}.png",
            "AuthenticationToken": f"token-{i}-{uuid.uuid4().hex}",
            "Password": f"correct horse battery staple {i}",
            "CreateAt": "2024-05-10T11:46:30Z",
        }
        for i in range(count)
    ]
    return orjson.dumps(rows)


# ---------------------------------------------------------------- the import


@dataclass(frozen=True)
class ImportRun:
    seconds: float  # upload start -> the held GET that saw "finished"
    upload_seconds: float  # upload start -> the POST's answer
    server_seconds: float  # created_at -> finished_at in the database
    record: dict[str, Any]


def wait_import(client: httpx.Client, app_id: str, unique_id: str) -> dict[str, Any]:
    """The record once the import ended, the way the client waits: ``?wait=`` GETs, each
    held by the server until the job ends (or 5 s pass)."""
    deadline = time.monotonic() + IMPORT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        response = client.get(
            f"{API}/imports/{unique_id}", headers=headers(app_id, SECRET), params={"wait": 5}
        )
        history: dict[str, Any] = response.json()["results"]["backup_history"]
        if history["status"] != "started":
            return history
    raise SystemExit(f"the import did not finish in {IMPORT_TIMEOUT_SECONDS} s")


def timed_import(
    client: httpx.Client, copy: Copy, app_id: str, resource: str, body: bytes
) -> ImportRun:
    """Seconds from the upload's start until the record says ``finished``."""
    started = time.perf_counter()
    response = client.post(
        f"{API}/imports",
        headers=headers(app_id, SECRET),
        data={"type": resource},
        files={"file": (f"{resource}.json", body, "application/json")},
    )
    uploaded = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"upload refused: {response.status_code} {response.text}")
    unique_id = response.json()["results"]["backup_history"]["unique_id"]
    history = wait_import(client, app_id, unique_id)
    seconds = time.perf_counter() - started
    if history["status"] != "finished":
        errors = orjson.dumps(history["errors"]).decode()[:2000]
        raise SystemExit(f"the {resource} import {history['status']}: {errors}")
    return ImportRun(seconds, uploaded, server_seconds(copy, unique_id), history)


def server_seconds(copy: Copy, unique_id: str) -> float:
    """created_at -> finished_at of the import, with microseconds, from the database."""
    ((created, finished),) = query_all(
        copy, "SELECT created_at, finished_at FROM imports WHERE unique_id = :u", {"u": unique_id}
    )
    start, end = (datetime.fromisoformat(str(value)) for value in (created, finished))
    return (end - start).total_seconds()


def warm_up(client: httpx.Client, app_id: str) -> None:
    """First requests pay for imports and the secret check; keep them out of the timing."""
    for _ in range(2):
        client.get(f"{API}/imports", headers=headers(app_id, SECRET)).raise_for_status()


# ---------------------------------------------------------------- the baseline


@dataclass
class Baseline:
    """A driver connection and what the plain insert needs to know."""

    conn: Any
    mark: str  # the driver's placeholder
    sqlite: bool

    def one(self, sql: str, *params: Any) -> Any:
        cursor = self.conn.cursor()
        cursor.execute(sql.replace("?", self.mark), params)
        return cursor.fetchone()[0]

    def pairs(self, sql: str, *params: Any) -> dict[Any, Any]:
        cursor = self.conn.cursor()
        cursor.execute(sql.replace("?", self.mark), params)
        return dict(cursor.fetchall())


def connect_baseline(copy: Copy) -> Baseline:
    if copy.database_url is None:
        conn: Any = sqlite3.connect(copy.sqlite_path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            conn.execute(f"PRAGMA {pragma}")
        return Baseline(conn, "?", True)
    import psycopg

    return Baseline(psycopg.connect(copy.database_url, autocommit=True), "%s", False)


def reserve_ids(db: Baseline, count: int) -> list[int]:
    if db.sqlite:
        first = db.one("SELECT coalesce(max(id), 0) FROM comments") + 1
        return list(range(first, first + count))
    cursor = db.conn.cursor()
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence('comments', 'id')) FROM generate_series(1, %s)",
        (count,),
    )
    return sorted(row[0] for row in cursor.fetchall())


def insert_values(db: Baseline, body: bytes) -> list[tuple[Any, ...]]:
    """The file's rows as the comments table's values (no checks)."""
    app_pk = db.one("SELECT id FROM apps WHERE app_id = ?", COMMENTS_APP)
    users = db.pairs("SELECT email, id FROM users WHERE app_pk = ?", app_pk)
    rooms = db.pairs("SELECT unique_id, id FROM rooms WHERE app_pk = ?", app_pk)
    rows = orjson.loads(body)
    by_unique_id: dict[str, int] = {}
    values = []
    for comment_id, row in zip(reserve_ids(db, len(rows)), rows, strict=True):
        by_unique_id[row["UniqueId"]] = comment_id
        parent = by_unique_id[row["ParentCommentUniqueId"]] if row["Type"] == "reply" else None
        payload = row["Payload"]
        if parent is not None:
            payload = {**payload, "replied_comment_id": parent}
        created = datetime.fromisoformat(row["CreatedAt"]).astimezone(UTC).replace(tzinfo=None)
        values.append(
            (
                comment_id,
                app_pk,
                row["UniqueId"],
                rooms[row["RoomUniqueId"]],
                users[row["CreatorEmail"]],
                row["Type"],
                row["Message"],
                None if payload is None else orjson.dumps(payload).decode(),
                row["DisableLinkPreview"],
                parent,
                created.isoformat(" ", "microseconds") if db.sqlite else created,
            )
        )
    return values


def baseline_insert(copy: Copy, body: bytes) -> float:
    """Parses the file and inserts its rows with plain executemany in one transaction."""
    db = connect_baseline(copy)
    try:
        started = time.perf_counter()
        cursor = db.conn.cursor()
        cursor.execute("BEGIN")
        values = insert_values(db, body)
        marks = ", ".join([db.mark] * 11)
        cursor.executemany(
            "INSERT INTO comments (id, app_pk, unique_id, room_id, user_id, type, message, "
            f"payload, disable_link_preview, parent_id, created_at) VALUES ({marks})",
            values,
        )
        cursor.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        db.conn.close()


COMPARE_SQL = """
SELECT c.unique_id, r.unique_id, u.email, c.type, c.message, c.payload,
       c.disable_link_preview, coalesce(p.unique_id, ''), c.created_at
FROM comments c JOIN apps a ON a.id = c.app_pk
JOIN rooms r ON r.id = c.room_id JOIN users u ON u.id = c.user_id
LEFT JOIN comments p ON p.id = c.parent_id
WHERE a.app_id = :app_id ORDER BY c.id
"""


def comment_rows(copy: Copy) -> list[tuple[Any, ...]]:
    """The tenant's comments, comparable across the two copies."""
    rows = []
    for row in query_all(copy, COMPARE_SQL, {"app_id": COMMENTS_APP}):
        values = list(row)
        values[5] = None if values[5] is None else orjson.loads(values[5])
        # replied_comment_id is the parent's id in each database; compare the parent
        if isinstance(values[5], dict) and "replied_comment_id" in values[5]:
            values[5] = {**values[5], "replied_comment_id": "parent"}
        values[6] = bool(values[6])
        values[8] = str(values[8])[:26]
        rows.append(tuple(values))
    return rows


def clear_comments(copy: Copy) -> None:
    """Removes the tenant's comments, so the same file can be imported again."""
    execute(
        copy,
        "DELETE FROM comments WHERE app_pk = (SELECT id FROM apps WHERE app_id = :app_id)",
        {"app_id": COMMENTS_APP},
    )


# ---------------------------------------------------------------- comments


def bench_comments(
    client: httpx.Client, b: Backend, data: CommentsFile, repeat: int, summary: Summary
) -> None:
    """Imports and baselines in turns (both see the same load); best of each."""
    imports: list[ImportRun] = []
    baselines: list[float] = []
    for run in range(repeat):
        if run:
            clear_comments(b.served)
            clear_comments(b.baseline)
        imports.append(timed_import(client, b.served, COMMENTS_APP, "comments", data.body))
        assert imports[-1].record["total_rows"] == data.rows, imports[-1].record
        baselines.append(baseline_insert(b.baseline, data.body))
        imported, inserted = comment_rows(b.served), comment_rows(b.baseline)
        assert len(imported) == data.rows, f"import wrote {len(imported)} of {data.rows} rows"
        assert imported == inserted, "the import and the baseline wrote different rows"
    report_comments(b, data, imports, baselines, summary)


def report_comments(
    b: Backend,
    data: CommentsFile,
    imports: list[ImportRun],
    baselines: list[float],
    summary: Summary,
) -> None:
    best = min(imports, key=lambda r: r.seconds)
    server = min(r.server_seconds for r in imports)
    baseline = min(baselines)
    rows = data.rows
    print(
        f"--- {b.name}, comments: {rows:,} rows ({data.replies:,} replies), file "
        f"{len(data.body):,} bytes (limit {IMPORT_LIMIT:,}); best of {len(imports)}; "
        f"load {load_average()}"
    )
    print(
        f"  import, upload -> finished (?wait= GET): {best.seconds:7.3f} s "
        f"{rows / best.seconds:>9,.0f} rows/s  (upload answered after {best.upload_seconds:.3f} s;"
        f" runs {seconds_list(r.seconds for r in imports)})"
    )
    print(
        f"  of which created_at -> finished_at: {server:7.3f} s (runs "
        f"{seconds_list(r.server_seconds for r in imports)}): finished_at is stamped when the "
        "writing transaction begins, so this is pick-up, parse and checks; the rest is the "
        "upload, the writes and commit, and the held GET's answer"
    )
    print(
        f"  baseline, parse + executemany, one transaction: {baseline:7.3f} s "
        f"{rows / baseline:>9,.0f} rows/s  (runs {seconds_list(baselines)})"
    )
    ratio = best.seconds / baseline
    print(f"  ratio import/baseline = {ratio:.2f}; the rows are identical in both databases")
    summary.add(
        f"{b.name} import of the {len(data.body) / 1e6:.1f} MB comments file ({rows:,} rows), "
        "upload to finished",
        f"{best.seconds:.2f} s",
        f"executemany {baseline:.2f} s",
        f"{ratio:.2f}",
        f"<= {COMMENTS_TARGET:g}",
        ratio <= COMMENTS_TARGET,
    )


# ---------------------------------------------------------------- users


def hash_samples(samples: int = 20) -> list[float]:
    """Times of one Argon2id hash with the import's parameters, one after another."""
    hash_password("warm-up")
    times = []
    for i in range(samples):
        started = time.perf_counter()
        hash_password(f"sample password {i}")
        times.append(time.perf_counter() - started)
    return times


def pool_rate(per_core: int = 20) -> float:
    """Hashes per second of a bare pool with one thread per core (argon2 drops the GIL)."""
    cores = os.cpu_count() or 1
    with ThreadPoolExecutor(cores) as pool:
        started = time.perf_counter()
        hashes = list(pool.map(hash_password, [f"scaling {i}" for i in range(per_core * cores)]))
        return len(hashes) / (time.perf_counter() - started)


def check_users(copy: Copy, app_id: str, count: int) -> None:
    rows = query_all(
        copy,
        "SELECT u.email, u.password_hash FROM users u JOIN apps a ON a.id = u.app_pk "
        "WHERE a.app_id = :app_id ORDER BY u.id",
        {"app_id": app_id},
    )
    assert len(rows) == count, f"expected {count} users, found {len(rows)}"
    assert rows[0][0] == "imported0@bench.example.com"
    assert verify_password(rows[0][1], "correct horse battery staple 0")
    assert verify_password(rows[-1][1], f"correct horse battery staple {count - 1}")


def bench_users(client: httpx.Client, b: Backend, count: int, summary: Summary) -> None:
    """Plain passwords against count x one hash / cores."""
    cores = os.cpu_count() or 1
    body = users_file(count)
    samples = hash_samples()
    app_id = f"{USERS_APP}-0"
    warm_up(client, app_id)
    run = timed_import(client, b.served, app_id, "users", body)
    assert run.record["total_rows"] == count, run.record
    check_users(b.served, app_id, count)
    one = statistics.median(samples + hash_samples())
    bound = count * one / cores
    ratio = run.seconds / bound
    print(f"--- {b.name}, users: {count:,} rows with plain passwords; load {load_average()}")
    print(
        f"  import, upload -> finished: {run.seconds:7.3f} s (created_at -> finished_at "
        f"{run.server_seconds:.3f} s); bound {count:,} x {one * 1000:.1f} ms "
        "(one Argon2id hash, median of 40) / "
        f"{cores} cores = {bound:.3f} s; ratio {ratio:.2f}"
    )
    rate = pool_rate()
    print(f"  (a bare pool of {cores} threads hashes {rate:.1f}/s = {rate * one:.2f} x one core)")
    summary.add(
        f"{b.name} import of {count:,} users with plain passwords, upload to finished",
        f"{run.seconds:.2f} s",
        f"{count:,} Argon2id hashes / {cores} cores {bound:.2f} s",
        f"{ratio:.2f}",
        f"<= {USERS_TARGET:g}",
        ratio <= USERS_TARGET,
    )


# ---------------------------------------------------------------- main


def run_backend(b: Backend, args: argparse.Namespace, summary: Summary) -> None:
    started = time.perf_counter()
    build_database(b.served, users_apps=1)
    build_database(b.baseline, users_apps=0)
    data = comments_file(b.served, args.file_bytes)
    print(
        f"=== {b.name}: {DEMO.users:,} users and {DEMO.rooms:,} rooms in each database; "
        f"setup {time.perf_counter() - started:.1f} s"
    )
    env = chatferry_env(b.served.data_dir, b.served.database_url)
    log = b.served.data_dir / "serve.log"
    with serve(env, log) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        warm_up(client, COMMENTS_APP)
        bench_comments(client, b, data, args.repeat, summary)
        if args.users:
            bench_users(client, b, args.users, summary)


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument(
        "--postgres", default=DEFAULT_POSTGRES, metavar="URL", help="fresh schemas are used here"
    )
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--repeat", type=int, default=3, help="comments imports and baselines")
    parser.add_argument("--users", type=int, default=1000, help="users to import (0: skip)")
    parser.add_argument("--small", action="store_true", help="256 KB file, 50 users, 1 run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    args.file_bytes = IMPORT_LIMIT - 4096  # just under the limit
    if args.small:
        args.file_bytes, args.users, args.repeat = 256 * 1024, 50, 1
    return args


def run(args: argparse.Namespace, root: Path, summary: Summary) -> None:
    with backends(root, args) as found:
        for b in found:
            run_backend(b, args, summary)


if __name__ == "__main__":
    run_main("import_bench", parse_args, run)
