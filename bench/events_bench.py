"""Job-end events: from an export's finished_at to the answer of a waiting GET and to a
webhook received by a local receiver, and the memory of 1,000 waiting clients.

Run: ``.venv/bin/python bench/events_bench.py [--exports 40] [--waiters 1000]
[--postgres URL] [--backends sqlite,postgresql] [--small]`` (``--small``: 5 exports and
100 waiters unless given, judges nothing).

For each backend, through real ``chatferry serve`` processes (SQLite: one embedded
serve; PostgreSQL: ``serve --no-worker`` plus ``chatferry worker``, so the wait is
woken across processes by NOTIFY):

1. An app with 60 users and a webhook (``export.finished``) to a receiver on 127.0.0.1
   that notes the arrival time of each POST. Each export takes ~0.2 s (batches of 20
   rows with a 0.05 s pause: the bench hook ``CHATFERRY_EXPORT_BATCH_DELAY_SECONDS``),
   so the ``GET /exports/{id}?wait=30`` sent right after the create is waiting when it
   ends. ``finished_at`` is read from the database (microseconds; the API shows
   seconds). Timed: finished_at -> the wait's answer (target p50 < 100 ms) and
   finished_at -> the webhook's arrival (target p50 < 500 ms).
2. N clients (one asyncio process, N connections) wait on an export that will not run
   for an hour (``run_at``); the API process's resident memory and threads are read
   before and once every client waits; then the export is deleted, and the time until
   every waiter has its answer (a 404: the record is gone) is shown.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from benchlib import (
    API,
    DEFAULT_POSTGRES,
    Summary,
    argument_parser,
    chatferry_env,
    fresh_schemas,
    headers,
    mb,
    postgres_problem,
    run_main,
    serve,
    status_kb,
    stop_process,
)

APP_ID, SECRET = "events-bench", "events-bench-secret-0001"
HEADERS = headers(APP_ID, SECRET)
TARGET_WAIT_P50_MS = 100.0
TARGET_WEBHOOK_P50_MS = 500.0


class Arrivals:
    """The receiver's log: export unique_id -> arrival time (time.time())."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.lock = threading.Lock()


def start_receiver(arrivals: Arrivals) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            now = time.time()
            unique_id = json.loads(body)["data"].get("unique_id", "")
            with arrivals.lock:
                arrivals.at.setdefault(unique_id, now)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def chatferry(env: dict[str, str], *args: str) -> str:
    command = [sys.executable, "-m", "chatferry", *args]
    return subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout


def finished_at(database_url: str, unique_id: str) -> float:
    """The export's stored finished_at (microseconds) as Unix time."""
    query = "SELECT finished_at FROM exports WHERE unique_id = "
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            value = conn.execute(query + "?", (unique_id,)).fetchone()[0]
        moment = datetime.fromisoformat(value)
    else:
        import psycopg

        with psycopg.connect(database_url) as conn:
            row = conn.execute(query + "%s", (unique_id,)).fetchone()
        assert row is not None
        moment = row[0]
    return moment.replace(tzinfo=moment.tzinfo or UTC).timestamp()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def time_ends(api: str, database_url: str, exports: int, arrivals: Arrivals) -> dict[str, Any]:
    """Runs the exports one by one; the delays after each one's finished_at."""
    waits: list[float] = []
    hooks: list[float] = []
    with httpx.Client(base_url=api, headers=HEADERS, timeout=60) as http:
        for _ in range(exports):
            created = http.post("/exports", json={"type": "users"}).json()["results"]
            unique_id = created["unique_id"]
            answer = http.get(f"/exports/{unique_id}", params={"wait": 30})
            answered = time.time()
            assert answer.json()["results"]["backup_history"]["status"] == "finished"
            end = finished_at(database_url, unique_id)
            waits.append(answered - end)
            deadline = time.monotonic() + 30
            while unique_id not in arrivals.at and time.monotonic() < deadline:
                time.sleep(0.005)
            hooks.append(arrivals.at[unique_id] - end)
    return {"waits": waits, "hooks": hooks}


async def _waiter(http: httpx.AsyncClient, unique_id: str, answers: list[float]) -> None:
    response = await http.get(f"/exports/{unique_id}", params={"wait": 60})
    assert response.status_code in (200, 404), response.text
    answers.append(time.monotonic())


async def many_waiters(api: str, api_pid: int, count: int) -> dict[str, float]:
    """``count`` clients waiting at once: the API's memory and threads meanwhile."""
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(base_url=api, headers=HEADERS, timeout=90, limits=limits) as http:
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        created = await http.post("/exports", json={"type": "users", "run_at": later})
        unique_id = created.json()["results"]["unique_id"]
        await asyncio.sleep(1)
        before = status_kb(api_pid, "VmRSS"), status_kb(api_pid, "Threads")
        answers: list[float] = []
        tasks = [asyncio.create_task(_waiter(http, unique_id, answers)) for _ in range(count)]
        await asyncio.sleep(max(3.0, count / 200))  # every request in and waiting
        during = status_kb(api_pid, "VmRSS"), status_kb(api_pid, "Threads")
        assert not answers, "a waiter was answered before its export ended"
        deleted_at = time.monotonic()
        await http.delete(f"/exports/{unique_id}")
        await asyncio.gather(*tasks)
    return {
        "rss_before_kb": before[0],
        "rss_during_kb": during[0],
        "threads_before": before[1],
        "threads_during": during[1],
        "all_answered_s": max(answers) - deleted_at,
    }


