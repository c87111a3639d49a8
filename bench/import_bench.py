"""Import benchmark: a 4 MB comments file against plain executemany, and 1,000 passwords.

Run: ``.venv/bin/python bench/import_bench.py [--postgres URL] [--keep]``

Each backend (SQLite in a temporary directory; PostgreSQL in fresh schemas when
``--postgres`` is given) gets two databases with the same ``chatferry.demo`` users and
rooms: one served by a real ``chatferry serve`` process, one for the baseline.

1. Comments: a file of just under the 4 MB import limit (text messages, replies to
   earlier rows of the same room, some attachments, locations and custom payloads) is
   uploaded with ``POST /api/v2.1/rest/imports`` (multipart) and timed until
   ``GET /imports/{unique_id}`` reports ``finished``. The baseline, in the other
   database, parses the same file and inserts the same rows with the driver's own
   ``executemany`` and no checks (creator and room ids from a dict, ids assigned up
   front so replies point at their parents), in one transaction. Both databases are
   then compared row by row. Target: import time <= 3 x baseline time.
2. Users: 1,000 users with plain passwords, timed from upload to ``finished``. The
   lower bound is 1,000 x (one Argon2id hash with the import's parameters, measured
   here) / os.cpu_count(). Target: import time <= 1.2 x lower bound. For reference the
   bench also measures a bare process pool hashing on every core, which shows how well
   this machine's cores scale (the lower bound assumes perfectly).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
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
from sqlalchemy import text

from chatferry.apps.service import create_app
from chatferry.db.engine import transaction
from chatferry.demo.generate import DemoSpec, generate
from chatferry.imports.passwords import hash_password, verify_password
from chatferry.runtime import build_runtime
from chatferry.settings import Settings

COMMENTS_TARGET = 3.0
USERS_TARGET = 1.2
IMPORT_LIMIT = 4 * 1024 * 1024
FILE_BUDGET = IMPORT_LIMIT - 4096  # just under the limit
USERS = int(os.environ.get("BENCH_USERS", "1000"))
DEMO = DemoSpec(users=1000, rooms=300, comments=0, days=30, seed=7)
COMMENTS_APP = "bench-comments"
USERS_APP = "bench-users"  # -0, -1, ... one per users import
SECRET = "bench-secret-0123456789"
POLL_SECONDS = float(os.environ.get("BENCH_POLL", "0.02"))
API = "/api/v2.1/rest"

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


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# ---------------------------------------------------------------- databases


@dataclass
class Backend:
    name: str
    data_dir: Path
    import_url: str | None  # None: SQLite under the data dir
    baseline_url: str | None
    schemas: list[str]

    def settings(self, which: str) -> Settings:
        url = self.import_url if which == "import" else self.baseline_url
        return Settings(data_dir=self.data_dir / which, database_url=url)

    def sqlite_path(self, which: str) -> Path:
        return (self.data_dir / which / "chatferry.db").resolve()


def with_schema(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


@contextmanager
def backend(name: str, root: Path, postgres: str | None) -> Iterator[Backend]:
    data_dir = root / name
    if postgres is None:
        yield Backend(name, data_dir, None, None, [])
        return
    import psycopg

    schemas = [f"bench_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with psycopg.connect(postgres, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield Backend(
            name,
            data_dir,
            with_schema(postgres, schemas[0]),
            with_schema(postgres, schemas[1]),
            schemas,
        )
    finally:
        with psycopg.connect(postgres, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def build_database(settings: Settings, users_apps: int) -> None:
    """The tenant with demo users and rooms (no comments), and empty tenants for users."""
    rt = build_runtime(settings)
    try:
        with transaction(rt.sessions) as session:
            app, _ = create_app(session, "bench comments", app_id=COMMENTS_APP, secret=SECRET)
            generate(session, app.id, DEMO)
        for k in range(users_apps):
            with transaction(rt.sessions) as session:
                create_app(session, f"bench users {k}", app_id=f"{USERS_APP}-{k}", secret=SECRET)
    finally:
        rt.close()


# ---------------------------------------------------------------- the files


def comments_file(settings: Settings) -> tuple[bytes, int, int]:
    """A comments file just under the limit; returns (bytes, rows, replies)."""
    rt = build_runtime(settings, migrate=False)
    try:
        with rt.engine.connect() as conn:
            members: dict[str, list[str]] = {}
            for unique_id, email in conn.execute(
                text(
                    "SELECT r.unique_id, u.email FROM rooms r "
                    "JOIN room_participants p ON p.room_id = r.id "
                    "JOIN users u ON u.id = p.user_id ORDER BY r.id, p.position"
                )
            ):
                members.setdefault(unique_id, []).append(email)
    finally:
        rt.close()
    rng = random.Random(11)
    rooms = list(members)
    history: dict[str, list[str]] = {}
    start = datetime(2024, 1, 1, tzinfo=UTC)
    lines: list[bytes] = []
    size = 2  # "[\n"
    replies = 0
    index = 0
    while True:
        room = rooms[int(rng.random() * len(rooms))]
        earlier = history.setdefault(room, [])
        row = comment_row(rng, index, room, members[room], earlier, start)
        line = orjson.dumps(row)
        if size + len(line) + 3 > FILE_BUDGET:
            break
        lines.append(line)
        size += len(line) + 2
        replies += row["Type"] == "reply"
        earlier.append(row["UniqueId"])
        index += 1
    return b"[\n" + b",\n".join(lines) + b"\n]\n", len(lines), replies


def comment_row(
    rng: random.Random,
    index: int,
    room: str,
    people: list[str],
    earlier: list[str],
    start: datetime,
) -> dict[str, Any]:
    message = MESSAGES[int(rng.random() * len(MESSAGES))]
    roll = rng.random()
    parent = ""
    payload: dict[str, Any] | None = None
    kind = "text"
    if earlier and roll < 0.15:
        kind, parent = "reply", earlier[-1 - int(rng.random() * min(50, len(earlier)))]
        payload = {"text": message, "replied_comment_id": 1}
    elif roll < 0.18:
        kind = "file_attachment"
        payload = {"url": f"https://files.example.com/{index}.jpg", "caption": message}
    elif roll < 0.20:
        kind = "location"
        payload = {
            "name": "Monas",
            "address": "Gambir, Central Jakarta",
            "latitude": -6.1754,
            "longitude": 106.8272,
            "map_url": "https://maps.example.com/?q=-6.1754,106.8272",
        }
    elif roll < 0.23:
        kind = "custom"
        payload = {"type": "promo", "content": {"code": f"PROMO{index}", "percent": 10}}
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


def users_file() -> bytes:
    rows = [
        {
            "Email": f"imported{i}@bench.example.com",
            "Name": f"Imported User {i}",
            "AvatarUrl": f"https://avatars.example.com/imported/{i}.png",
            "AuthenticationToken": f"token-{i}-{uuid.uuid4().hex}",
            "Password": f"correct horse battery staple {i}",
            "CreateAt": "2024-05-10T11:46:30Z",
        }
        for i in range(USERS)
    ]
    return orjson.dumps(rows)


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(settings: Settings, log_path: Path) -> Iterator[httpx.Client]:
    """``chatferry serve`` (API + worker threads) on a free port, as a real process."""
    port = free_port()
    env = {**os.environ, "CHATFERRY_DATA_DIR": str(settings.data_dir)}
    if settings.database_url:
        env["CHATFERRY_DATABASE_URL"] = settings.database_url
    command = [sys.executable, "-m", "chatferry", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"chatferry serve exited:\n{log_path.read_text()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"chatferry serve did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield client
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def headers(app_id: str) -> dict[str, str]:
    return {"QISCUS-SDK-APP-ID": app_id, "QISCUS-SDK-SECRET": SECRET}


def warm_up(client: httpx.Client, app_id: str) -> None:
    """First requests pay for imports and the secret check; keep them out of the timing."""
    for _ in range(2):
        response = client.get(f"{API}/imports", headers=headers(app_id))
        response.raise_for_status()


def timed_import(
    client: httpx.Client, app_id: str, resource: str, body: bytes
) -> tuple[float, dict[str, Any]]:
    """Seconds from the upload's start until the record says ``finished``."""
    started = time.perf_counter()
    response = client.post(
        f"{API}/imports",
        headers=headers(app_id),
        data={"type": resource},
        files={"file": (f"{resource}.json", body, "application/json")},
    )
    uploaded = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"upload refused: {response.status_code} {response.text}")
    unique_id = response.json()["results"]["backup_history"]["unique_id"]
    while True:
        record = client.get(f"{API}/imports/{unique_id}", headers=headers(app_id))
        history = record.json()["results"]["backup_history"]
        if history["status"] != "started":
            seconds = time.perf_counter() - started
            break
        time.sleep(POLL_SECONDS)
    if history["status"] != "finished":
        errors = orjson.dumps(history["errors"]).decode()[:2000]
        raise SystemExit(f"the {resource} import {history['status']}: {errors}")
    history["bench_upload_seconds"] = uploaded
    return seconds, history


