"""Comments export benchmark: throughput against the sqlite3 shell, and peak memory.

Run: ``.venv/bin/python bench/export_bench.py [--rows 50000 200000] [--repeat 2]``

On a fresh SQLite database in a temporary directory it creates one app per size, fills
each with ``chatferry.demo`` data, and exports its comments through the real export job
(``create_export``, ``claim_next``, ``ExportJobHandler.run``), each export in a fresh
child process so that its peak RSS (``ru_maxrss``) is its own. The baseline dumps the
same rows and columns (the export's joined query, same window and order) with
``sqlite3 -json`` (or, without the shell, a raw sqlite3 cursor + orjson loop).

Targets: export rows/s >= 0.5 x baseline; peak RSS at the largest size within 30 MB of
the peak at the smallest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from chatferry.apps.service import app_context, create_app, get_app
from chatferry.clock import utcnow
from chatferry.db.engine import transaction
from chatferry.demo.generate import DemoSpec, generate
from chatferry.exports.dates import resolve_window, window_bounds_utc
from chatferry.exports.job import ExportJobHandler
from chatferry.exports.service import create_export
from chatferry.jobs.queue import DONE, claim_next, finish
from chatferry.runtime import Runtime, build_runtime
from chatferry.settings import Settings

RATIO_TARGET = 0.5
MEMORY_TARGET_MB = 30.0
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

BASELINE_SQL = """
SELECT c.message AS Message, c.disable_link_preview AS DisableLinkPreview, c.type AS Type,
       c.unique_id AS UniqueId, u.email AS CreatorEmail, r.unique_id AS RoomUniqueId,
       c.created_at AS CreatedAt, c.payload AS Payload,
       coalesce(p.unique_id, '') AS ParentCommentUniqueId
FROM comments AS c
JOIN users AS u ON u.id = c.user_id
JOIN rooms AS r ON r.id = c.room_id
LEFT OUTER JOIN comments AS p ON p.id = c.parent_id
WHERE c.app_pk = {app_pk} AND c.created_at >= '{lower}' AND c.created_at < '{upper}'
ORDER BY c.created_at, c.id
"""


def bench_settings(data_dir: Path, max_rows: int) -> Settings:
    return Settings(data_dir=data_dir, export_max_comments=max_rows)


def app_id_for(rows: int) -> str:
    return f"bench-{rows}"


# ---------------------------------------------------------------- child: one export


def run_child_export(data_dir: Path, rows: int) -> None:
    """Exports the app's comments once and prints timing and peak RSS as JSON."""
    rt = build_runtime(bench_settings(data_dir, rows), migrate=False)
    try:
        unique_id = queue_export(rt, app_id_for(rows))
        job = claim_next(rt.engine, "bench", rt.settings.job_lease_seconds)
        assert job is not None, "the export job was not queued"
        rss_before_kb = reset_peak_rss()
        started = time.perf_counter()
        ExportJobHandler().run(rt, job)
        seconds = time.perf_counter() - started
        peak_kb = peak_rss_kb()
        with transaction(rt.sessions) as session:
            finish(session, job, DONE)
        result = {
            "seconds": seconds,
            "peak_rss_kb": peak_kb,
            "rss_before_kb": rss_before_kb,
            "unique_id": unique_id,
        }
        print(json.dumps(result))
    finally:
        rt.close()


def queue_export(rt: Runtime, app_id: str) -> str:
    with transaction(rt.sessions) as session:
        ctx = app_context(get_app(session, app_id), rt.settings)
        export = create_export(session, rt.settings, ctx, {"type": "comments"})
        return export.unique_id


