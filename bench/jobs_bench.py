"""Job queue benchmark on PostgreSQL: small exports/s with 1 and 3 worker processes, and
the delay between a schedule's due time and its job starting.

Run: ``.venv/bin/python bench/jobs_bench.py [--postgres URL] [--exports 200] [--repeat 3]
[--small] [--keep]`` (default URL postgresql://postgres@127.0.0.1:5432/test; ``--keep``
keeps the temp dir; ``--small``: 20 exports a batch, one pair, 4 schedules, judges nothing).
Everything lives in a fresh schema (``?options=-csearch_path%3D<schema>``) that the bench
creates and drops; export files go to local file storage in a temporary directory.

Setup: one app with 300 demo users, and a bench-only trigger on ``jobs`` (in the bench's
schema) that records ``clock_timestamp()`` in ``bench_job_events`` when a job is inserted
or changes status: each job's claim and finish time as the database saw them. (It adds
one small INSERT per status change to the PostgreSQL figures.)

1. Throughput. Three ``chatferry worker --concurrency 1`` processes (one job thread each,
   so this compares processes, not threads sharing a GIL) are started and warmed up
   (small exports are queued until each process has claimed one), then left idle on
   LISTEN/NOTIFY. A batch is N ``users`` exports (300 rows each, the default 30-day
   window) created with ``create_export`` in ONE transaction; its commit wakes the
   workers. Timed: from that commit to the last job's finish, so process start-up is
   excluded (the first claim follows the commit by ~10 ms, shown). Batches come in
   pairs: first with two of the processes SIGSTOPped (1 worker process; a stopped one
   claims nothing and uses no CPU), then with all 3 - adjacent, so both halves of a pair
   see about the same load from the rest of the machine. Target: median pair ratio
   3/1 >= 2. Each batch also shows the CPU the workers and their PostgreSQL backends
   (found by application_name, set with PGAPPNAME) used per export, and how the
   machine's cores were shared meanwhile (``/proc``); the summary line derives from
   those what bounds the ratio.
2. Schedule delay. With the 3 worker processes (each runs a Scheduler thread, passes
   every 1 s) idle, 20 schedules (cron ``0 0 1 1 *``, so no other run fires meanwhile)
   get ``next_run_at`` set to staggered times 2 s to ~9 s ahead. For each run: due time
   -> export created (the scheduler's compare-and-set fired it), -> job claimed (trigger
   time of ``running``), -> job done. Target: median due -> claimed < 2 s.

Findings (2 cores, shared with other test runs): see the output's "what bounds it" line.
A small export is ~35 database round trips (9 of them pool pre-pings, one per connection
checkout) and ~12-14 ms of worker CPU (psycopg + SQLAlchemy per statement) plus ~5 ms of
PostgreSQL CPU. One worker process and its backend take turns, so they are busy about
half the time; 3 processes can fill both cores, which allows a ratio of ~2-4 on an idle
machine, but only what the other processes leave. Claiming is not the bottleneck: the
claim is ~1 ms of CPU of an export's ~18 ms, SKIP LOCKED lets processes claim without
waiting on each other, and the first claim follows the commit within ~10 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.exc import SAWarning

from benchlib import (
    DEFAULT_POSTGRES,
    Summary,
    argument_parser,
    chatferry_env,
    fresh_schemas,
    load_average,
    postgres_problem,
    print_header,
    stop_process,
)
from chatferry.apps.service import app_context, create_app, get_app
from chatferry.clock import utcnow
from chatferry.db.engine import transaction
from chatferry.db.models import Export, Job, table_of
from chatferry.demo.generate import DemoSpec, generate
from chatferry.exports.requests import ExportRequest
from chatferry.exports.service import create_export
from chatferry.jobs.status import JobStatus
from chatferry.runtime import Runtime, build_runtime
from chatferry.schedules.requests import ScheduleRequest
from chatferry.schedules.service import create_schedule
from chatferry.settings import Settings

RATIO_TARGET = 2.0
DELAY_TARGET_SECONDS = 2.0
CONCURRENCY = 1  # job threads per worker process
APP_ID = "bench-jobs"
DEMO = DemoSpec(users=300, rooms=30, comments=0, days=30, seed=5)
SCHEDULES = 20
SCHEDULE_LEAD_SECONDS = 2.0
SCHEDULE_STEP_SECONDS = 0.37  # not a multiple of the schedulers' 1 s pass
POLL_SECONDS = 0.05  # the bench's status polls (times come from the trigger)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DONE_STATUSES = ("finished", "failed", "cancelled")

USERS_EXPORT = ExportRequest.model_validate({"type": "users"})
_exports = table_of(Export)
_jobs = table_of(Job)

PROBE_SQL = """
CREATE TABLE bench_job_events (
    job_id bigint NOT NULL,
    status text NOT NULL,
    owner text,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION bench_job_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO bench_job_events (job_id, status, owner)
        VALUES (NEW.id, NEW.status, NEW.lease_owner);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER bench_job_event AFTER INSERT OR UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION bench_job_event();
"""


# ---------------------------------------------------------------- database


def build_database(rt: Runtime) -> None:
    """The app with its demo users, and the job-event trigger (bench-only)."""
    with transaction(rt.sessions) as session:
        app, _ = create_app(session, rt.secrets, "bench jobs", app_id=APP_ID)
        generate(session, app.id, DEMO)
    with rt.engine.begin() as conn:
        conn.exec_driver_sql(PROBE_SQL)


def queue_exports(rt: Runtime, count: int) -> list[int]:
    """Creates ``count`` users exports in one transaction (its commit notifies the
    workers); returns their ids."""
    with transaction(rt.sessions) as session:
        ctx = app_context(get_app(session, APP_ID), rt.settings)
    with transaction(rt.sessions) as session:
        return [create_export(session, rt.settings, ctx, USERS_EXPORT).id for _ in range(count)]


def wait_finished(rt: Runtime, export_ids: list[int], timeout: float) -> None:
    """Until every export is finished and its job done (the worker records the job's
    outcome just after the export's)."""
    deadline = time.monotonic() + timeout
    open_jobs = select(func.count()).where(
        _jobs.c.kind == "export",
        _jobs.c.target_id.in_(export_ids),
        _jobs.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
    )
    while True:
        with rt.engine.connect() as conn:
            statuses = Counter(
                conn.scalars(select(_exports.c.status).where(_exports.c.id.in_(export_ids)))
            )
            running = conn.scalar(open_jobs)
        if sum(statuses[s] for s in DONE_STATUSES) == len(export_ids) and not running:
            if statuses["finished"] != len(export_ids):
                raise SystemExit(f"some exports did not finish: {dict(statuses)}")
            return
        if time.monotonic() > deadline:
            raise SystemExit(
                f"exports still running after {timeout:.0f} s: {dict(statuses)}, "
                f"{running} jobs not done"
            )
        time.sleep(POLL_SECONDS)


@dataclass
class JobTimes:
    claimed: datetime  # the first claim (a job can be claimed again after a lease expiry)
    finished: datetime
    owner: str


def job_times(rt: Runtime, export_ids: list[int]) -> dict[int, JobTimes]:
    """Per export id: when its job was claimed and finished, and by whom."""
    query = text(
        "SELECT j.target_id, e.status, e.owner, e.at FROM bench_job_events e "
        "JOIN jobs j ON j.id = e.job_id "
        "WHERE j.kind = 'export' AND j.target_id = ANY(:ids) ORDER BY e.at"
    )
    claimed: dict[int, tuple[datetime, str]] = {}
    finished: dict[int, datetime] = {}
    with rt.engine.connect() as conn:
        for target_id, status, owner, at in conn.execute(query, {"ids": export_ids}):
            if status == JobStatus.RUNNING:
                claimed.setdefault(target_id, (at, owner or ""))
            elif status == JobStatus.DONE:
                finished[target_id] = at
    return {
        i: JobTimes(claimed[i][0], finished[i], claimed[i][1]) for i in export_ids if i in finished
    }


def owner_pid(owner: str) -> int:
    """``host:pid:thread`` -> pid."""
    return int(owner.split(":")[1])


# ---------------------------------------------------------------- CPU accounting


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS


@dataclass
class CpuSample:
    at: float
    workers: float  # the worker processes
    backends: dict[int, float]  # their PostgreSQL backends (by application_name)
    bench: float
    busy: float
    steal: float


def sample_cpu(rt: Runtime, workers: list[WorkerProcess], app_name: str) -> CpuSample:
    with rt.engine.connect() as conn:
        pids = conn.scalars(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
            {"name": app_name},
        ).all()
    busy, steal = machine_cpu()
    return CpuSample(
        time.monotonic(),
        sum(process_cpu(w.process.pid) for w in workers),
        {pid: process_cpu(pid) for pid in pids},
        process_cpu(os.getpid()),
        busy,
        steal,
    )


@dataclass
class CpuUse:
    """CPU seconds used between two samples, and the wall time between them."""

    wall: float
    workers: float
    backends: float
    bench: float
    busy: float
    steal: float

    @property
    def others(self) -> float:
        """Everything else on the machine (other tests, the bench's own backend...)."""
        return max(0.0, self.busy - self.workers - self.backends - self.bench)


def cpu_between(before: CpuSample, after: CpuSample) -> CpuUse:
    # A backend that appeared in between started from 0 CPU seconds.
    backends = sum(cpu - before.backends.get(pid, 0.0) for pid, cpu in after.backends.items())
    return CpuUse(
        after.at - before.at,
        after.workers - before.workers,
        backends,
        after.bench - before.bench,
        after.busy - before.busy,
        after.steal - before.steal,
    )


# ---------------------------------------------------------------- worker processes


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def worker_processes(
    settings: Settings, count: int, tag: str, app_name: str
) -> Iterator[list[WorkerProcess]]:
    """``chatferry worker --concurrency CONCURRENCY`` x count; SIGTERM and wait on exit.
    Their pooled PostgreSQL connections carry ``app_name`` (libpq's PGAPPNAME)."""
    env = {**chatferry_env(settings.data_dir, settings.database_url), "PGAPPNAME": app_name}
    command = [sys.executable, "-m", "chatferry", "worker", "--concurrency", str(CONCURRENCY)]
    workers: list[WorkerProcess] = []
    try:
        for index in range(count):
            log = settings.data_dir / f"worker-{tag}-{index}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
            workers.append(WorkerProcess(process, log))
        yield workers
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGCONT)  # if the bench stopped it
                worker.process.send_signal(signal.SIGTERM)
        for worker in workers:
            stop_process(worker.process, timeout=45)


def warm_up(rt: Runtime, workers: list[WorkerProcess], timeout: float = 90.0) -> float:
    """Queues small batches until every worker process has claimed a job (so all are
    started and connected), then lets them go idle. Returns the seconds it took."""
    started = time.monotonic()
    wanted = {w.process.pid for w in workers}
    seen: set[int] = set()
    while not wanted <= seen:
        for worker in workers:
            if worker.process.poll() is not None:
                raise SystemExit(f"a worker exited:\n{worker.log.read_text()[-5000:]}")
        if time.monotonic() - started > timeout:
            raise SystemExit(f"only {len(seen)} of {len(wanted)} workers claimed jobs")
        ids = queue_exports(rt, 2 * len(workers))
        wait_finished(rt, ids, timeout)
        seen |= {owner_pid(t.owner) for t in job_times(rt, ids).values()}
    time.sleep(1.0)  # every job thread back in its idle wait, every listener connected
    return time.monotonic() - started


# ---------------------------------------------------------------- 1. throughput


@dataclass
class Batch:
    count: int
    committed: datetime
    first_claim: datetime
    last_finish: datetime
    per_process: list[int]
    cpu: CpuUse

    @property
    def seconds(self) -> float:
        return (self.last_finish - self.committed).total_seconds()

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    @property
    def pickup_ms(self) -> float:
        return (self.first_claim - self.committed).total_seconds() * 1000

    @property
    def worker_ms(self) -> float:
        return self.cpu.workers / self.count * 1000

    @property
    def backend_ms(self) -> float:
        return self.cpu.backends / self.count * 1000


def run_batch(rt: Runtime, workers: list[WorkerProcess], app_name: str, count: int) -> Batch:
    ids = queue_exports(rt, count)
    committed = utcnow()
    before = sample_cpu(rt, workers, app_name)
    wait_finished(rt, ids, timeout=120)
    after = sample_cpu(rt, workers, app_name)
    times = job_times(rt, ids)
    assert len(times) == count, f"{count - len(times)} jobs have no recorded finish"
    per_process = Counter(owner_pid(t.owner) for t in times.values())
    return Batch(
        count,
        committed,
        min(t.claimed for t in times.values()),
        max(t.finished for t in times.values()),
        sorted(per_process.values(), reverse=True),
        cpu_between(before, after),
    )


def pause(workers: list[WorkerProcess], stop: bool) -> None:
    """SIGSTOP (or SIGCONT) idle worker processes: a stopped one claims nothing and
    uses no CPU, so the running ones are "1 worker process"."""
    for worker in workers:
        worker.process.send_signal(signal.SIGSTOP if stop else signal.SIGCONT)


def print_batch(label: str, batch: Batch) -> None:
    cpu = batch.cpu
    wall = cpu.wall
    print(
        f"  {label}: {batch.count} exports in {batch.seconds:5.2f} s = "
        f"{batch.per_second:5.1f} exports/s (first claim {batch.pickup_ms:.0f} ms after "
        f"commit; jobs per process {batch.per_process})\n"
        f"      CPU per export: workers {batch.worker_ms:4.1f} ms + their PostgreSQL backends "
        f"{batch.backend_ms:4.1f} ms; cores used over {wall:.1f} s: {cpu.workers / wall:.2f} "
        f"workers, {cpu.backends / wall:.2f} backends, {cpu.bench / wall:.2f} bench, "
        f"{cpu.others / wall:.2f} others, {cpu.steal / wall:.2f} steal"
    )


def throughput(
    rt: Runtime, workers: list[WorkerProcess], app_name: str, count: int, repeat: int
) -> tuple[list[Batch], list[Batch]]:
    """``repeat`` pairs of batches, 1 process (the others stopped) then all 3, so that
    both see about the same load from the rest of the machine."""
    ones: list[Batch] = []
    threes: list[Batch] = []
    for index in range(repeat):
        pause(workers[1:], stop=True)
        try:
            time.sleep(0.2)
            ones.append(run_batch(rt, workers[:1], app_name, count))
        finally:
            pause(workers[1:], stop=False)
        time.sleep(0.5)  # the resumed processes see the batch's NOTIFYs, find nothing
        threes.append(run_batch(rt, workers, app_name, count))
        ratio = threes[-1].per_second / ones[-1].per_second
        print(f"  pair {index + 1}: ratio 3/1 = {ratio:.2f}")
        print_batch("1 process  ", ones[-1])
        print_batch("3 processes", threes[-1])
        time.sleep(0.5)
    return ones, threes


def explain_ratio(ones: list[Batch], threes: list[Batch]) -> None:
    """What bounds the ratio, from the CPU figures of all batches."""
    cores = os.cpu_count() or 1

    def cost_ms(batches: list[Batch]) -> float:
        cpu = sum(b.cpu.workers + b.cpu.backends for b in batches)
        return cpu / sum(b.count for b in batches) * 1000

    one_rate = statistics.median(b.per_second for b in ones)
    busy = cost_ms(ones) * one_rate / 1000
    ceiling = cores * 1000 / cost_ms(ones)
    wall = sum(b.cpu.wall for b in threes)
    available = cores - sum(b.cpu.others + b.cpu.bench + b.cpu.steal for b in threes) / wall
    print(
        f"  what bounds it: an export costs {cost_ms(ones):.1f} ms of CPU with 1 process "
        f"({cost_ms(threes):.1f} ms with 3), worker + PostgreSQL, which take turns: the 1 "
        f"process and its backend are busy {busy:.0%} of the time. {cores} idle cores would "
        f"allow ~{ceiling:.0f} exports/s (ratio {ceiling / one_rate:.1f}); during the "
        f"3-process batches the rest of the machine (other processes, the bench's polls, "
        f"steal) left {available:.2f} cores, i.e. ~{available * 1000 / cost_ms(threes):.0f} "
        "exports/s."
    )


# ---------------------------------------------------------------- 2. schedule delay


def create_due_schedules(rt: Runtime, count: int) -> dict[int, datetime]:
    """``count`` schedules due at staggered near-future times; returns id -> due time."""
    first = utcnow() + timedelta(seconds=SCHEDULE_LEAD_SECONDS)
    due: dict[int, datetime] = {}
    with transaction(rt.sessions) as session:
        ctx = app_context(get_app(session, APP_ID), rt.settings)
        body = {"type": "users", "cron": "0 0 1 1 *", "window_days": 1, "keep_last": 2}
        request = ScheduleRequest.model_validate(body)
        for index in range(count):
            schedule = create_schedule(session, ctx, request)
            schedule.next_run_at = first + timedelta(seconds=index * SCHEDULE_STEP_SECONDS)
            due[schedule.id] = schedule.next_run_at
        session.flush()
    return due


def schedule_delays(rt: Runtime, count: int) -> dict[str, list[float]]:
    due = create_due_schedules(rt, count)
    last_due = max(due.values())
    query = select(
        _exports.c.id,
        _exports.c.schedule_id,
        _exports.c.scheduled_for,
        _exports.c.created_at,
        _exports.c.status,
    ).where(_exports.c.schedule_id.in_(list(due)))
    deadline = time.monotonic() + (last_due - utcnow()).total_seconds() + 60
    while True:
        with rt.engine.connect() as conn:
            rows = conn.execute(query).all()
        if len(rows) == count and all(r.status in DONE_STATUSES for r in rows):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(rows)} of {count} schedule runs appeared in time")
        time.sleep(POLL_SECONDS)
    wait_finished(rt, [r.id for r in rows], timeout=30)  # and their jobs done
    times = job_times(rt, [r.id for r in rows])
    delays: dict[str, list[float]] = {"export created": [], "job claimed": [], "finished": []}
    for row in rows:
        scheduled = due[row.schedule_id]
        assert row.scheduled_for == scheduled, (row.scheduled_for, scheduled)
        delays["export created"].append((row.created_at - scheduled).total_seconds())
        delays["job claimed"].append((times[row.id].claimed - scheduled).total_seconds())
        delays["finished"].append((times[row.id].finished - scheduled).total_seconds())
    return delays


