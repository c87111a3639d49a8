"""Sign-in flood benchmark: valid requests' latency and the server's memory while 80
clients send wrong secrets as fast as they can (issue 7).

Run: ``.venv/bin/python bench/auth_flood_bench.py [--seconds 20] [--clients 80] [--small]``

A real ``chatferry serve`` on SQLite in a temporary data dir, with one app. One client
sends valid ``GET /exports`` requests at a steady rate (``--rate`` a second) and records
each one's latency:

1. Baseline: the valid requests alone, for ``--seconds``.
2. Flood: the same valid requests while ``--clients`` concurrent clients (asyncio and
   httpx, in a process of their own so that they do not share the measuring client's
   interpreter) send requests with a wrong secret, each as soon as its last one got an
   answer, for ``--seconds``.

It prints the valid requests' p50/p99/max latency and error count in each phase, the
flood's request rate and its 401/429 split, and the server's resident memory (VmRSS
from ``/proc/<pid>/status``) before the flood and at its peak (VmHWM, reset just before
the flood through ``/proc/<pid>/clear_refs``), and its CPU time in each phase. Targets
(issue 7): valid p99 under 200 ms and memory growth under 30 MB during the flood.
``--small`` (3 s phases, 20 clients) checks that the bench works and judges nothing. The
exit status is 1 if a valid request failed or the flood got anything but 401 and 429.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchlib import (
    API,
    Summary,
    argument_parser,
    chatferry_env,
    headers,
    mb,
    peak_kb,
    print_header,
    reset_peak,
    serve,
    status_kb,
)

APP_ID, SECRET = "flood-bench", "flood-bench-secret-0123456789abc"
PATH = f"{API}/exports"
GOOD = headers(APP_ID, SECRET)
BAD = headers(APP_ID, "wrong-secret")
TARGET_P99_MS = 200.0
TARGET_GROWTH_MB = 30.0


def create_app(env: dict[str, str]) -> None:
    create = ["apps", "create", "--name", "Flood", "--app-id", APP_ID, "--secret", SECRET]
    command = [sys.executable, "-m", "chatferry", *create]
    subprocess.run(command, env=env, check=True, capture_output=True)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the valid client ---------------------------------------------------------------


@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.seconds) or [0.0]
        p99_index = min(len(ordered) - 1, int(0.99 * len(ordered)))
        return {
            "requests": len(self.seconds),
            "p50_ms": statistics.median(ordered) * 1000,
            "p99_ms": ordered[p99_index] * 1000,
            "max_ms": ordered[-1] * 1000,
            "errors": sum(self.errors.values()),
        }


def steady_valid_requests(base_url: str, seconds: float, rate: float) -> Latencies:
    """``rate`` valid requests a second for ``seconds``; each one's latency."""
    result = Latencies()
    interval = 1 / rate
    with httpx.Client(base_url=base_url, timeout=30) as http:
        http.get(PATH, headers=GOOD)  # the connection, opened before measuring
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < seconds:
            begin = time.perf_counter()
            try:
                status = http.get(PATH, headers=GOOD).status_code
            except httpx.HTTPError as exc:
                status = exc.__class__.__name__  # type: ignore[assignment]
            result.seconds.append(time.perf_counter() - begin)
            if status != 200:
                result.errors[str(status)] += 1
            sent += 1
            time.sleep(max(0.0, started + sent * interval - time.monotonic()))
    return result


# --- the flood (its own process) ------------------------------------------------------


async def _attacker(base_url: str, until: float, counts: Counter[str]) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        while time.monotonic() < until:
            try:
                counts[str((await http.get(PATH, headers=BAD)).status_code)] += 1
            except httpx.HTTPError as exc:
                counts[exc.__class__.__name__] += 1


async def _flood(base_url: str, clients: int, seconds: float) -> dict[str, object]:
    counts: Counter[str] = Counter()
    until = time.monotonic() + seconds
    started = time.monotonic()
    await asyncio.gather(*(_attacker(base_url, until, counts) for _ in range(clients)))
    return {"counts": dict(counts), "seconds": time.monotonic() - started}


def flood_main(base_url: str, clients: int, seconds: float) -> None:
    print(json.dumps(asyncio.run(_flood(base_url, clients, seconds))))