# ---------------------------------------------------------------- the baseline


def baseline_insert(backend: Backend, body: bytes) -> float:
    """Parses the file and inserts its rows with plain executemany; returns seconds."""
    if backend.baseline_url is None:
        conn: Any = sqlite3.connect(backend.sqlite_path("baseline"), isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            conn.execute(f"PRAGMA {pragma}")
        placeholder, is_sqlite = "?", True
    else:
        import psycopg

        conn = psycopg.connect(backend.baseline_url, autocommit=True)
        placeholder, is_sqlite = "%s", False
    try:
        started = time.perf_counter()
        cursor = conn.cursor()
        cursor.execute("BEGIN")
        cursor.execute(f"SELECT id FROM apps WHERE app_id = {placeholder}", (COMMENTS_APP,))
        app_pk = cursor.fetchone()[0]
        cursor.execute(f"SELECT email, id FROM users WHERE app_pk = {placeholder}", (app_pk,))
        users = dict(cursor.fetchall())
        cursor.execute(f"SELECT unique_id, id FROM rooms WHERE app_pk = {placeholder}", (app_pk,))
        rooms = dict(cursor.fetchall())
        rows = orjson.loads(body)
        if is_sqlite:
            cursor.execute("SELECT coalesce(max(id), 0) FROM comments")
            first = cursor.fetchone()[0] + 1
            ids = list(range(first, first + len(rows)))
        else:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('comments', 'id')) "
                "FROM generate_series(1, %s)",
                (len(rows),),
            )
            ids = sorted(row[0] for row in cursor.fetchall())
        by_unique_id: dict[str, int] = {}
        values = []
        for comment_id, row in zip(ids, rows, strict=True):
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
                    created.isoformat(" ", "microseconds") if is_sqlite else created,
                )
            )
        marks = ", ".join([placeholder] * 11)
        cursor.executemany(
            "INSERT INTO comments (id, app_pk, unique_id, room_id, user_id, type, message, "
            f"payload, disable_link_preview, parent_id, created_at) VALUES ({marks})",
            values,
        )
        cursor.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        conn.close()


