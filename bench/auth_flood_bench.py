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
the flood through ``/proc/<pid>/clear_refs``). Targets: valid p99 under 200 ms and
memory growth under 30 MB during the flood. ``--small`` runs a few seconds (CI runs it
so that the script cannot rot); the exit status is 1 only if a valid request failed or
the flood got anything but 401 and 429.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
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

APP_ID, SECRET = "flood-bench", "flood-bench-secret-0123456789abc"
PATH = "/api/v2.1/rest/exports"
GOOD = {"QISCUS-SDK-APP-ID": APP_ID, "QISCUS-SDK-SECRET": SECRET}
BAD = {"QISCUS-SDK-APP-ID": APP_ID, "QISCUS-SDK-SECRET": "wrong-secret"}
TARGET_P99_MS = 200.0
TARGET_GROWTH_MB = 30.0


# --- the server ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chatferry(*args: str) -> list[str]:
    return [sys.executable, "-m", "chatferry", *args]


def start_server(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Creates the app, starts ``chatferry serve`` and waits until it answers."""
    env = {**os.environ, "CHATFERRY_DATA_DIR": str(data_dir)}
    create = ["apps", "create", "--name", "Flood", "--app-id", APP_ID, "--secret", SECRET]
    subprocess.run(_chatferry(*create), env=env, check=True, capture_output=True)
    port = _free_port()
    process = subprocess.Popen(
        _chatferry("serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"),
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {log.read_text()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return process, base_url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the server did not answer within 30 s")


def memory_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


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


def _phase_line(name: str, summary: dict[str, float]) -> str:
    return (
        f"{name:<9} {summary['requests']:>6.0f} {summary['p50_ms']:>8.1f} "
        f"{summary['p99_ms']:>8.1f} {summary['max_ms']:>8.1f} {summary['errors']:>6.0f}"
    )


def report(
    baseline: Latencies, flooded: Latencies, flood: dict[str, object], memory: dict[str, int]
) -> bool:
    """Prints the figures; returns whether every valid request and flood answer was right."""
    counts: dict[str, int] = flood["counts"]  # type: ignore[assignment]
    total = sum(counts.values())
    rate = total / float(flood["seconds"])  # type: ignore[arg-type]
    print("valid GET /exports    count   p50 ms   p99 ms   max ms errors")
    print(_phase_line("baseline", baseline.summary()))
    print(_phase_line("flood", flooded.summary()))
    print(
        f"flood: {total} requests in {flood['seconds']:.1f} s ({rate:.0f}/s): "
        f"401 {counts.get('401', 0)}, 429 {counts.get('429', 0)}, "
        f"other {total - counts.get('401', 0) - counts.get('429', 0)}"
    )
    print(
        f"server CPU: {flood['baseline_cpu']:.1f} s in the baseline phase, "
        f"{flood['server_cpu']:.1f} s in the flood phase (valid requests included)"
    )
    growth = (memory["peak"] - memory["before"]) / 1024
    print(
        f"server memory: {memory['before'] / 1024:.1f} MB before the flood, peak "
        f"{memory['peak'] / 1024:.1f} MB (+{growth:.1f} MB), {memory['after'] / 1024:.1f} MB after"
    )
    p99 = flooded.summary()["p99_ms"]
    print(
        f"targets: valid p99 {p99:.1f} ms < {TARGET_P99_MS:.0f} ms: "
        f"{'met' if p99 < TARGET_P99_MS else 'MISSED'}; memory growth {growth:.1f} MB < "
        f"{TARGET_GROWTH_MB:.0f} MB: {'met' if growth < TARGET_GROWTH_MB else 'MISSED'}"
    )
    flood_ok = set(counts) <= {"401", "429"}
    return flood_ok and not baseline.errors and not flooded.errors


def measure(base_url: str, pid: int, args: argparse.Namespace) -> bool:
    cpu_start = cpu_seconds(pid)
    baseline = steady_valid_requests(base_url, args.seconds, args.rate)
    baseline_cpu = cpu_seconds(pid) - cpu_start
    reset_peak(pid)
    memory = {"before": memory_kb(pid, "VmRSS")}
    cpu_before = cpu_seconds(pid)
    flood = run_flood(base_url, args.clients, args.seconds)
    flooded = Latencies()
    measuring = threading.Thread(
        target=lambda: flooded.__dict__.update(
            steady_valid_requests(base_url, args.seconds, args.rate).__dict__
        )
    )
    time.sleep(min(1.0, args.seconds / 10))  # the flood under way before measuring
    measuring.start()
    out, _ = flood.communicate(timeout=args.seconds + 120)
    measuring.join()
    memory |= {"peak": memory_kb(pid, "VmHWM"), "after": memory_kb(pid, "VmRSS")}
    result = json.loads(out) | {
        "server_cpu": cpu_seconds(pid) - cpu_before,
        "baseline_cpu": baseline_cpu,
    }
    return report(baseline, flooded, result, memory)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--flood-only":
        flood_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="each phase's length")
    parser.add_argument("--clients", type=int, default=80, help="concurrent wrong-secret clients")
    parser.add_argument("--rate", type=float, default=20.0, help="valid requests a second")
    parser.add_argument("--small", action="store_true", help="a few seconds (CI)")
    args = parser.parse_args()
    if args.small:
        args.seconds, args.clients = 3.0, 20
    with tempfile.TemporaryDirectory(prefix="chatferry-flood-") as tmp:
        process, base_url = start_server(Path(tmp) / "data", Path(tmp) / "serve.log")
        try:
            print(f"{args.clients} clients, {args.seconds:g} s a phase, {args.rate:g} valid/s")
            ok = measure(base_url, process.pid, args)
        finally:
            process.terminate()
            process.wait(30)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
