"""Whole-app backup and restore benchmark: ``chatferry backup`` and ``chatferry restore``
against one big export and one big import per type of the same rows.

Run: ``.venv/bin/python bench/backup_bench.py [--comments 100000] [--days 90] [--small]
[--keep] [--profile]`` (``--comments 1000000 --days 365`` for the large size)

A real ``chatferry serve`` (SQLite, local files, its default 2 worker threads) holds one
app filled by ``chatferry demo-data`` with N comments over D days. Every figure is the
wall time of real client processes (start-up included), on the same server data:

- backup (target 3): under the default limits (30 days and 5,000 comments an export),
  ``chatferry backup --no-attachments`` of users, rooms and comments from the first day to
  yesterday (3 exports at a time, each downloaded and verified); against the same rows as
  three exports with the limits raised (366 days, no row limit), each created, waited for
  and downloaded by ``chatferry export create --download``, one after the other (the
  judged baseline; the three processes at once are shown too, as the backup runs 3 at
  once). Target: backup rows/s >= 0.9 x the exports' rows/s.
- restore (target 4): under the default limits (4 MB an upload), ``chatferry restore`` of
  that backup into a new empty app; against importing the three downloaded export files
  (one per type: users, rooms, comments, in that order) with ``chatferry import FILE
  --wait`` into another new app, with the limits raised. Target: >= 0.7 x.

The server is restarted between the two settings on the same data directory. ``--small``
runs 5,000 comments over 20 days, for CI: it checks that the bench works and shows the
fixed costs; the targets are judged at full size only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchlib import (
    Server,
    Summary,
    argument_parser,
    backup_days,
    chatferry_env,
    client_env,
    create_app,
    demo_app,
    py_spy,
    run_flags,
    run_main,
    serve,
    timed_chatferry,
    top_frames,
)

BACKUP_TARGET = 0.9
RESTORE_TARGET = 0.7
TYPES = ("users", "rooms", "comments")
RAISED = {
    "export_max_days": 366,
    "export_max_users": 10**9,
    "export_max_rooms": 10**9,
    "export_max_comments": 10**9,
    "import_max_bytes": 1 << 31,
    "import_max_rows": 10**9,
}


def _exports_at_once(env: dict[str, str], days: tuple[str, str], out: Path) -> float:
    """The three exports, created, waited for and downloaded by three client processes at
    once; the wall time until the last is in."""
    started = time.perf_counter()
    running = []
    with (out.parent / "exports.log").open("ab") as log:
        for kind in TYPES:
            command = [sys.executable, "-m", "chatferry", *_export(kind, days, out)]
            running.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
        if any(process.wait() != 0 for process in running):
            raise SystemExit(f"an export of the baseline failed: see {log.name} (--keep)")
    return time.perf_counter() - started


def _export(kind: str, days: tuple[str, str], out: Path) -> tuple[str, ...]:
    return ("export", "create", "--type", kind, "--start-date", days[0], "--end-date", days[1],
            "--download", str(out))  # fmt: skip


def _exports(env: dict[str, str], days: tuple[str, str], out: Path) -> float:
    """The three exports one after the other, each created, waited for and downloaded."""
    return sum(timed_chatferry(*_export(kind, days, out), env=env) for kind in TYPES)


def _imports(env: dict[str, str], files: Path) -> float:
    """Each type's export file imported whole, users, rooms, comments, each waited for."""
    total = 0.0
    for kind in TYPES:
        (file,) = files.glob(f"*{kind}*.json")
        total += timed_chatferry("import", str(file), "--type", kind, "--wait", env=env)
    return total


def _rows(backup: Path) -> dict[str, int]:
    parts = json.loads((backup / "manifest.json").read_text())["parts"]
    return {kind: sum(p["rows"] for p in parts if p["type"] == kind) for kind in TYPES}


def _judge(summary: Summary, name: str, rows: int, measured: float, baseline: float,
           target: float) -> None:  # fmt: skip
    ratio = baseline / measured
    summary.add(name, f"{measured:.2f} s ({rows / measured:,.0f} rows/s)",
                f"{baseline:.2f} s ({rows / baseline:,.0f} rows/s)", f"{ratio:.2f}",
                f">= {target}", ratio >= target)  # fmt: skip


def _profiled(title: str, server: Server, root: Path, *args: str, env: dict[str, str]) -> None:
    """``chatferry ARGS`` again, the client and the server under py-spy; where the time went."""
    client, served = root / f"{title}-client.txt", root / f"{title}-serve.txt"
    with py_spy(server.pid, served):
        wall = timed_chatferry(*args, env=env, profile=client)
    print(f"\n### {title} under py-spy: {wall:.2f} s (not a figure: sampling slows it)")
    for name, raw in (("client", client), ("serve", served)):
        print(f"{name}:", *top_frames(raw, limit=12, all_threads=True), sep="\n")


def _profile(env: dict[str, str], server: Server, flags: tuple[str, ...], root: Path) -> None:
    """The backup and the restore once more each, profiled (after the measured runs)."""
    out = str(root / "profiled-backup")
    _profiled("backup", server, root, "backup", "--out", out, *flags,
              env=client_env(env, server.url))  # fmt: skip
    create_app(env, "profiled")
    _profiled("restore", server, root, "restore", out, env=client_env(env, server.url, "profiled"))


def body(args: argparse.Namespace, root: Path, summary: Summary) -> None:
    comments, days = (5_000, 20) if args.small else (args.comments, args.days)
    env = chatferry_env(root / "data", None)
    demo_app(env, comments, days)
    window, backup = backup_days(days), root / "backup"
    with serve(env, root / "serve.log") as server:
        flags = ("--since", window[0], "--until", window[1], "--no-attachments")
        backup_s = timed_chatferry("backup", "--out", str(backup), *flags,
                                   env=client_env(env, server.url))  # fmt: skip
        create_app(env, "restored")
        restore_s = timed_chatferry("restore", str(backup),
                                    env=client_env(env, server.url, "restored"))  # fmt: skip
        if args.profile:
            _profile(env, server, flags, root)
    rows = _rows(backup)
    parts = len(json.loads((backup / "manifest.json").read_text())["parts"])
    print(f"backup: {parts} parts, {rows}")
    with serve(chatferry_env(root / "data", None, **RAISED), root / "serve.log") as server:
        exports_s = _exports(client_env(env, server.url), window, root / "exports")
        at_once_s = _exports_at_once(client_env(env, server.url), window, root / "at-once")
        create_app(env, "imported")
        imports_s = _imports(client_env(env, server.url, "imported"), root / "exports")
    total = sum(rows.values())
    _judge(summary, f"backup of {total:,} rows ({parts} exports)", total, backup_s, exports_s,
           BACKUP_TARGET)  # fmt: skip
    summary.note("(the 3 exports at once instead)", "", f"{at_once_s:.2f} s",
                 f"{at_once_s / backup_s:.2f}")  # fmt: skip
    _judge(summary, "restore into an empty app", total, restore_s, imports_s, RESTORE_TARGET)


def _parse() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--comments", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    run_flags(parser, "5,000 comments over 20 days", "the backup and the restore")
    return parser.parse_args()


if __name__ == "__main__":
    run_main("backup_bench", _parse, body)