def run_backend(name: str, database_url: str, args: Any, work: Path) -> dict[str, Any]:
    env = chatferry_env(
        work / name,
        database_url,
        webhooks_allow_http="true",
        webhooks_allow_private="true",
        export_batch_size=20,
        export_batch_delay_seconds=0.05,
        http_max_connections=args.waiters + 100,
        rate_limit_app_requests_per_second=0,
        job_poll_seconds=1,
    )
    arrivals = Arrivals()
    receiver = start_receiver(arrivals)
    postgres = name == "postgresql"
    with ExitStack() as stack:
        server = stack.enter_context(
            serve(env, work / f"{name}-serve.log", *(["--no-worker"] if postgres else []))
        )
        chatferry(env, "apps", "create", "--name", "Bench", "--app-id", APP_ID, "--secret", SECRET)
        chatferry(env, "demo-data", "--app-id", APP_ID, "--users", "60", "--rooms", "1",
                  "--comments", "0", "--days", "10")  # fmt: skip
        if postgres:
            log = (work / f"{name}-worker.log").open("ab")
            worker = subprocess.Popen([sys.executable, "-m", "chatferry", "worker"], env=env,
                                      stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
            stack.callback(stop_process, worker)
        api = server.url + API
        hook = {"url": f"http://127.0.0.1:{receiver.server_port}/hooks",
                "events": ["export.finished"]}  # fmt: skip
        httpx.post(f"{api}/webhooks", json=hook, headers=HEADERS, timeout=30).raise_for_status()
        time_ends(api, database_url, 2, arrivals)  # warm-up
        timed = time_ends(api, database_url, args.exports, arrivals)
        memory = asyncio.run(many_waiters(api, server.pid, args.waiters))
    receiver.shutdown()
    return {**timed, **memory}


def report(summary: Summary, name: str, result: dict[str, Any], waiters: int) -> None:
    waits = [s * 1000 for s in result["waits"]]
    hooks = [s * 1000 for s in result["hooks"]]
    wait_p50, hook_p50 = statistics.median(waits), statistics.median(hooks)
    print(f"\n{name}: finished_at -> wait answer ms: " + ", ".join(f"{w:.1f}" for w in waits))
    print(f"{name}: finished_at -> webhook ms: " + ", ".join(f"{h:.1f}" for h in hooks))
    summary.add(f"{name}: finished_at -> waiting GET, p50", f"{wait_p50:.1f} ms", "", "",
                f"< {TARGET_WAIT_P50_MS:.0f} ms", wait_p50 < TARGET_WAIT_P50_MS)  # fmt: skip
    summary.note(f"{name}: finished_at -> waiting GET, p99", f"{percentile(waits, 0.99):.1f} ms")
    summary.add(f"{name}: finished_at -> webhook received, p50", f"{hook_p50:.1f} ms", "", "",
                f"< {TARGET_WEBHOOK_P50_MS:.0f} ms", hook_p50 < TARGET_WEBHOOK_P50_MS)  # fmt: skip
    summary.note(
        f"{name}: finished_at -> webhook received, p99", f"{percentile(hooks, 0.99):.1f} ms"
    )
    growth = result["rss_during_kb"] - result["rss_before_kb"]
    summary.note(
        f"{name}: API memory with {waiters} waiting clients",
        f"{mb(result['rss_during_kb'])} (+{mb(growth)}, {growth / waiters:.1f} KiB each)",
        mb(result["rss_before_kb"]),
    )
    summary.note(f"{name}: API threads, idle -> {waiters} waiting",
                 f"{result['threads_before']} -> {result['threads_during']}")  # fmt: skip
    summary.note(f"{name}: all {waiters} waiters answered after the delete",
                 f"{result['all_answered_s'] * 1000:.0f} ms")  # fmt: skip


def parse_args() -> Any:
    parser = argument_parser(__doc__)
    parser.add_argument("--exports", type=int, help="40 (5 with --small)")
    parser.add_argument("--waiters", type=int, help="1000 (100 with --small)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    args.exports = args.exports or (5 if args.small else 40)
    args.waiters = args.waiters or (100 if args.small else 1000)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 4 * args.waiters + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return args


def body(args: Any, work: Path, summary: Summary) -> None:
    for name in args.backends.split(","):
        if name == "sqlite":
            url = f"sqlite:///{work / 'chatferry.db'}"
            report(summary, name, run_backend(name, url, args, work), args.waiters)
            continue
        problem = postgres_problem(args.postgres)
        if problem:
            print(f"postgresql skipped: {problem}")
            continue
        with fresh_schemas(args.postgres) as (url,):
            report(summary, name, run_backend(name, url, args, work), args.waiters)


def main() -> None:
    run_main("events_bench", parse_args, body)


if __name__ == "__main__":
    main()
