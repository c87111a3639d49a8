"""Conversion benchmark: ``chatferry convert`` of generated Mattermost and Slack exports.

Run: ``.venv/bin/python bench/convert_bench.py [--posts 1000000] [--small] [--keep]``

Generates a Mattermost bulk export (JSONL: 2 teams, 20 channels, 200 users, DMs; every 10th
post a thread root with 2 replies, every 50th a file in data/) and a Slack export zip
(users.json, channels.json, dms.json, a folder per channel of one file per day) of N posts
at a fixed density (2,000 posts a day, so a bigger export spans more days, as a real one
does), then converts each with a real ``python -m chatferry convert`` process at a quarter
of the size and at the full size. Measured: rows written per second (the process's wall
time, start-up included) and its peak resident memory (``ru_maxrss`` of the child).
Target: memory stays flat with the export's size (peak at N <= 1.25 x peak at N/4), since
the JSONL is streamed, the zip read a member at a time and comments held a 30-day window
at a time. ``--small`` runs 20,000 posts, for CI: it checks that the bench works.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Summary, argument_parser, print_header

T0 = 1_577_836_800_000  # 2020-01-01
PER_DAY = 2000
MEMORY_RATIO = 1.25
USERS, CHANNELS = 200, 20


def _posts(n: int, per_day: int) -> Iterator[tuple[int, int, int, int]]:
    """(index, user, channel, time in ms) of each post, in time order."""
    step = 86_400_000 // per_day
    for i in range(n):
        yield i, i * 7 % USERS, i * 13 % CHANNELS, T0 + i * step


def write_mattermost(directory: Path, n: int, per_day: int) -> Path:
    directory.mkdir(parents=True)
    (directory / "data").mkdir()
    (directory / "data" / "file.bin").write_bytes(os.urandom(2048))
    with (directory / "export.jsonl").open("wb") as out:
        out.write(b'{"type":"version","version":1}\n')
        for team in ("t0", "t1"):
            out.write(orjson.dumps({"type": "team", "team": {"name": team}}) + b"\n")
        for c in range(CHANNELS):
            channel = {"team": f"t{c % 2}", "name": f"c{c}", "display_name": f"C {c}", "type": "O"}
            out.write(orjson.dumps({"type": "channel", "channel": channel}) + b"\n")
        for u in range(USERS):
            teams = [
                {"name": f"t{t}", "channels": [{"name": f"c{c}"} for c in range(t, CHANNELS, 2)]}
                for t in (0, 1)
            ]
            user = {
                "username": f"u{u}",
                "email": f"u{u}@example.com",
                "first_name": f"U{u}",
                "teams": teams,
            }
            out.write(orjson.dumps({"type": "user", "user": user}) + b"\n")
        for i, u, c, at in _posts(n, per_day):
            post = {
                "team": f"t{c % 2}",
                "channel": f"c{c}",
                "user": f"u{u}",
                "message": f"post {i} with some text",
                "create_at": at,
            }
            if i % 10 == 0:
                post["replies"] = [
                    {"user": f"u{(u + k) % USERS}", "message": f"reply {k}", "create_at": at + k}
                    for k in (1, 2)
                ]
            if i % 50 == 0:
                post["attachments"] = [{"path": "data/file.bin"}]
            out.write(orjson.dumps({"type": "post", "post": post}) + b"\n")
    return directory


def write_slack(path: Path, n: int, per_day: int) -> Path:
    users = [
        {
            "id": f"U{u}",
            "name": f"u{u}",
            "real_name": f"U {u}",
            "profile": {"email": f"u{u}@example.com"},
        }
        for u in range(USERS)
    ]
    channels = [
        {
            "id": f"C{c}",
            "name": f"c{c}",
            "created": T0 // 1000,
            "creator": "U0",
            "members": [f"U{u}" for u in range(c, USERS, CHANNELS)],
        }
        for c in range(CHANNELS)
    ]
    days: dict[tuple[int, str], list[dict[str, object]]] = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("users.json", json.dumps(users))
        archive.writestr("channels.json", json.dumps(channels))
        current = ""
        for i, u, c, at in _posts(n, per_day):
            day = datetime.fromtimestamp(at / 1000, UTC).date().isoformat()
            if day != current and days:
                _flush(archive, days)
            current = day
            ts = f"{at // 1000}.{at % 1000:03d}{i % 1000:03d}"
            days.setdefault((c, day), []).append(
                {
                    "type": "message",
                    "user": f"U{u}",
                    "text": f"post {i} hi <@U{(u + 1) % USERS}>",
                    "ts": ts,
                }
            )
        _flush(archive, days)
    return path


def _flush(archive: zipfile.ZipFile, days: dict[tuple[int, str], list[dict[str, object]]]) -> None:
    for (c, day), messages in sorted(days.items()):
        archive.writestr(f"c{c}/{day}.json", orjson.dumps(messages))
    days.clear()


def convert(kind: str, export: Path, out: Path) -> tuple[float, int, int]:
    """(seconds, rows written, peak resident KiB) of one ``chatferry convert`` process
    (``wait4`` gives that child's own peak)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        command = [sys.executable, "-m", "chatferry", "convert", kind, str(export)]
        process = subprocess.Popen(
            [*command, "--out", str(out), "--json"], stdout=stdout, stderr=stderr
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        stdout.seek(0), stderr.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"convert {kind} failed: {stderr.read().decode()}")
        report = json.loads(stdout.read())
    return seconds, sum(report["written"].values()), usage.ru_maxrss


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--posts", type=int, default=1_000_000, help="Posts at full size.")
    parser.add_argument("--small", action="store_true", help="20,000 posts (CI).")
    parser.add_argument("--per-day", type=int, default=PER_DAY, help="Posts a day.")
    parser.add_argument("--keep", action="store_true", help="Keep the work directory.")
    args = parser.parse_args()
    n = 20_000 if args.small else args.posts
    print_header(f"chatferry convert: {n:,} generated posts")
    work = Path(tempfile.mkdtemp(prefix="convert-bench-"))
    summary = Summary(f"convert, {n:,} posts", judged=not args.small)
    try:
        for kind in ("mattermost", "slack"):
            run_kind(kind, work, n, args.per_day, summary)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept: {work}")
    summary.print()


def run_kind(kind: str, work: Path, n: int, per_day: int, summary: Summary) -> None:
    peaks = []
    for size in (n // 4, n):
        export = work / f"{kind}-{size}"
        started = time.perf_counter()
        if kind == "mattermost":
            write_mattermost(export, size, per_day)
        else:
            export = write_slack(export.with_suffix(".zip"), size, per_day)
        made = time.perf_counter() - started
        seconds, rows, peak = convert(kind, export, work / f"out-{kind}-{size}")
        peaks.append(peak)
        rate = rows / seconds
        print(f"{kind} {size:,} posts: export written in {made:.1f} s; converted {rows:,} rows")
        print(f"  in {seconds:.1f} s = {rate:,.0f} rows/s; peak {peak / 1024:.1f} MB")
        summary.note(
            f"{kind} {size:,} posts: rows/s",
            f"{rows / seconds:,.0f}",
            f"{rows:,} rows in {seconds:.1f} s",
        )
        summary.note(f"{kind} {size:,} posts: peak memory", f"{peak / 1024:.1f} MB")
        shutil.rmtree(work / f"out-{kind}-{size}", ignore_errors=True)
    ratio = peaks[1] / peaks[0]
    summary.add(
        f"{kind}: peak memory at N / at N/4",
        f"{ratio:.2f}",
        f"{peaks[0] / 1024:.1f} MB",
        f"{ratio:.2f}",
        f"<= {MEMORY_RATIO}",
        ratio <= MEMORY_RATIO,
    )


if __name__ == "__main__":
    main()
