"""Export benchmark on the user's path: ``POST /exports`` to ``finished`` through a real
``chatferry serve``, against the database's own dump of the same rows, in the same run.

Run: ``.venv/bin/python bench/export_bench.py [--rows 200000 1000000] [--repeat 3]
[--postgres URL | --sqlite-only] [--poll 1.0] [--small] [--keep] [--profile DIR]``

For each database (SQLite in a temporary directory; PostgreSQL in a fresh schema of
``--postgres``, default postgresql://postgres@127.0.0.1:5432/test, dropped after) the
bench makes one app per size, filled by ``chatferry.demo`` (2,000 users, 1,000 rooms, the
comments over the last 21 days), and for each size starts a fresh ``chatferry serve``
(default settings: API and embedded job workers in one process; only
CHATFERRY_EXPORT_MAX_COMMENTS raised to the largest size). Then, best of ``--repeat``
runs, in turns:

- export: a client sends ``POST /api/v2.1/rest/exports`` for the comments of a window
  that holds exactly the app's rows, then polls ``GET /exports/{id}`` every ``--poll``
  seconds (1 s, as a person's script would) counted from the POST. The time judged is
  from sending the POST to the moment the export finished: its record's ``finished_at``,
  read from the database with microseconds (the records show whole seconds), on the
  same clock. Shown too: the time to the poll that sees ``finished`` (the same, rounded
  up to the polling interval: with 1 s polls nothing is seen before 1 s) and the
  server-side ``created_at`` to ``finished_at``. The file is checked: row count, one
  object a line, the keys, and its sha256 and size against the record.
- baseline: the database's shell dumping the same rows (comments joined to users, rooms
  and the parent comment), window and order, to a file: ``sqlite3 -json`` on SQLite,
  ``psql -c "COPY (SELECT json_build_object(...) ...) TO STDOUT"`` on PostgreSQL, timed
  as the whole command.
- memory: the server's peak resident memory (VmHWM of the serve process and any child,
  reset with ``/proc/<pid>/clear_refs`` before each export; the largest of the runs).

- client: ``chatferry export create --type comments --wait --download DIR --json`` as a
  process (its start-up included), timed as the whole command; the export's server-side
  time (created_at -> finished_at, read from the database with microseconds: the record
  shows whole seconds) and the time of one more download of the same file (a streamed
  GET written and fsynced, as the client writes it) are taken from it; what is left is
  the slack: wall - server-side - download. To show where the slack goes, the start-up
  of ``chatferry export create --help`` (a fresh interpreter) and the time to hash and
  parse the saved file (what the client's check does) are shown beside it.

Targets (issues 11 and 23): SQLite >= 0.8 x the shell at every size; PostgreSQL >= 0.9 x
``psql`` COPY at every size, judged on POST to finished; on both, peak memory at the
largest size within 30 MB of that at the smallest; the client's slack <= 0.3 s at
200,000 comments and more (issue 23 target 2; best of ``--repeat``). ``--sqlite-only`` /
``--postgres-only`` run one database. ``--small`` (2,000 and 10,000 comments, one run,
0.25 s polls) checks that the bench works and judges nothing. ``--profile DIR`` first
runs one more export per size with py-spy sampling the server (not measured), keeps its
stacks in DIR (py-spy's raw format: flamegraph.pl or speedscope read it) and prints the
busiest thread's top functions.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import create_engine, text

from benchlib import (
    API,
    DEFAULT_POSTGRES,
    Server,
    Summary,
    argument_parser,
    chatferry_env,
    count_lines,
    headers,
    load_average,
    mb,
    peak_kb,
    postgres_schemas,
    py_spy,
    require_tool,
    reset_peak,
    run_main,
    seconds_list,
    serve,
    top_frames,
    vacuum_analyze,
)
from chatferry.apps.service import create_app
from chatferry.db.engine import transaction
from chatferry.demo.generate import DemoSpec, generate
from chatferry.runtime import build_runtime
from chatferry.settings import Settings

SQLITE_TARGET = 0.8
POSTGRES_TARGET = 0.9
MEMORY_TARGET_MB = 30.0
SECRET = "bench-secret-0123456789"
DEMO_USERS, DEMO_ROOMS, DEMO_DAYS = 2000, 1000, 30
WINDOW_DAYS = 29  # the window's end_date - start_date (at most 30 by default)
EXPORT_TIMEOUT_SECONDS = 1800
SLACK_TARGET_SECONDS = 0.3
SLACK_JUDGED_FROM_ROWS = 200_000
COMMENT_KEYS = [
    "Message",
    "DisableLinkPreview",
    "Type",
    "UniqueId",
    "CreatorEmail",
    "RoomUniqueId",
    "CreatedAt",
    "Payload",
    "ParentCommentUniqueId",
]

# Both baselines: the export's rows (comments with their creator's email, their room's
# unique id and their parent's unique id) in the export's window and order.
JOINS_AND_WINDOW = """
FROM comments AS c
JOIN users AS u ON u.id = c.user_id
JOIN rooms AS r ON r.id = c.room_id
LEFT OUTER JOIN comments AS p ON p.id = c.parent_id
WHERE c.app_pk = {app_pk} AND c.created_at >= '{lower}' AND c.created_at < '{upper}'
ORDER BY c.created_at, c.id
"""

SQLITE_BASELINE = (
    """SELECT c.message AS Message, c.disable_link_preview AS DisableLinkPreview,
       c.type AS Type, c.unique_id AS UniqueId, u.email AS CreatorEmail,
       r.unique_id AS RoomUniqueId, c.created_at AS CreatedAt, c.payload AS Payload,
       coalesce(p.unique_id, '') AS ParentCommentUniqueId"""
    + JOINS_AND_WINDOW
)

POSTGRES_BASELINE = (
    """COPY (SELECT json_build_object(
       'Message', c.message, 'DisableLinkPreview', c.disable_link_preview, 'Type', c.type,
       'UniqueId', c.unique_id, 'CreatorEmail', u.email, 'RoomUniqueId', r.unique_id,
       'CreatedAt', c.created_at, 'Payload', c.payload::json,
       'ParentCommentUniqueId', coalesce(p.unique_id, ''))"""
    + JOINS_AND_WINDOW
    + ") TO STDOUT"
)


# ---------------------------------------------------------------- the data


@dataclass(frozen=True)
class Backend:
    name: str  # "SQLite" or "PostgreSQL"
    data_dir: Path
    database_url: str | None  # None: SQLite under the data dir

    @property
    def sqlite_path(self) -> Path:
        return (self.data_dir / "chatferry.db").resolve()

    def sqlalchemy_url(self) -> str:
        return Settings(
            data_dir=self.data_dir, database_url=self.database_url
        ).resolved_database_url()


@dataclass(frozen=True)
class BenchApp:
    rows: int
    app_id: str
    app_pk: int
    start_date: date
    end_date: date

    @property
    def bounds(self) -> tuple[str, str]:
        """The window as stored naive UTC text: [start 00:00, end + 1 day 00:00)."""
        upper = self.end_date + timedelta(days=1)
        return f"{self.start_date} 00:00:00.000000", f"{upper} 00:00:00.000000"


def fill(backend: Backend, sizes: list[int]) -> list[BenchApp]:
    """One app per size, with its demo comments; the window that holds them all."""
    settings = Settings(data_dir=backend.data_dir, database_url=backend.database_url)
    rt = build_runtime(settings)
    apps = []
    try:
        for rows in sizes:
            today = datetime.now(UTC).date()
            with transaction(rt.sessions) as session:
                app, _ = create_app(
                    session, rt.secrets, f"bench {rows}", app_id=f"bench-{rows}", secret=SECRET
                )
                spec = DemoSpec(DEMO_USERS, DEMO_ROOMS, rows, DEMO_DAYS, seed=rows)
                generate(session, app.id, spec)
                app_pk = app.id
            start = today - timedelta(days=WINDOW_DAYS)
            apps.append(BenchApp(rows, f"bench-{rows}", app_pk, start, today))
    finally:
        rt.close()
    settle(backend)
    for app in apps:
        check_window(backend, app)
    return apps


def settle(backend: Backend) -> None:
    """After the bulk load: PostgreSQL vacuumed and analysed, SQLite's WAL checkpointed."""
    if backend.database_url:
        vacuum_analyze(backend.database_url, ["users", "rooms", "comments"])
        return
    engine = create_engine(backend.sqlalchemy_url())
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()


def check_window(backend: Backend, app: BenchApp) -> None:
    """The window holds exactly the app's rows (the demo data spreads them over the
    last 21 days; the window is the last 30)."""
    lower, upper = app.bounds
    query = text(
        "SELECT count(*) FROM comments WHERE app_pk = :pk "
        "AND created_at >= :lower AND created_at < :upper"
    )
    if backend.database_url:
        query = text(
            "SELECT count(*) FROM comments WHERE app_pk = :pk "
            "AND created_at >= CAST(:lower AS timestamp) AND created_at < CAST(:upper AS timestamp)"
        )
    engine = create_engine(backend.sqlalchemy_url())
    with engine.connect() as conn:
        found = conn.scalar(query, {"pk": app.app_pk, "lower": lower, "upper": upper})
    engine.dispose()
    assert found == app.rows, f"the window holds {found} rows, expected {app.rows}"


# ---------------------------------------------------------------- one export


@dataclass
class ExportRun:
    finished_seconds: float  # POST sent -> the record's finished_at (the judged figure)
    seen_seconds: float  # POST sent -> the poll that saw "finished"
    server_seconds: float  # created_at -> finished_at in the database
    polls: int
    peak_kib: int
    before_kib: int
    size: int


def poll_until_finished(
    client: httpx.Client, app: BenchApp, unique_id: str, sent: float, poll: float
) -> tuple[float, int, dict[str, Any]]:
    """Polls every ``poll`` s counted from ``sent``; returns (seconds, polls, record)."""
    polls = 0
    while True:
        polls += 1
        time.sleep(max(0.0, sent + polls * poll - time.perf_counter()))
        response = client.get(f"{API}/exports/{unique_id}", headers=headers(app.app_id, SECRET))
        response.raise_for_status()
        record = response.json()["results"]["backup_history"]
        if record["status"] == "finished":
            return time.perf_counter() - sent, polls, record
        if record["status"] not in ("started", "scheduled"):
            raise SystemExit(f"the export ended {record['status']}: {record['error_message']}")
        if polls * poll > EXPORT_TIMEOUT_SECONDS:
            raise SystemExit(f"the export did not finish in {EXPORT_TIMEOUT_SECONDS} s")


def recorded_times(backend: Backend, unique_id: str) -> tuple[datetime, datetime]:
    """The export's created_at and finished_at (aware UTC, with microseconds), from the
    database (the records show whole seconds)."""
    engine = create_engine(backend.sqlalchemy_url())
    with engine.connect() as conn:
        created, finished = conn.execute(
            text("SELECT created_at, finished_at FROM exports WHERE unique_id = :u"),
            {"u": unique_id},
        ).one()
    engine.dispose()
    start, end = (datetime.fromisoformat(str(value)) for value in (created, finished))
    return start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)


