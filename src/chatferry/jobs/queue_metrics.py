"""What a Prometheus scrape of one process returns: its own counters and histograms
(``obs.metrics``) plus the queue's gauges, read from the database at scrape time.

``chatferry serve`` answers it on ``/metrics``; ``chatferry worker --metrics-port N``
serves it on its own port. The queue's gauges count every job of the deployment, so
each process reports the same numbers: aggregate them with max(), not sum().
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from chatferry.db.models import Job, table_of
from chatferry.jobs.status import JobStatus
from chatferry.obs import metrics
from chatferry.obs.log import log_event

log = logging.getLogger(__name__)
_jobs = table_of(Job)
KINDS = ("export", "import")


def queue_counts(engine: Engine) -> dict[tuple[str, str], int]:
    """Jobs queued and running, by (kind, status); every known kind is present."""
    query = (
        select(_jobs.c.kind, _jobs.c.status, func.count())
        .where(_jobs.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        .group_by(_jobs.c.kind, _jobs.c.status)
    )
    counts: dict[tuple[str, str], int] = {
        (kind, status): 0 for kind in KINDS for status in (JobStatus.QUEUED, JobStatus.RUNNING)
    }
    with engine.connect() as conn:
        for kind, status, count in conn.execute(query):
            counts[(kind, status)] = count
    return counts


class QueueCollector(Collector):
    """Jobs waiting and running by kind, read from the database at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        try:
            counts = queue_counts(self._engine)
        except Exception as exc:
            # The process's own metrics are still worth a scrape without the queue's.
            log_event(log, "could not read the job queue for /metrics", logging.WARNING, exc)
            return
        waiting = GaugeMetricFamily(
            "chatferry_jobs_waiting",
            "Jobs queued (due or not yet due), by kind; the same in every process.",
            labels=["kind"],
        )
        running = GaugeMetricFamily(
            "chatferry_jobs_running",
            "Jobs running now (in any process), by kind; the same in every process.",
            labels=["kind"],
        )
        for (kind, status), count in sorted(counts.items()):
            family = waiting if status == JobStatus.QUEUED else running
            family.add_metric([kind], count)
        yield waiting
        yield running


class ProcessMetrics(Collector):
    """This process's counters and histograms, then the queue's gauges."""

    def __init__(self, engine: Engine, *extra: Collector) -> None:
        self._queue = QueueCollector(engine)
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        yield from metrics.REGISTRY.collect()
        yield from self._queue.collect()
        for collector in self._extra:
            yield from collector.collect()


def metrics_text(engine: Engine, *extra: Collector) -> bytes:
    """The Prometheus text exposition of this process (and of ``extra`` collectors)."""
    return generate_latest(ProcessMetrics(engine, *extra))


def serve_metrics(engine: Engine, host: str, port: int) -> WSGIServer:
    """Serves this process's metrics on http://host:port/metrics in a daemon thread;
    ``shutdown()`` the returned server to stop."""
    server, _thread = start_http_server(port, host, registry=ProcessMetrics(engine))
    return server
