"""Prometheus metrics of one process: jobs, rows and bytes, HTTP requests.

Counters and histograms live in this process's registry; the queue's gauges (jobs
waiting and running by kind) are read from the database at scrape time, so they are the
same whichever process is scraped. See docs/operations.md, "Health and metrics", for scraping
several processes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

# No ``*_created`` series next to every counter and histogram: half the scrape for a
# timestamp that only says when the process first counted the label.
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

JOB_OUTCOMES = Counter(
    "chatferry_job_outcomes",
    "Job runs by kind and outcome (finished, failed, cancelled, skipped, retried, "
    "reaped, abandoned).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "chatferry_job_duration_seconds",
    "Run time of jobs that ended, by kind and outcome.",
    ["kind", "outcome"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
ROWS = Counter(
    "chatferry_rows",
    "Rows exported or imported, by direction and resource.",
    ["direction", "resource"],
    registry=REGISTRY,
)
BYTES = Counter(
    "chatferry_bytes",
    "Bytes of files exported or imported, by direction and resource.",
    ["direction", "resource"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "chatferry_http_requests",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "chatferry_http_request_duration_seconds",
    "HTTP request latency by route template and method.",
    ["route", "method"],
    buckets=_HTTP_BUCKETS,
    registry=REGISTRY,
)

_DIRECTIONS = {"export": "exported", "import": "imported"}


def job_done(
    kind: str, outcome: str, seconds: float, resource: str = "", rows: int = 0, size: int = 0
) -> None:
    """Counts a run that ended, with the rows and bytes it moved."""
    JOB_OUTCOMES.labels(kind, outcome).inc()
    JOB_DURATION.labels(kind, outcome).observe(seconds)
    direction = _DIRECTIONS.get(kind)
    if direction and outcome == "finished" and resource:
        ROWS.labels(direction, resource).inc(rows)
        BYTES.labels(direction, resource).inc(size)


def job_retried(kind: str) -> None:
    JOB_OUTCOMES.labels(kind, "retried").inc()


def job_reaped(kind: str, gave_up: bool) -> None:
    JOB_OUTCOMES.labels(kind, "abandoned" if gave_up else "reaped").inc()


# Every label takes its values from a fixed set, whatever clients send: a method outside
# these is counted as "other" (the route label is a route template or "unmatched").
STANDARD_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")
)
OTHER_METHOD = "other"


def method_label(method: str) -> str:
    return method if method in STANDARD_METHODS else OTHER_METHOD


def http_request(route: str, method: str, status: int, seconds: float) -> None:
    method = method_label(method)
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_LATENCY.labels(route, method).observe(seconds)