def export_once(
    backend: Backend, server: Server, client: httpx.Client, app: BenchApp, poll: float
) -> ExportRun:
    before = reset_peak(server.pid)
    body = {"type": "comments", "start_date": str(app.start_date), "end_date": str(app.end_date)}
    sent_at, sent = time.time(), time.perf_counter()
    response = client.post(f"{API}/exports", json=body, headers=headers(app.app_id, SECRET))
    if response.status_code != 200:
        raise SystemExit(f"POST /exports refused: {response.status_code} {response.text}")
    unique_id = response.json()["results"]["unique_id"]
    seen, polls, record = poll_until_finished(client, app, unique_id, sent, poll)
    peak = peak_kb(server.pid)
    assert record["total_rows"] == app.rows, record
    path = backend.data_dir / "files" / "exports" / app.app_id / f"{unique_id}.json"
    check_export_file(path, app.rows, record)
    created, finished = recorded_times(backend, unique_id)
    client.delete(f"{API}/exports/{unique_id}", headers=headers(app.app_id, SECRET))
    path.unlink(missing_ok=True)
    to_finished = finished.timestamp() - sent_at
    on_server = (finished - created).total_seconds()
    return ExportRun(to_finished, seen, on_server, polls, peak, before, record["size"])


def check_export_file(path: Path, rows: int, record: dict[str, Any]) -> None:
    """One object a line, ``rows`` of them with the import format's keys; the sha256
    and size the record gives."""
    digest, lines, size = hashlib.sha256(), 0, 0
    first = last = b""
    with path.open("rb") as source:
        for line in source:
            digest.update(line)
            lines += 1
            size += len(line)
            if lines == 2:
                first = line
            if line.startswith(b"{"):
                last = line
    assert lines == rows + 2, f"{lines - 2} lines of objects, expected {rows}"
    assert size == record["size"] and digest.hexdigest() == record["sha256"], "size or sha256"
    for line in (first, last):
        obj = orjson.loads(line.rstrip(b",\n"))
        assert list(obj) == COMMENT_KEYS, f"keys {list(obj)}"
        assert obj["CreatedAt"].endswith("Z")