def run_flood(base_url: str, clients: int, seconds: float) -> subprocess.Popen[str]:
    args = [sys.executable, __file__, "--flood-only", base_url, str(clients), str(seconds)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


# --- the report -----------------------------------------------------------------------


@dataclass
class Results:
    baseline: Latencies
    flooded: Latencies
    flood: dict[str, object]
    memory: dict[str, int]
    cpu: dict[str, float]


def _phase_line(name: str, summary: dict[str, float]) -> str:
    return (
        f"{name:<9} {summary['requests']:>6.0f} {summary['p50_ms']:>8.1f} "
        f"{summary['p99_ms']:>8.1f} {summary['max_ms']:>8.1f} {summary['errors']:>6.0f}"
    )


def print_figures(results: Results) -> None:
    counts: dict[str, int] = results.flood["counts"]  # type: ignore[assignment]
    total = sum(counts.values())
    print("valid GET /exports    count   p50 ms   p99 ms   max ms errors")
    print(_phase_line("baseline", results.baseline.summary()))
    print(_phase_line("flood", results.flooded.summary()))
    print(f"flood answers: {total} in {results.flood['seconds']:.1f} s: {dict(counts)}")
    print(
        f"server CPU: {results.cpu['baseline']:.1f} s in the baseline phase, "
        f"{results.cpu['flood']:.1f} s in the flood phase (valid requests included)"
    )


def summarize(results: Results, summary: Summary) -> bool:
    """Adds the figures to the summary; returns whether every answer was the right one."""
    base, flooded = results.baseline.summary(), results.flooded.summary()
    counts: dict[str, int] = results.flood["counts"]  # type: ignore[assignment]
    total = sum(counts.values())
    growth = (results.memory["peak"] - results.memory["before"]) / 1024
    p99_ratio = f"{flooded['p99_ms'] / max(base['p99_ms'], 0.001):.1f}x"
    summary.add(
        "valid p99 during the flood",
        f"{flooded['p99_ms']:.1f} ms",
        f"{base['p99_ms']:.1f} ms alone",
        p99_ratio,
        f"< {TARGET_P99_MS:.0f} ms",
        flooded["p99_ms"] < TARGET_P99_MS,
    )
    summary.add(
        "server memory growth during the flood",
        f"+{growth:.1f} MB (peak {mb(results.memory['peak'])})",
        f"{mb(results.memory['before'])} before",
        "",
        f"< {TARGET_GROWTH_MB:.0f} MB",
        growth < TARGET_GROWTH_MB,
    )
    summary.note("valid p50", f"{flooded['p50_ms']:.1f} ms", f"{base['p50_ms']:.1f} ms alone")
    summary.note("valid errors", f"{flooded['errors']:.0f}", f"{base['errors']:.0f} alone")
    rate = total / float(results.flood["seconds"])  # type: ignore[arg-type]
    split = f"401: {counts.get('401', 0)}, 429: {counts.get('429', 0)}"
    summary.note("flood requests", f"{total} ({rate:.0f}/s)", split)
    return set(counts) <= {"401", "429"} and not flooded["errors"] and not base["errors"]


def measure(url: str, pid: int, args: argparse.Namespace) -> Results:
    cpu_start = cpu_seconds(pid)
    baseline = steady_valid_requests(url, args.seconds, args.rate)
    cpu = {"baseline": cpu_seconds(pid) - cpu_start}
    memory = {"before": reset_peak(pid)}
    cpu_start = cpu_seconds(pid)
    flood = run_flood(url, args.clients, args.seconds)
    flooded = Latencies()

    def measure_valid() -> None:
        flooded.__dict__.update(steady_valid_requests(url, args.seconds, args.rate).__dict__)

    measuring = threading.Thread(target=measure_valid)
    time.sleep(min(1.0, args.seconds / 10))  # the flood under way before measuring
    measuring.start()
    out, _ = flood.communicate(timeout=args.seconds + 120)
    measuring.join()
    cpu["flood"] = cpu_seconds(pid) - cpu_start
    memory |= {"peak": peak_kb(pid), "after": status_kb(pid, "VmRSS")}
    return Results(baseline, flooded, json.loads(out), memory, cpu)


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="each phase's length")
    parser.add_argument("--clients", type=int, default=80, help="concurrent wrong-secret clients")
    parser.add_argument("--rate", type=float, default=20.0, help="valid requests a second")
    parser.add_argument("--small", action="store_true", help="3 s phases, 20 clients")
    args = parser.parse_args()
    if args.small:
        args.seconds, args.clients = 3.0, 20
    return args


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--flood-only":
        flood_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    args = parse_args()
    print_header("auth_flood_bench")
    print(f"{args.clients} clients, {args.seconds:g} s a phase, {args.rate:g} valid requests/s")
    summary = Summary("auth_flood_bench", judged=not args.small)
    with tempfile.TemporaryDirectory(prefix="chatferry-flood-") as tmp:
        env = chatferry_env(Path(tmp) / "data", None)
        create_app(env)
        with serve(env, Path(tmp) / "serve.log", "--no-worker") as server:
            results = measure(server.url, server.pid, args)
    print_figures(results)
    right = summarize(results, summary)
    summary.print()
    sys.exit(0 if right else 1)


if __name__ == "__main__":
    main()
