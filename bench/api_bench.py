"""API benchmark: authenticated ``GET /exports/{id}`` throughput against ``/healthz``
throughput on the same ``chatferry serve``, under a bounded load of 20 connections.

Run: ``.venv/bin/python bench/api_bench.py [--seconds 10] [--repeat 3] [--connections 20]
[--client wrk|httpx] [--postgres URL] [--small] [--keep] [--profile DIR]``

One ``chatferry serve`` (default settings, SQLite; PostgreSQL in a fresh schema with
``--postgres``) holds an app with 200 demo users and one finished users export. The load
client keeps exactly ``--connections`` keep-alive connections busy for ``--seconds``:
``wrk -t1 -c20`` when wrk is installed (``apt-get install -y wrk``; it costs the server
little CPU), else 20 threads sharing an httpx client with a pool of 20 connections.

1. Throughput, with the per-app rate limit off (CHATFERRY_RATE_LIMIT_APP_REQUESTS_PER_SECOND
   =0): ``/healthz`` (no authentication, no database) and ``GET /exports/{id}`` (the
   secret check, its cached Argon2 verification, the app and export rows, a signed
   download link) in turns, best of ``--repeat`` each. Also shown: the server's CPU
   time per request (``/proc``) and the latency percentiles. Target (issue 11):
   GET /exports/{id} >= 0.5 x /healthz.
2. The same GET with the rate limit at its default (200 requests a second per app), once:
   answered requests a second, and how many got ``429``. Not a target: it shows what a
   tenant gets by default.

``--small`` (1 s runs, one each) checks that the bench works and judges nothing.
``--profile DIR`` first runs the GET load once more under py-spy (not measured) and prints
where the server's threads spent their samples.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import benchlib
from benchlib import (
    API,
    Server,
    Summary,
    argument_parser,
    chatferry_env,
    headers,
    postgres_schemas,
    process_tree,
    py_spy,
    run_main,
    serve,
    top_frames,
)
from chatferry.apps.service import create_app
from chatferry.db.engine import transaction
from chatferry.demo.generate import DemoSpec, generate
from chatferry.runtime import build_runtime
from chatferry.settings import Settings

TARGET = 0.5
APP_ID, SECRET = "bench-api", "bench-secret-0123456789"
DEMO = DemoSpec(users=200, rooms=20, comments=0, days=30, seed=3)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- setup


def fill(data_dir: Path, database_url: str | None) -> None:
    rt = build_runtime(Settings(data_dir=data_dir, database_url=database_url))
    try:
        with transaction(rt.sessions) as session:
            app, _ = create_app(session, rt.secrets, "bench api", app_id=APP_ID, secret=SECRET)
            generate(session, app.id, DEMO)
    finally:
        rt.close()


def finished_export(client: httpx.Client) -> str:
    """A users export, created and waited for; its unique id."""
    auth = headers(APP_ID, SECRET)
    response = client.post(f"{API}/exports", json={"type": "users"}, headers=auth)
    response.raise_for_status()
    unique_id: str = response.json()["results"]["unique_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record = client.get(f"{API}/exports/{unique_id}", headers=auth).json()
        if record["results"]["backup_history"]["status"] == "finished":
            return unique_id
        time.sleep(0.1)
    raise SystemExit("the export did not finish in 60 s")


# ---------------------------------------------------------------- load


@dataclass
class Load:
    """One load run: what came back, how fast, and the server's CPU for it."""

    path: str
    seconds: float
    statuses: Counter[int]
    p50_ms: float
    p99_ms: float
    errors: int = 0
    server_cpu: float = 0.0
    client: str = ""

    @property
    def ok(self) -> int:
        return self.statuses[200]

    @property
    def ok_per_second(self) -> float:
        return self.ok / self.seconds

    @property
    def cpu_ms(self) -> float:
        """Server CPU per answered request (any status)."""
        return self.server_cpu / max(1, sum(self.statuses.values())) * 1000


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process (and its children, if it has any)."""
    total = 0.0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


WRK_DURATION = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _wrk_ms(text: str, percentile: str) -> float:
    found = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    return float(found[1]) * WRK_DURATION[found[2]] * 1000 if found else float("nan")


def wrk_load(url: str, path: str, extra: dict[str, str], seconds: float, conns: int) -> Load:
    command = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    for name, value in extra.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url + path], capture_output=True, text=True, check=True).stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", out)
    assert total, out
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    requests, bad = int(total[1]), int(non_2xx[1]) if non_2xx else 0
    # wrk does not say which status the non-2xx were; under the rate limit they are 429s.
    statuses = Counter({200: requests - bad, 429: bad} if bad else {200: requests})
    return Load(
        path,
        float(total[2]) * WRK_DURATION[total[3]],
        statuses,
        _wrk_ms(out, "50"),
        _wrk_ms(out, "99"),
        sum(int(n) for n in errors.groups()) if errors else 0,
        client=f"wrk -t1 -c{conns}",
    )


@dataclass
class _Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _hammer(
    client: httpx.Client, path: str, extra: dict[str, str], until: float, t: _Tally
) -> None:
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    errors = 0
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            statuses[client.get(path, headers=extra).status_code] += 1
        except httpx.HTTPError:
            errors += 1
        latencies.append(time.perf_counter() - started)
    with t.lock:
        t.statuses.update(statuses)
        t.latencies.extend(latencies)
        t.errors += errors


def httpx_load(url: str, path: str, extra: dict[str, str], seconds: float, conns: int) -> Load:
    """``conns`` threads, one shared client whose pool holds at most ``conns`` connections."""
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    tally = _Tally()
    with httpx.Client(base_url=url, limits=limits, timeout=10) as client:
        started = time.perf_counter()
        until = started + seconds
        threads = [
            threading.Thread(target=_hammer, args=(client, path, extra, until, tally))
            for _ in range(conns)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    latencies = sorted(tally.latencies) or [float("nan")]
    p50, p99 = (latencies[int(q * (len(latencies) - 1))] * 1000 for q in (0.5, 0.99))
    client = f"httpx, {conns} threads, pool of {conns}"
    return Load(path, elapsed, tally.statuses, p50, p99, tally.errors, client=client)


def measure(server: Server, path: str, auth: bool, args: argparse.Namespace) -> Load:
    extra = headers(APP_ID, SECRET) if auth else {}
    run = wrk_load if args.client == "wrk" else httpx_load
    cpu_before = tree_cpu(server.pid)
    load = run(server.url, path, extra, args.seconds, args.connections)
    load.server_cpu = tree_cpu(server.pid) - cpu_before
    print(
        f"  {path:<58} {load.ok_per_second:8,.0f} ok/s  statuses {dict(load.statuses)}  "
        f"errors {load.errors}  p50 {load.p50_ms:5.1f} ms  p99 {load.p99_ms:6.1f} ms  "
        f"server CPU {load.cpu_ms:.2f} ms/request"
    )
    return load


# ---------------------------------------------------------------- the runs


def warm_up(server: Server, export_path: str) -> None:
    with httpx.Client(base_url=server.url) as client:
        for _ in range(20):
            client.get("/healthz").raise_for_status()
            client.get(export_path, headers=headers(APP_ID, SECRET)).raise_for_status()


def profile_get(server: Server, export_path: str, args: argparse.Namespace) -> None:
    """One extra load run of the GET (not among the measured ones) under py-spy."""
    args.profile.mkdir(parents=True, exist_ok=True)
    out = args.profile / "api-get-export.txt"
    print(f"--- profile of one load run of GET /exports/{{id}} ({out})")
    with py_spy(server.pid, out):
        measure(server, export_path, True, args)
    for line in top_frames(out, limit=25, all_threads=True):
        print(f"  {line}")


def throughput(
    server: Server, export_path: str, args: argparse.Namespace, summary: Summary
) -> None:
    print(
        f"--- rate limit off; {args.client} load, {args.connections} connections, "
        f"{args.seconds:g} s a run; load {benchlib.load_average()}"
    )
    health: list[Load] = []
    exports: list[Load] = []
    for _ in range(args.repeat):
        health.append(measure(server, "/healthz", False, args))
        exports.append(measure(server, export_path, True, args))
    best_health = max(health, key=lambda load: load.ok_per_second)
    best_export = max(exports, key=lambda load: load.ok_per_second)
    ratio = best_export.ok_per_second / best_health.ok_per_second
    print(f"  best of {args.repeat}: ratio GET /exports/{{id}} / healthz = {ratio:.2f}")
    summary.add(
        f"{args.backend} authenticated GET /exports/{{id}}, {args.connections} connections "
        "(rate limit off)",
        f"{best_export.ok_per_second:,.0f} requests/s",
        f"/healthz {best_health.ok_per_second:,.0f} requests/s",
        f"{ratio:.2f}",
        f">= {TARGET}",
        ratio >= TARGET,
    )


def rate_limited(
    server: Server, export_path: str, args: argparse.Namespace, summary: Summary
) -> None:
    print(f"--- rate limit at its default (200 requests/s per app); load {benchlib.load_average()}")
    load = measure(server, export_path, True, args)
    refused = sum(n for status, n in load.statuses.items() if status != 200) / load.seconds
    summary.note(
        f"{args.backend} GET /exports/{{id}}, rate limit at its default (200/s per app)",
        f"{load.ok_per_second:,.0f} answered/s, {refused:,.0f} refused (429)/s",
    )


def run(args: argparse.Namespace, root: Path, summary: Summary) -> None:
    with postgres_schemas(args.postgres) as schemas:
        url = schemas[0] if schemas else None
        fill(root, url)
        env = chatferry_env(root, url, rate_limit_app_requests_per_second=0)
        with serve(env, root / "serve.log") as server:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                export_path = f"{API}/exports/{finished_export(client)}"
            warm_up(server, export_path)
            if args.profile:
                profile_get(server, export_path, args)
            throughput(server, export_path, args, summary)
        with serve(chatferry_env(root, url), root / "serve-limited.log") as server:
            warm_up(server, export_path)
            rate_limited(server, export_path, args, summary)


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of a load run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (best)")
    parser.add_argument("--connections", type=int, default=20, help="the load's connections")
    parser.add_argument("--client", choices=["wrk", "httpx"], help="default: wrk if installed")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL instead of SQLite")
    parser.add_argument("--small", action="store_true", help="1 s runs, one each")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="first one extra GET run under py-spy"
    )
    args = parser.parse_args()
    args.client = args.client or ("wrk" if shutil.which("wrk") else "httpx")
    args.backend = "PostgreSQL" if args.postgres else "SQLite"
    if args.small:
        args.seconds, args.repeat = 1.0, 1
    return args


if __name__ == "__main__":
    run_main("api_bench", parse_args, run)