# ---------------------------------------------------------------- the client's wait


@dataclass
class ClientRun:
    wall: float  # `chatferry export create --wait --download` as a process
    server: float  # created_at -> finished_at in the database
    download: float  # one more download of the same file
    startup: float  # `chatferry export create --help` as a process
    check: float  # sha256 and a JSON parse of the saved file

    @property
    def slack(self) -> float:
        return self.wall - self.server - self.download


def client_once(backend: Backend, server: Server, app: BenchApp) -> ClientRun:
    """The user's command, timed whole; its export's server-side time and download."""
    env = chatferry_env(backend.data_dir, backend.database_url)
    env.update(CHATFERRY_SERVER=server.url, QISCUS_SDK_APP_ID=app.app_id, QISCUS_SDK_SECRET=SECRET)
    out = backend.data_dir / "client"
    command = [sys.executable, "-m", "chatferry", "export", "create", "--type", "comments",
               "--start-date", str(app.start_date), "--end-date", str(app.end_date),
               "--wait", "--download", str(out), "--json"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"chatferry export create exited {done.returncode}: {done.stderr!r}")
    answer = orjson.loads(done.stdout)
    record, saved = answer["export"], Path(answer["file"]["path"])
    assert answer["file"]["rows"] == app.rows and saved.stat().st_size == record["size"]
    download = timed_download(record["download_url"], out / "again.json")
    check = timed_check(saved)
    started = time.perf_counter()
    subprocess.run([*command[:5], "--help"], env=env, capture_output=True, check=True)
    startup = time.perf_counter() - started
    created, finished = recorded_times(backend, record["unique_id"])
    httpx.delete(f"{server.url}{API}/exports/{record['unique_id']}",
                 headers=headers(app.app_id, SECRET), timeout=60)  # fmt: skip
    for path in out.iterdir():
        path.unlink()
    return ClientRun(wall, (finished - created).total_seconds(), download, startup, check)