def status_kb(field: str) -> int | None:
    """A ``/proc/self/status`` memory figure (VmRSS, VmHWM) in KiB; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> int:
    """Resets the process's peak RSS to its current RSS; returns that (KiB).

    Start-up (imports, the Argon2 hash computed at import time) can peak higher than
    the export itself, which would hide the export's own peak, so on Linux the peak
    (VmHWM) is reset right before the export. Elsewhere ru_maxrss is used as is.
    """
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return status_kb("VmRSS") or peak_rss_kb()


def peak_rss_kb() -> int:
    """Peak RSS (KiB) since start or since reset_peak_rss."""
    peak = status_kb("VmHWM")
    if peak is not None:
        return peak
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


# ---------------------------------------------------------------- parent: setup


def build_database(data_dir: Path, sizes: list[int]) -> None:
    rt = build_runtime(bench_settings(data_dir, max(sizes)))
    try:
        for rows in sizes:
            with transaction(rt.sessions) as session:
                app, _ = create_app(session, f"bench {rows}", app_id=app_id_for(rows))
                spec = DemoSpec(users=2000, rooms=1000, comments=rows, days=30, seed=rows)
                generate(session, app.id, spec)
    finally:
        rt.close()


@dataclass
class ExportRun:
    rows: int
    seconds: float
    peak_rss_kb: int
    rss_before_kb: int
    size: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def export_once(data_dir: Path, rows: int) -> ExportRun:
    command = [sys.executable, __file__, "--child", "--data-dir", str(data_dir)]
    command += ["--rows", str(rows)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the export child failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    size = check_export_file(data_dir, rows, result["unique_id"])
    return ExportRun(rows, result["seconds"], result["peak_rss_kb"], result["rss_before_kb"], size)


def check_export_file(data_dir: Path, rows: int, unique_id: str) -> int:
    """Reads the finished file back: the format, the row count and the key order."""
    path = data_dir / "files" / "exports" / app_id_for(rows) / f"{unique_id}.json"
    body = path.read_bytes()
    assert body.startswith(b"[\n{") and body.endswith(b"}\n]\n"), "not one object a line"
    assert body.count(b"\n") == rows + 2, "expected one object per line"
    objects = orjson.loads(body)
    assert len(objects) == rows, f"expected {rows} rows, got {len(objects)}"
    assert list(objects[0]) == COMMENT_KEYS, f"keys {list(objects[0])}"
    assert objects[0]["CreatedAt"].endswith("Z")
    size = len(body)
    path.unlink()
    return size


# ---------------------------------------------------------------- baseline


@dataclass
class BaselineRun:
    rows: int
    seconds: float
    tool: str
    size: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def baseline_sql(data_dir: Path, rows: int) -> str:
    rt = build_runtime(bench_settings(data_dir, rows), migrate=False)
    try:
        with transaction(rt.sessions) as session:
            app = app_context(get_app(session, app_id_for(rows)), rt.settings)
    finally:
        rt.close()
    start, end = resolve_window(None, None, app.timezone, utcnow(), rt.settings.export_max_days)
    lower, upper = window_bounds_utc(start, end, app.timezone)
    return BASELINE_SQL.format(app_pk=app.pk, lower=sql_time(lower), upper=sql_time(upper))


def sql_time(moment: datetime) -> str:
    """A naive UTC datetime as SQLAlchemy stores it in SQLite."""
    return moment.isoformat(" ", "microseconds")


def baseline_once(data_dir: Path, rows: int) -> BaselineRun:
    sql = baseline_sql(data_dir, rows)
    database = data_dir / "chatferry.db"
    out = data_dir / "baseline.json"
    shell = shutil.which("sqlite3")
    started = time.perf_counter()
    if shell:
        with out.open("wb") as sink:
            subprocess.run([shell, "-json", str(database), sql], stdout=sink, check=True)
        tool = "sqlite3 -json"
    else:
        cursor_dump(database, sql, out)
        tool = "sqlite3 cursor + orjson"
    seconds = time.perf_counter() - started
    size = out.stat().st_size
    count = len(orjson.loads(out.read_bytes()))
    assert count == rows, f"baseline returned {count} rows, expected {rows}"
    out.unlink()
    return BaselineRun(rows, seconds, tool, size)


def cursor_dump(database: Path, sql: str, out: Path) -> None:
    """The fallback baseline: a minimal raw cursor loop writing a JSON array."""
    conn = sqlite3.connect(database)
    try:
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description]
        with out.open("wb") as sink:
            sink.write(b"[\n")
            first = True
            for row in cursor:
                sink.write(
                    (b"" if first else b",\n") + orjson.dumps(dict(zip(names, row, strict=True)))
                )
                first = False
            sink.write(b"\n]\n")
    finally:
        conn.close()


# ---------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def best_export(data_dir: Path, rows: int, repeat: int) -> tuple[ExportRun, list[ExportRun]]:
    runs = [export_once(data_dir, rows) for _ in range(repeat)]
    return min(runs, key=lambda r: r.seconds), runs


def best_baseline(data_dir: Path, rows: int, repeat: int) -> BaselineRun:
    return min((baseline_once(data_dir, rows) for _ in range(repeat)), key=lambda r: r.seconds)


def report(sizes: list[int], repeat: int, data_dir: Path) -> bool:
    all_ok = True
    peaks: dict[int, int] = {}
    for rows in sizes:
        export, runs = best_export(data_dir, rows, repeat)
        baseline = best_baseline(data_dir, rows, repeat)
        ratio = export.rows_per_second / baseline.rows_per_second
        peaks[rows] = max(r.peak_rss_kb for r in runs)
        # The throughput target is for the largest export; smaller ones are shown
        # for the trend (a fixed start-up cost weighs more on them).
        judged = rows == max(sizes)
        ok = ratio >= RATIO_TARGET or not judged
        all_ok &= ok
        print(f"--- {rows:,} comments (best of {repeat})")
        print(
            f"  export job : {export.seconds:7.3f} s  {export.rows_per_second:>10,.0f} rows/s  "
            f"file {export.size / 1e6:6.1f} MB  peak RSS {peaks[rows] / 1024:6.1f} MB "
            f"(before export {export.rss_before_kb / 1024:.1f} MB)"
        )
        print(
            f"  baseline   : {baseline.seconds:7.3f} s  {baseline.rows_per_second:>10,.0f} rows/s  "
            f"file {baseline.size / 1e6:6.1f} MB  ({baseline.tool})"
        )
        outcome = verdict(ok) if judged else "for information"
        print(f"  ratio export/baseline = {ratio:.2f} (target >= {RATIO_TARGET}): {outcome}")
    small, large = min(sizes), max(sizes)
    if small != large:
        growth = (peaks[large] - peaks[small]) / 1024
        ok = growth <= MEMORY_TARGET_MB
        all_ok &= ok
        print(
            f"--- peak RSS {small:,}: {peaks[small] / 1024:.1f} MB, {large:,}: "
            f"{peaks[large] / 1024:.1f} MB, difference {growth:+.1f} MB "
            f"(target <= {MEMORY_TARGET_MB:.0f} MB): {verdict(ok)}"
        )
    return all_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement (best)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child_export(args.data_dir, args.rows[0])
        return
    run(sorted(set(args.rows)), args.repeat, args.keep)


def run(sizes: list[int], repeat: int, keep: bool) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="chatferry-bench-"))
    started = time.perf_counter()
    try:
        print(f"data dir {data_dir}; python {sys.version.split()[0]}; cpus {os.cpu_count()}")
        build_database(data_dir, sizes)
        print(
            f"demo data for {', '.join(f'{n:,}' for n in sizes)} comments: "
            f"{time.perf_counter() - started:.1f} s"
        )
        all_ok = report(sizes, repeat, data_dir)
        print(f"overall: {verdict(all_ok)}; bench took {time.perf_counter() - started:.0f} s")
    finally:
        if keep:
            print(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