COMPARE_SQL = """
SELECT c.unique_id, r.unique_id, u.email, c.type, c.message, c.payload,
       c.disable_link_preview, coalesce(p.unique_id, ''), c.created_at
FROM comments c JOIN apps a ON a.id = c.app_pk
JOIN rooms r ON r.id = c.room_id JOIN users u ON u.id = c.user_id
LEFT JOIN comments p ON p.id = c.parent_id
WHERE a.app_id = :app_id ORDER BY c.id
"""


def comment_rows(settings: Settings) -> list[tuple[Any, ...]]:
    rt = build_runtime(settings, migrate=False)
    try:
        with rt.engine.connect() as conn:
            result = conn.execute(text(COMPARE_SQL), {"app_id": COMMENTS_APP})
            rows = []
            for row in result:
                values = list(row)
                values[5] = None if values[5] is None else orjson.loads(values[5])
                # replied_comment_id is the parent's id in each database; compare the parent
                if isinstance(values[5], dict) and "replied_comment_id" in values[5]:
                    values[5] = {**values[5], "replied_comment_id": "parent"}
                values[6] = bool(values[6])
                values[8] = str(values[8])[:26]
                rows.append(tuple(values))
            return rows
    finally:
        rt.close()


# ---------------------------------------------------------------- passwords