def timed_check(path: Path) -> float:
    """Hashing and parsing the saved file, as the client's check of the download does."""
    started = time.perf_counter()
    data = path.read_bytes()
    hashlib.sha256(data).hexdigest()
    orjson.loads(data)
    return time.perf_counter() - started


def timed_download(url: str, dest: Path) -> float:
    """A streamed GET of ``url`` into ``dest`` (fsynced), timed."""
    started = time.perf_counter()
    with httpx.stream("GET", url, timeout=120) as response, dest.open("wb") as sink:
        response.raise_for_status()
        for chunk in response.iter_bytes(1 << 20):
            sink.write(chunk)
        sink.flush()
        os.fsync(sink.fileno())
    return time.perf_counter() - started


# ---------------------------------------------------------------- the baseline


@dataclass
class BaselineRun:
    seconds: float
    size: int


def baseline_command(backend: Backend, app: BenchApp) -> list[str]:
    lower, upper = app.bounds
    if backend.database_url:
        sql = POSTGRES_BASELINE.format(app_pk=app.app_pk, lower=lower, upper=upper)
        psql = require_tool("psql", "postgresql-client")
        return [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", backend.database_url, "-c", sql]
    sql = SQLITE_BASELINE.format(app_pk=app.app_pk, lower=lower, upper=upper)
    return [require_tool("sqlite3", "sqlite3"), "-json", "-readonly", str(backend.sqlite_path), sql]


def baseline_once(backend: Backend, app: BenchApp) -> BaselineRun:
    """The shell's dump into a file, timed as the whole command; one line a row."""
    out = backend.data_dir / "baseline.json"
    command = baseline_command(backend, app)
    with out.open("wb") as sink:
        started = time.perf_counter()
        subprocess.run(command, stdout=sink, check=True)
        seconds = time.perf_counter() - started
    lines = count_lines(out)
    assert lines == app.rows, f"the baseline wrote {lines} lines, expected {app.rows}"
    size = out.stat().st_size
    out.unlink()
    return BaselineRun(seconds, size)


# ---------------------------------------------------------------- one size


@dataclass
class SizeResult:
    app: BenchApp
    exports: list[ExportRun]
    baselines: list[BaselineRun]
    clients: list[ClientRun]

    @property
    def finished(self) -> float:
        return min(r.finished_seconds for r in self.exports)

    @property
    def seen(self) -> float:
        return min(r.seen_seconds for r in self.exports)

    @property
    def server(self) -> float:
        return min(r.server_seconds for r in self.exports)

    @property
    def baseline(self) -> float:
        return min(r.seconds for r in self.baselines)

    @property
    def client(self) -> ClientRun:
        return min(self.clients, key=lambda r: r.slack)

    @property
    def peak_kib(self) -> int:
        return max(r.peak_kib for r in self.exports)


def measure_size(backend: Backend, app: BenchApp, args: argparse.Namespace) -> SizeResult:
    """A fresh server for the size; exports and baselines in turns, ``repeat`` of each."""
    env = chatferry_env(backend.data_dir, backend.database_url, export_max_comments=max(args.rows))
    log = backend.data_dir / f"serve-{app.rows}.log"
    result = SizeResult(app, [], [], [])
    with serve(env, log) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        client.get(f"{API}/exports", headers=headers(app.app_id, SECRET)).raise_for_status()
        if args.profile:
            profile_export(backend, server, client, app, args)
        for _ in range(args.repeat):
            result.exports.append(export_once(backend, server, client, app, args.poll))
            result.baselines.append(baseline_once(backend, app))
            result.clients.append(client_once(backend, server, app))
    report_size(backend, result, args)
    return result


def profile_export(
    backend: Backend, server: Server, client: httpx.Client, app: BenchApp, args: argparse.Namespace
) -> None:
    """One extra export (not among the measured ones) with py-spy sampling the server."""
    args.profile.mkdir(parents=True, exist_ok=True)
    out = args.profile / f"export-{backend.name.lower()}-{app.rows}.txt"
    with py_spy(server.pid, out):
        run = export_once(backend, server, client, app, args.poll)
    print(f"--- profile of one {backend.name} export of {app.rows:,} comments ({out})")
    print(f"  server-side {run.server_seconds:.3f} s under py-spy")
    for line in top_frames(out):
        print(f"  {line}")


def report_size(backend: Backend, result: SizeResult, args: argparse.Namespace) -> None:
    rows = result.app.rows
    tool = "psql COPY (json_build_object)" if backend.database_url else "sqlite3 -json"
    runs = result.exports
    print(f"--- {backend.name}, {rows:,} comments (best of {args.repeat}; load {load_average()})")
    print(
        f"  export, POST sent -> the record's finished_at:          {result.finished:8.3f} s "
        f"{rows / result.finished:>10,.0f} rows/s  "
        f"(runs {seconds_list(r.finished_seconds for r in runs)})"
    )
    print(
        f"  export, POST -> poll that sees finished ({args.poll:g} s polls): "
        f"{result.seen:8.3f} s {rows / result.seen:>10,.0f} rows/s  "
        f"(runs {seconds_list(r.seen_seconds for r in runs)}; polls {[r.polls for r in runs]})"
    )
    on_server = seconds_list(r.server_seconds for r in runs)
    print(
        f"  export, server-side created_at -> finished_at:          {result.server:8.3f} s "
        f"{rows / result.server:>10,.0f} rows/s  (runs {on_server})"
    )
    print(
        f"  baseline, {tool:<45}{result.baseline:8.3f} s {rows / result.baseline:>10,.0f} "
        f"rows/s  (runs {seconds_list(r.seconds for r in result.baselines)})"
    )
    print(
        f"  ratio export/baseline: {result.baseline / result.finished:.2f} POST to finished, "
        f"{result.baseline / result.seen:.2f} as seen by the polls, "
        f"{result.baseline / result.server:.2f} server-side; file {runs[0].size / 1e6:.1f} MB "
        f"(baseline's {result.baselines[0].size / 1e6:.1f} MB), rows, keys and sha256 checked"
    )
    if result.baseline < args.poll:
        print(
            f"  (with {args.poll:g} s polls nothing is seen finished before {args.poll:g} s: "
            f"the best ratio as seen at this size is {result.baseline / args.poll:.2f})"
        )
    report_client(result)
    before = max(r.before_kib for r in runs)
    print(f"  server peak memory {mb(result.peak_kib)} (VmHWM; {mb(before)} before the export)")


def report_client(result: SizeResult) -> None:
    best, runs = result.client, result.clients
    print(
        f"  client, export create --wait --download (wall):        {best.wall:8.3f} s "
        f"= server-side {best.server:.3f} s + download {best.download:.3f} s "
        f"+ slack {best.slack:.3f} s  (slack of runs {seconds_list(r.slack for r in runs)}; "
        f"walls {seconds_list(r.wall for r in runs)})"
    )
    print(
        f"  client, within the slack: start-up (export create --help) {best.startup:.3f} s, "
        f"hash + JSON parse of the file {best.check:.3f} s"
    )


# ---------------------------------------------------------------- the report


def summarise(summary: Summary, backend: Backend, results: list[SizeResult], poll: float) -> None:
    target = POSTGRES_TARGET if backend.database_url else SQLITE_TARGET
    tool = "`psql` COPY" if backend.database_url else "`sqlite3 -json`"
    for result in results:
        rows = result.app.rows
        summary.add(
            f"{backend.name} export {rows:,} comments, POST to finished (polled every {poll:g} s)",
            f"{result.finished:.2f} s, {rows / result.finished:,.0f} rows/s",
            f"{tool} {result.baseline:.2f} s, {rows / result.baseline:,.0f} rows/s",
            f"{result.baseline / result.finished:.2f}",
            f">= {target}",
            result.baseline / result.finished >= target,
        )
        summary.add(
            f"{backend.name} export {rows:,}, POST to the poll that sees finished",
            f"{result.seen:.2f} s, {rows / result.seen:,.0f} rows/s",
            "",
            f"{result.baseline / result.seen:.2f}",
            f">= {target}",
            result.baseline / result.seen >= target,
            counted=False,
        )
        summary.add(
            f"{backend.name} export {rows:,}, server-side created_at -> finished_at",
            f"{result.server:.2f} s, {rows / result.server:,.0f} rows/s",
            "",
            f"{result.baseline / result.server:.2f}",
            f">= {target}",
            result.baseline / result.server >= target,
            counted=False,
        )
        client_row(summary, backend, result)
    memory_row(summary, backend, results)


def client_row(summary: Summary, backend: Backend, result: SizeResult) -> None:
    rows, best = result.app.rows, result.client
    figure = f"{backend.name} `export create --wait --download` {rows:,}: slack"
    value = f"{best.slack:.3f} s (wall {best.wall:.3f} s)"
    baseline = f"server-side {best.server:.3f} s + download {best.download:.3f} s"
    ok = best.slack <= SLACK_TARGET_SECONDS
    if rows < SLACK_JUDGED_FROM_ROWS:
        summary.note(figure, value, baseline)
        return
    summary.add(figure, value, baseline, "", f"<= {SLACK_TARGET_SECONDS} s", ok)


def memory_row(summary: Summary, backend: Backend, results: list[SizeResult]) -> None:
    small, large = results[0], results[-1]
    growth = (large.peak_kib - small.peak_kib) / 1024
    figure = f"{backend.name} server peak memory, {large.app.rows:,} vs {small.app.rows:,}"
    value = f"{mb(large.peak_kib)} vs {mb(small.peak_kib)} ({growth:+.1f} MB)"
    if small is large:
        summary.note(figure, value)
        return
    summary.add(figure, value, "", "", f"<= +{MEMORY_TARGET_MB:.0f} MB", growth <= MEMORY_TARGET_MB)


@contextmanager
def backends(root: Path, args: argparse.Namespace) -> Iterator[list[Backend]]:
    sqlite = [] if args.postgres_only else [Backend("SQLite", root / "sqlite", None)]
    with postgres_schemas(None if args.sqlite_only else args.postgres) as schemas:
        yield sqlite + [Backend("PostgreSQL", root / "postgresql", url) for url in schemas]


def run(args: argparse.Namespace, root: Path, summary: Summary) -> None:
    with backends(root, args) as found:
        for backend in found:
            started = time.perf_counter()
            apps = fill(backend, args.rows)
            print(
                f"=== {backend.name}: {', '.join(f'{a.rows:,}' for a in apps)} comments "
                f"({DEMO_USERS:,} users, {DEMO_ROOMS:,} rooms an app) generated in "
                f"{time.perf_counter() - started:.0f} s"
            )
            results = [measure_size(backend, app, args) for app in apps]
            summarise(summary, backend, results, args.poll)


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[200_000, 1_000_000], help="export sizes"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each figure (best)")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls")
    parser.add_argument(
        "--postgres", default=DEFAULT_POSTGRES, metavar="URL", help="a fresh schema is used here"
    )
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--postgres-only", action="store_true", help="skip SQLite")
    parser.add_argument("--small", action="store_true", help="2,000 and 10,000 rows, 1 run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="first run one extra export per size under py-spy; its stacks go to DIR",
    )
    args = parser.parse_args()
    if args.small:
        args.rows, args.repeat, args.poll = [2_000, 10_000], 1, 0.25
    args.rows = sorted(set(args.rows))
    return args


if __name__ == "__main__":
    run_main("export_bench", parse_args, run)
