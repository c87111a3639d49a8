"""Attachments benchmark: ``chatferry backup`` fetching an app's files from a local HTTP
server, against ``curl --parallel --parallel-max 8`` fetching the same URLs.

Run: ``.venv/bin/python bench/attachments_bench.py [--rounds 3] [--small] [--keep] [--profile]``

A file server on 127.0.0.1 (Python's threaded ``http.server``, HTTP/1.1 keep-alive) serves
generated files: every path its own bytes (a sha256 of the path, then random bytes), with
a ``Content-Length``; paths under ``/big/`` are ``--big-mib`` MiB, the others
``--small-kb`` KB. A real ``chatferry serve`` (SQLite) holds two apps filled by
``chatferry demo-data --files-base-url``: one whose avatars and file messages point at
about 2,000 small files, one at about 20 big ones (the exact counts are printed).

For each set: ``chatferry backup --no-attachments`` backs the rows up first (not
measured); then the measured run, ``chatferry backup --allow-private-urls`` on the same
directory, adds only the attachments (its 8 fetches at a time, the default; client
start-up and its few requests to the server included). The baseline, in the same run:
``curl --parallel --parallel-max 8`` fetching the URLs the backup's manifest lists into a
directory. The backup (each time into a new directory) and curl alternate ``--rounds``
times (3): both swing by a factor of 2 or more from run to run here (curl's 8 connections
and the backup's 4 against one Python file server), so the best of each is judged and
every run is printed. Target: backup bytes/s >= 0.8 x curl's.

Encrypted (``--encrypt-to`` a key from ``chatferry keygen``): the same two runs into a new
directory, the second with ``--identity`` (without it, a later run of an encrypted backup
fetches the URLs of its new parts only); target >= 0.7 x curl. If it fetched fewer files
than the plain run, the bench says so instead of a figure.

``--small``: about 100 files of 50 KB and a few of 2 MiB, for CI; not judged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchlib import (
    Summary,
    argument_parser,
    backup_days,
    chatferry,
    chatferry_env,
    client_env,
    demo_app,
    require_tool,
    run_flags,
    run_main,
    serve,
    top_frames,
)

TARGET, ENCRYPTED_TARGET = 0.8, 0.7
DAYS = 10
PARTIAL = 5  # backup's exit code when some attachments could not be fetched
PER_HOST = 4  # the backup fetches at most 4 files at once from one host (docs/attachments.md)


class _Files(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else the body's last bytes wait for a delayed ACK
    noise = b""
    small = 50_000
    big = 20 << 20

    def do_GET(self) -> None:
        size = self.big if "/big/" in self.path else self.small
        head = hashlib.sha256(self.path.encode()).digest()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.write(head + memoryview(self.noise)[: size - len(head)])

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # 5 by default: curl's 8 connections at once saw 1 s SYN retries


@contextmanager
def file_server(small: int, big: int) -> Iterator[str]:
    """The generated files at ``http://127.0.0.1:PORT``, until the block ends."""
    _Files.noise, _Files.small, _Files.big = os.urandom(max(small, big)), small, big
    server = _Server(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _curl(urls: list[str], out: Path, at_once: int = 8) -> float:
    """curl fetching ``urls`` ``at_once`` at a time into ``out``; its wall time."""
    out.mkdir()
    config = out.parent / f"{out.name}.curl"
    lines = [f'url = "{url}"\noutput = "{out / str(i)}"' for i, url in enumerate(urls)]
    config.write_text("\n".join(lines) + "\n")
    quiet = ("--silent", "--show-error", "--no-progress-meter")
    command = [require_tool("curl", "curl"), "--parallel", "--parallel-max", str(at_once), "--fail",
               *quiet, "--config", str(config)]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def _attachments(backup: Path) -> dict[str, dict[str, object]]:
    entries = json.loads((backup / "manifest.json").read_text()).get("attachments") or {}
    failed = {url: e["error"] for url, e in entries.items() if "error" in e}
    if failed:
        raise SystemExit(f"{len(failed)} attachments failed, e.g. {next(iter(failed.items()))}")
    return dict(entries)


def _backup(env: dict[str, str], backup: Path, *extra: str, profile: Path | None = None) -> float:
    """Rows first (not timed), then the timed run that fetches the attachments."""
    days = backup_days(DAYS)
    flags = ("--out", str(backup), "--since", days[0], "--until", days[1], *extra)
    chatferry("backup", *flags, "--no-attachments", env=env)
    started = time.perf_counter()
    chatferry("backup", *flags, "--allow-private-urls", env=env, allowed=(0, PARTIAL),
              profile=profile)  # fmt: skip
    return time.perf_counter() - started


def _profile(env: dict[str, str], root: Path, name: str) -> None:
    """The fetching run once more, under py-spy (after the measured runs)."""
    raw = root / f"{name}-profile.txt"
    wall = _backup(env, root / f"{name}-profiled", profile=raw)
    print(f"\n### {name}: the fetching run under py-spy: {wall:.2f} s (not a figure)")
    print(*top_frames(raw, limit=15, all_threads=True), sep="\n")


def _judge(summary: Summary, name: str, wall: float, size: int, curl: float, target: float) -> None:
    ratio = curl / wall
    summary.add(name, f"{wall:.2f} s ({size / wall / 1e6:.1f} MB/s)",
                f"curl {curl:.2f} s ({size / curl / 1e6:.1f} MB/s)", f"{ratio:.2f}",
                f">= {target}", ratio >= target)  # fmt: skip


def _best(runs: list[float]) -> str:
    return f"best of {len(runs)}: " + ", ".join(f"{run:.2f}" for run in sorted(runs)) + " s"


def _rounds(env: dict[str, str], root: Path, name: str, rounds: int) -> tuple[float, float, int]:
    """The plain backup and curl, alternating, ``rounds`` times each: their best wall
    times, and the bytes fetched (only the first round's directories are kept)."""
    walls, curls = [], []
    for run in range(rounds):
        walls.append(_backup(env, root / f"{name}-plain-{run}"))
        entries = _attachments(root / f"{name}-plain-{run}")
        curls.append(_curl(sorted(entries), root / f"{name}-curl-{run}"))
        if run:
            for kept in (f"{name}-plain-{run}", f"{name}-curl-{run}"):
                shutil.rmtree(root / kept)
    entries = _attachments(root / f"{name}-plain-0")
    size = sum(int(str(e["bytes"])) for e in entries.values())
    print(f"{name}: {len(entries)} files, {size / 1e6:.1f} MB; backup {_best(walls)}, "
          f"curl {_best(curls)}")  # fmt: skip
    return min(walls), min(curls), size


def _one_set(root: Path, summary: Summary, name: str, env: dict[str, str],
             args: argparse.Namespace) -> None:  # fmt: skip
    wall, curl, size = _rounds(env, root, name, args.rounds)
    entries = _attachments(root / f"{name}-plain-0")
    _judge(summary, f"{name}: backup fetching {len(entries)} files", wall, size, curl, TARGET)
    four = _curl(sorted(entries), root / f"{name}-curl-4", PER_HOST)
    summary.note(f"(curl --parallel-max {PER_HOST}: the backup's cap per host)", "",
                 f"curl {four:.2f} s", f"{four / wall:.2f}")  # fmt: skip
    if args.profile:
        _profile(env, root, name)
    key = root / f"{name}.key"
    recipient = chatferry("keygen", "--out", str(key), env=env).strip()
    sealed = ("--encrypt-to", recipient, "--identity", str(key))
    walls = [_backup(env, root / f"{name}-age-{run}", *sealed) for run in range(args.rounds)]
    print(f"{name}, --encrypt-to: backup {_best(walls)}")
    fetched = len(list((root / f"{name}-age-0" / "attachments").glob("*.age")))
    print(f"{name}, --encrypt-to: {fetched} encrypted attachment files")
    if fetched < len(entries):
        print(f"{name}, --encrypt-to: {fetched} of {len(entries)} files fetched: no figure")
        summary.note(f"{name}, --encrypt-to", f"not measured: {fetched} of {len(entries)} fetched")
        return
    _judge(summary, f"{name}, --encrypt-to", min(walls), size, curl, ENCRYPTED_TARGET)


def body(args: argparse.Namespace, root: Path, summary: Summary) -> None:
    args.rounds = 1 if args.small else args.rounds
    small_set = (20, 900) if args.small else (200, 20_600)  # users, comments: ~100 / ~2,000
    big_set = (2, 10) if args.small else (10, 100)  # ~3 / ~20 files
    big = (2 if args.small else args.big_mib) << 20
    env = chatferry_env(root / "data", None)
    with file_server(args.small_kb * 1000, big) as files:
        for app, (users, comments), where in (("small", small_set, "small"),
                                              ("big", big_set, "big")):  # fmt: skip
            demo_app(env, comments, DAYS, app, users, ("--files-base-url", f"{files}/{where}"))
        with serve(env, root / "serve.log") as server:
            for app in ("small", "big"):
                _one_set(root, summary, app, client_env(env, server.url, app), args)


def _parse() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--small-kb", type=int, default=50, help="size of the small files")
    parser.add_argument("--big-mib", type=int, default=20, help="size of the big files")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each backup and of curl (the best is judged)")  # fmt: skip
    run_flags(parser, "~100 small files, 2 MiB big ones", "each fetching run")
    return parser.parse_args()


if __name__ == "__main__":
    run_main("attachments_bench", _parse, body)