def hash_samples(samples: int = 30) -> list[float]:
    """Times of one Argon2id hash with the import's parameters, one after another."""
    hash_password("warm-up")
    times = []
    for i in range(samples):
        started = time.perf_counter()
        hash_password(f"sample password {i}")
        times.append(time.perf_counter() - started)
    return times


def pool_scaling(per_core: int = 40) -> float:
    """Hashes per second of a bare pool with one thread per core (argon2 drops the GIL)."""
    cores = os.cpu_count() or 1
    with ThreadPoolExecutor(cores) as pool:
        started = time.perf_counter()
        hashes = list(pool.map(hash_password, [f"scaling {i}" for i in range(per_core * cores)]))
        return len(hashes) / (time.perf_counter() - started)


def clear_comments(settings: Settings) -> None:
    """Removes the tenant's comments, so the same file can be imported again."""
    rt = build_runtime(settings, migrate=False)
    try:
        with rt.engine.begin() as conn:
            conn.execute(
                text(
                    "DELETE FROM comments WHERE app_pk = "
                    "(SELECT id FROM apps WHERE app_id = :app_id)"
                ),
                {"app_id": COMMENTS_APP},
            )
    finally:
        rt.close()


def check_users(settings: Settings, app_id: str) -> None:
    rt = build_runtime(settings, migrate=False)
    try:
        with rt.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT u.email, u.password_hash FROM users u JOIN apps a ON a.id = u.app_pk "
                    "WHERE a.app_id = :app_id ORDER BY u.id"
                ),
                {"app_id": app_id},
            ).all()
    finally:
        rt.close()
    assert len(rows) == USERS, f"expected {USERS} users, found {len(rows)}"
    assert rows[0][0] == "imported0@bench.example.com"
    assert verify_password(rows[0][1], "correct horse battery staple 0")
    assert verify_password(rows[-1][1], f"correct horse battery staple {USERS - 1}")


# ---------------------------------------------------------------- one backend


def run_backend(b: Backend, repeat: int, users_repeat: int) -> bool:
    started = time.perf_counter()
    import_settings, baseline_settings = b.settings("import"), b.settings("baseline")
    build_database(import_settings, users_apps=users_repeat)
    build_database(baseline_settings, users_apps=0)
    body, rows, replies = comments_file(import_settings)
    print(
        f"=== {b.name}: {DEMO.users:,} users and {DEMO.rooms:,} rooms in each database; "
        f"setup {time.perf_counter() - started:.1f} s"
    )
    with server(import_settings, b.data_dir / "serve.log") as client:
        warm_up(client, COMMENTS_APP)
        comments_ok = bench_comments(client, b, body, rows, replies, repeat)
        users_ok = bench_users(client, import_settings, users_repeat) if users_repeat else True
    return comments_ok and users_ok


