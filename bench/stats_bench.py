"""Daily stats benchmark: GET /stats/daily over a million comments against a plain count.

Run: ``.venv/bin/python bench/stats_bench.py [--comments 1000000] [--days 366]
[--repeat 7] [--postgres] [--small]``

It fills one app (timezone America/New_York, so the range crosses two DST changes) with
``chatferry.demo`` data spread over the last ``--days`` days, adds finished exports that
cover every third week, and then times, in the same run and on the same database:

- the endpoint through the real app (``create_api`` + HTTP client, auth included), for
  the whole range and for the default 90 days;
- the baseline: one plain ``SELECT count(*)`` of the same rows over the same range (the
  least work any per-day answer must do: every row in the range is counted once).

It checks that the days add up to the baseline count. Target: the 366-day request takes
at most 2x the baseline plus 50 ms (HTTP, auth and JSON for 366 days).
With ``--postgres`` it runs on a fresh schema of CHATFERRY_TEST_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test), after VACUUM ANALYZE as autovacuum would.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from benchlib import DEFAULT_POSTGRES, argument_parser, postgres_schemas, print_header
from chatferry.api.app import create_api
from chatferry.apps.service import create_app
from chatferry.clock import utcnow
from chatferry.db.engine import transaction
from chatferry.db.models import Export
from chatferry.demo.generate import DemoSpec, generate
from chatferry.exports.dates import window_bounds_utc
from chatferry.runtime import Runtime, build_runtime
from chatferry.settings import Settings

TIMEZONE = "America/New_York"
STATS = "/api/v2.1/rest/stats/daily"
RATIO_TARGET = 2.0
OVERHEAD_ALLOWANCE_S = 0.05


@contextmanager
def database(postgres: bool, data_dir: Path) -> Iterator[str]:
    """A fresh database URL: a SQLite file, or a new PostgreSQL schema (dropped after)."""
    url = os.environ.get("CHATFERRY_TEST_POSTGRES_URL", DEFAULT_POSTGRES) if postgres else None
    with postgres_schemas(url) as schemas:
        yield schemas[0] if schemas else f"sqlite:///{data_dir / 'chatferry.db'}"


def fill(rt: Runtime, comments: int, days: int) -> tuple[int, str, str, float]:
    """Creates the app and its data; returns its pk, id, secret and the seconds it took."""
    started = time.perf_counter()
    with transaction(rt.sessions) as session:
        app, secret = create_app(
            session, rt.secrets, "stats bench", app_id="stats-bench", timezone=TIMEZONE
        )
        spec = DemoSpec(users=2000, rooms=1000, comments=comments, days=days, seed=42)
        generate(session, app.id, spec)
        add_covering_exports(session, app.id, days)
    return app.id, app.app_id, secret, time.perf_counter() - started


def add_covering_exports(session: Any, app_pk: int, days: int) -> None:
    """Finished export records (no files needed) covering every third week."""
    today = utcnow().date()
    now = utcnow()
    for week in range(0, days // 7, 3):
        end = today - timedelta(days=week * 7)
        session.add(
            Export(
                unique_id=str(uuid.uuid4()),
                app_pk=app_pk,
                resource_name="comments",
                status="finished",
                percentage=100,
                start_date=end - timedelta(days=6),
                end_date=end,
                storage_key=f"exports/stats-bench/{week}.json",
                created_at=now,
                finished_at=now,
            )
        )


def vacuum_analyze(rt: Runtime) -> None:
    with rt.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("VACUUM ANALYZE" if rt.engine.dialect.name != "sqlite" else "ANALYZE")


def timed(task: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    task()  # warm-up: caches, the credential check, the query plan
    seconds = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = task()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def baseline_count(rt: Runtime, app_pk: int, start: Any, end: Any) -> int:
    lower, upper = window_bounds_utc(start, end, TIMEZONE)
    query = text(
        "SELECT count(*) FROM comments WHERE app_pk = :app_pk "
        "AND created_at >= :lower AND created_at < :upper"
    )
    if rt.engine.dialect.name == "sqlite":  # stored as text, like UtcDateTime writes it
        params: dict[str, Any] = {
            "app_pk": app_pk,
            "lower": lower.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "upper": upper.strftime("%Y-%m-%d %H:%M:%S.%f"),
        }
    else:
        params = {"app_pk": app_pk, "lower": lower, "upper": upper}
    with rt.engine.connect() as conn:
        return int(conn.execute(query, params).scalar_one())


def report(name: str, seconds: list[float]) -> float:
    median = statistics.median(seconds)
    print(f"  {name:<44} median {median * 1000:8.1f} ms   min {min(seconds) * 1000:8.1f} ms")
    return median


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp, database(args.postgres, Path(tmp)) as url:
        rt = build_runtime(Settings(data_dir=Path(tmp), database_url=url))
        try:
            return measure(rt, args)
        finally:
            rt.close()


def measure(rt: Runtime, args: argparse.Namespace) -> int:
    app_pk, app_id, secret, fill_seconds = fill(rt, args.comments, args.days)
    vacuum_analyze(rt)
    backend = rt.engine.dialect.name
    print(f"{args.comments:,} comments over {args.days} days ({TIMEZONE}), {backend}")
    print(f"  filled in {fill_seconds:.1f} s")
    headers = {"QISCUS-SDK-APP-ID": app_id, "QISCUS-SDK-SECRET": secret}
    with TestClient(create_api(rt, run_worker=False)) as client:
        whole = client.get(STATS, params={"type": "comments"}, headers=headers).json()
        end = whole["results"]["end_date"]
        end_day = date.fromisoformat(end)
        start_day = end_day - timedelta(days=365)
        params = {"type": "comments", "start_date": start_day.isoformat(), "end_date": end}

        def year() -> Any:
            response = client.get(STATS, params=params, headers=headers)
            assert response.status_code == 200, response.text
            return response.json()["results"]

        def default() -> Any:
            return client.get(STATS, params={"type": "comments"}, headers=headers).json()

        year_s, results = timed(year, args.repeat)
        default_s, _ = timed(default, args.repeat)
    base_s, counted = timed(lambda: baseline_count(rt, app_pk, start_day, end_day), args.repeat)
    summed = sum(day["rows"] for day in results["days"])
    assert summed == counted, f"the days add up to {summed}, the baseline counts {counted}"
    backed = sum(day["backed_up"] for day in results["days"])
    print(f"  366 days: {counted:,} rows, {backed} days backed up; days add up to the count")
    stats_median = report("GET /stats/daily, 366 days (HTTP, auth, JSON)", year_s)
    report("GET /stats/daily, default 90 days", default_s)
    base_median = report("baseline: SELECT count(*) over the 366 days", base_s)
    ratio = stats_median / base_median
    budget = base_median * RATIO_TARGET + OVERHEAD_ALLOWANCE_S
    verdict = "OK" if stats_median <= budget else "SLOW"
    print(
        f"  ratio {ratio:.2f}x the baseline; target <= {RATIO_TARGET}x + "
        f"{OVERHEAD_ALLOWANCE_S * 1000:.0f} ms = {budget * 1000:.1f} ms: {verdict}"
    )
    return 0 if verdict == "OK" else 1


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--comments", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=366)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--postgres", action="store_true", help="run on PostgreSQL")
    parser.add_argument("--small", action="store_true", help="20,000 comments, 3 runs")
    args = parser.parse_args()
    if args.small:
        args.comments, args.repeat = 20_000, 3
    print_header("stats_bench")
    raise SystemExit(run(args))


if __name__ == "__main__":
    main()