# ---------------------------------------------------------------- report


def run(args: argparse.Namespace, summary: Summary) -> None:
    problem = postgres_problem(args.postgres)
    if problem:
        raise SystemExit(f"PostgreSQL at {args.postgres}: {problem}")
    data_dir = Path(tempfile.mkdtemp(prefix="chatferry-jobs-bench-"))
    try:
        with fresh_schemas(args.postgres) as (url,):
            settings = Settings(data_dir=data_dir, database_url=url)
            rt = build_runtime(settings)
            try:
                build_database(rt)
                report(rt, settings, args, summary, f"chatferry-bench-{uuid.uuid4().hex[:8]}")
            finally:
                rt.close()
    finally:
        if args.keep:
            print(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def report_throughput(ones: list[Batch], threes: list[Batch], summary: Summary) -> None:
    ratios = [t.per_second / o.per_second for o, t in zip(ones, threes, strict=True)]
    ratio = statistics.median(ratios)
    one = statistics.median(b.per_second for b in ones)
    three = statistics.median(b.per_second for b in threes)
    print(
        f"  median 1 process {one:.1f}/s, 3 processes {three:.1f}/s; median ratio 3/1 of the "
        f"pairs = {ratio:.2f} (pairs {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    explain_ratio(ones, threes)
    summary.add(
        f"PostgreSQL small exports ({ones[0].count} users exports of {DEMO.users} rows a "
        "batch), 3 worker processes vs 1",
        f"{three:.1f} exports/s",
        f"1 process {one:.1f} exports/s",
        f"{ratio:.2f}",
        f">= {RATIO_TARGET:g}",
        ratio >= RATIO_TARGET,
    )


def report_delays(delays: dict[str, list[float]], summary: Summary) -> None:
    for name, values in delays.items():
        print(
            f"  due -> {name:<14}: median {statistics.median(values):5.2f} s  "
            f"min {min(values):5.2f} s  max {max(values):5.2f} s"
        )
    median = statistics.median(delays["job claimed"])
    summary.add(
        "PostgreSQL schedule delay, due -> job claimed (median), 3 idle worker processes",
        f"{median:.2f} s",
        "",
        "",
        f"< {DELAY_TARGET_SECONDS:g} s",
        median < DELAY_TARGET_SECONDS,
    )


def report(
    rt: Runtime, settings: Settings, args: argparse.Namespace, summary: Summary, app_name: str
) -> None:
    with worker_processes(settings, 3, "x3", app_name) as workers:
        warm = warm_up(rt, workers)
        print(
            f"--- throughput: 3 `chatferry worker --concurrency {CONCURRENCY}` processes "
            f"(warm-up {warm:.1f} s); {args.exports} exports a batch, timed from the commit that "
            f"queues them to the last job's finish; load {load_average()}"
        )
        ones, threes = throughput(rt, workers, app_name, args.exports, args.repeat)
        report_throughput(ones, threes, summary)
        last = SCHEDULE_LEAD_SECONDS + (args.schedules - 1) * SCHEDULE_STEP_SECONDS
        print(
            f"--- schedule delay: {args.schedules} schedules due {SCHEDULE_LEAD_SECONDS:.0f} s "
            f"to {last:.1f} s ahead, the 3 worker processes (3 schedulers) idle; "
            f"load {load_average()}"
        )
        delays = schedule_delays(rt, args.schedules)
    report_delays(delays, summary)


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument(
        "--postgres", default=DEFAULT_POSTGRES, metavar="URL", help="a fresh schema is used here"
    )
    parser.add_argument("--exports", type=int, default=200, help="exports per timed batch")
    parser.add_argument("--repeat", type=int, default=3, help="pairs of timed batches")
    parser.add_argument("--schedules", type=int, default=SCHEDULES, help="schedules timed")
    parser.add_argument("--small", action="store_true", help="20 exports, 1 pair, 4 schedules")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.small:
        args.exports, args.repeat, args.schedules = 20, 1, 4
    return args


def main() -> None:
    # Many create_export calls in one transaction: from the second on, its begin_write
    # (BEGIN IMMEDIATE, for SQLite) finds the transaction begun; harmless on PostgreSQL.
    warnings.filterwarnings("ignore", "Connection is already established", SAWarning)
    args = parse_args()
    print_header("jobs_bench")
    started = time.perf_counter()
    summary = Summary("jobs_bench", judged=not args.small)
    run(args, summary)
    summary.print()
    print(f"bench took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