def bench_comments(
    client: httpx.Client, b: Backend, body: bytes, rows: int, replies: int, repeat: int
) -> bool:
    """Import and baseline in turns (so both see the same load on the machine); best of each."""
    import_settings, baseline_settings = b.settings("import"), b.settings("baseline")
    imports: list[tuple[float, float]] = []
    baselines: list[float] = []
    for run in range(repeat):
        seconds, record = timed_import(client, COMMENTS_APP, "comments", body)
        assert record["total_rows"] == rows, record
        imports.append((seconds, record["bench_upload_seconds"]))
        baselines.append(baseline_insert(b, body))
        imported, inserted = comment_rows(import_settings), comment_rows(baseline_settings)
        assert len(imported) == rows, f"import wrote {len(imported)} of {rows} rows"
        assert imported == inserted, "the import and the baseline wrote different rows"
        if run < repeat - 1:
            clear_comments(import_settings)
            clear_comments(baseline_settings)
    best, upload = min(imports)
    baseline = min(baselines)
    ratio = best / baseline
    ok = ratio <= COMMENTS_TARGET
    print(
        f"--- comments: {rows:,} rows ({replies:,} replies), file {len(body):,} bytes "
        f"(limit {IMPORT_LIMIT:,}); best of {repeat}"
    )
    print(
        f"  import (upload -> finished)   : {best:7.3f} s {rows / best:>9,.0f} rows/s  "
        f"(upload response after {upload:.3f} s; runs {runs(s for s, _ in imports)})"
    )
    print(
        f"  baseline (parse + executemany): {baseline:7.3f} s {rows / baseline:>9,.0f} rows/s  "
        f"(runs {runs(baselines)})"
    )
    print(
        f"  ratio import/baseline = {ratio:.2f} (target <= {COMMENTS_TARGET:g}): {verdict(ok)}; "
        "the rows are identical in both databases"
    )
    return ok


def runs(values: Any) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def bench_users(client: httpx.Client, settings: Settings, repeat: int) -> bool:
    """1,000 plain passwords against 1,000 x one hash / cores; best of ``repeat``."""
    cores = os.cpu_count() or 1
    body = users_file()
    samples = hash_samples()
    results = []
    for run in range(repeat):
        app_id = f"{USERS_APP}-{run}"
        warm_up(client, app_id)
        seconds, record = timed_import(client, app_id, "users", body)
        assert record["total_rows"] == USERS, record
        check_users(settings, app_id)
        results.append((seconds, record["bench_upload_seconds"]))
    samples += hash_samples()
    one = statistics.median(samples)
    best, upload = min(results)
    bound = USERS * one / cores
    ratio = best / bound
    ok = ratio <= USERS_TARGET
    print(f"--- users: {USERS:,} rows with plain passwords, file {len(body):,} bytes")
    print(
        f"  import (upload -> finished): {best:7.3f} s {USERS / best:>9,.0f} rows/s  "
        f"(upload response after {upload:.3f} s; runs {runs(s for s, _ in results)})"
    )
    print(
        f"  lower bound = {USERS:,} x {one * 1000:.1f} ms (one Argon2id hash, m=19456 KiB t=2 "
        f"p=1: median of {len(samples)}, half before and half after the import) / {cores} "
        f"cores = {bound:.3f} s"
    )
    print(f"  ratio import/lower bound = {ratio:.2f} (target <= {USERS_TARGET:g}): {verdict(ok)}")
    scaling = pool_scaling()
    print(
        f"  (for reference: a bare pool of {cores} threads hashes {scaling:.1f}/s = "
        f"{scaling * one:.2f} x one core; {USERS:,} hashes at that rate take "
        f"{USERS / scaling:.3f} s)"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--postgres", metavar="URL", help="also run on PostgreSQL (fresh schemas in this db)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="comments imports and baselines (best of each)"
    )
    parser.add_argument("--users-repeat", type=int, default=1, help="users imports (best)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="chatferry-import-bench-"))
    started = time.perf_counter()
    all_ok = True
    try:
        print(f"data dir {root}; python {sys.version.split()[0]}; cpus {os.cpu_count()}")
        with backend("sqlite", root, None) as b:
            all_ok &= run_backend(b, args.repeat, args.users_repeat)
        if args.postgres:
            with backend("postgresql", root, args.postgres) as b:
                all_ok &= run_backend(b, args.repeat, args.users_repeat)
        print(f"overall: {verdict(all_ok)}; bench took {time.perf_counter() - started:.0f} s")
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
