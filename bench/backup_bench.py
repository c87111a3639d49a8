"""Backup benchmark: ``chatferry backup`` of a whole app against the work it must wait for.

Run: ``.venv/bin/python bench/backup_bench.py [--comments 100000] [--days 90] [--small]
[--concurrency 3] [--keep]``

A real ``chatferry serve`` (SQLite, local files, its default 2 worker threads, default
limits: 30 days and 5,000 comments an export) holds one app filled by ``chatferry
demo-data`` with N comments over D days. ``chatferry backup`` (a real client process)
backs it up from the first day to yesterday: users and rooms in 30-day windows, comments
in the windows the row limit forces, 3 exports at a time, each downloaded and verified.

Measured: the backup's wall time (the client process, start-up included), and the
baseline it is judged against, from the same run: the sum over its exports of the
server-side run time (``created_at`` to ``finished_at``, read with microseconds from the
server's database: the records show whole seconds; the backup runs with
``--keep-exports`` so the rows are still there) plus the time the client spent
downloading and verifying that file (from ``manifest.json``). Target: wall / baseline
<= 1.3. Running exports
concurrently is what keeps the ratio down: the client's own overhead (planning, the
refused windows it splits, polling, the manifest) is paid while the server works.
``--small`` runs 5,000 comments over 20 days, for CI: it checks that the bench works, and
shows the fixed costs (the client's start-up, measured here as ``chatferry --version``,
and its first requests) that dominate so small a backup; the target is judged at full size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

TARGET = 1.3
APP_ID, SECRET = "bench", "bench-secret-123"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chatferry(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "chatferry", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"chatferry {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def _serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "chatferry", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not start:\n{log.read_text()}")


def _fill(env: dict[str, str], comments: int, days: int) -> None:
    _chatferry("apps", "create", "--name", "Bench", "--app-id", APP_ID, "--secret", SECRET,
               env=env)  # fmt: skip
    users = max(200, min(2000, comments // 50))
    rooms = max(100, users // 2)
    started = time.monotonic()
    spec = ("--users", str(users), "--rooms", str(rooms), "--comments", str(comments))
    _chatferry("demo-data", "--app-id", APP_ID, *spec, "--days", str(days), "--seed", "1", env=env)
    print(f"data: {users} users, {rooms} rooms, {comments} comments over {days} days "
          f"({time.monotonic() - started:.1f} s to generate)")  # fmt: skip


def _backup(url: str, out: Path, days: int, concurrency: int, env: dict[str, str]) -> float:
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    since = yesterday - timedelta(days=days + 1)
    client_env = {
        **env,
        "CHATFERRY_SERVER": url,
        "QISCUS_SDK_APP_ID": APP_ID,
        "QISCUS_SDK_SECRET": SECRET,
    }
    args = ("backup", "--out", str(out), "--since", since.isoformat(), "--until",
            yesterday.isoformat(), "--concurrency", str(concurrency), "--keep-exports")  # fmt: skip
    started = time.monotonic()
    _chatferry(*args, env=client_env)
    return time.monotonic() - started


def _run_times(database: Path) -> dict[str, float]:
    """Each export's created_at -> finished_at in seconds, from the server's database."""
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT unique_id, created_at, finished_at FROM exports WHERE finished_at IS NOT NULL"
        ).fetchall()
    return {
        uid: (datetime.fromisoformat(done) - datetime.fromisoformat(created)).total_seconds()
        for uid, created, done in rows
    }


def _report(manifest: dict[str, Any], run_times: dict[str, float], wall: float) -> float:
    parts = manifest["parts"]
    server = sum(run_times[p["export_id"]] for p in parts)
    download = sum(p.get("download_seconds") or 0.0 for p in parts)
    baseline = server + download
    rows = {
        t: sum(p["rows"] for p in parts if p["type"] == t) for t in ("users", "rooms", "comments")
    }
    size = sum(p["bytes"] for p in parts)
    print(f"backup: {len(parts)} parts, {rows}, {size / 1e6:.1f} MB")
    print(f"  exports' server-side run time (created_at -> finished_at), summed: {server:8.2f} s")
    print(f"  downloads and verification, summed:                          {download:8.2f} s")
    print(f"  baseline (sum of both):                                      {baseline:8.2f} s")
    print(f"  backup wall time:                                            {wall:8.2f} s")
    print(f"  (of which the client's start-up, as 'chatferry --version':   {_startup():8.2f} s)")
    ratio = wall / baseline if baseline else float("inf")
    verdict = "ok" if ratio <= TARGET else "OVER TARGET"
    print(f"  wall / baseline = {ratio:.2f} (target <= {TARGET}: {verdict})")
    return ratio


def _startup() -> float:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "chatferry", "--version"], capture_output=True, check=True
    )
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--comments", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--small", action="store_true", help="5,000 comments over 20 days")
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    comments, days = (5_000, 20) if args.small else (args.comments, args.days)
    directory = Path(tempfile.mkdtemp(prefix="chatferry-backup-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATFERRY_", "QISCUS_"))}
    env["CHATFERRY_DATA_DIR"] = str(directory / "data")
    server = None
    try:
        _fill(env, comments, days)
        server, url = _serve(env, directory / "serve.log")
        wall = _backup(url, directory / "backup", days, args.concurrency, env)
        manifest = json.loads((directory / "backup" / "manifest.json").read_text())
        ratio = _report(manifest, _run_times(directory / "data" / "chatferry.db"), wall)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if args.keep:
            print(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    if args.small:
        print("  (--small: the target is judged at full size only)")
    sys.exit(0 if ratio <= TARGET or args.small else 1)


if __name__ == "__main__":
    main()
