"""Every app's quota usage and limits as Prometheus gauges, read at scrape time.

One statement for all apps (a subquery per quota, each on an index of the app's rows).
The ``app`` label is bounded: apps are created by the operator, not by requests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, ScalarSelect, Select, func, select

from chatferry.apps.quotas import (
    ACTIVE_JOBS,
    EXPORTS_PER_HOUR,
    HOUR,
    IMPORTS_PER_HOUR,
    QUOTAS,
    STORED_BYTES,
    limits,
)
from chatferry.clock import utcnow
from chatferry.db.engine import read_connection
from chatferry.db.models import App, Export, Job, table_of
from chatferry.jobs.status import JobStatus
from chatferry.obs.log import log_event
from chatferry.settings import Settings

log = logging.getLogger(__name__)
_apps = table_of(App)
_jobs = table_of(Job)
_exports = table_of(Export)


def _usage_query() -> Select[Any]:
    since = utcnow() - HOUR
    mine = _jobs.c.app_pk == _apps.c.id

    def created(kind: str) -> ScalarSelect[Any]:
        where = (mine, _jobs.c.kind == kind, _jobs.c.created_at >= since)
        return select(func.count()).where(*where).scalar_subquery()

    active = select(func.count()).where(
        _jobs.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]), mine
    )
    stored = select(func.coalesce(func.sum(_exports.c.size), 0)).where(
        _exports.c.app_pk == _apps.c.id, _exports.c.storage_key != ""
    )
    return select(
        _apps,
        created("export").label(EXPORTS_PER_HOUR.name),
        created("import").label(IMPORTS_PER_HOUR.name),
        active.scalar_subquery().label(ACTIVE_JOBS.name),
        stored.scalar_subquery().label(STORED_BYTES.name),
    ).order_by(_apps.c.app_id)


class QuotaCollector(Collector):
    """``chatferry_app_quota_used`` and ``chatferry_app_quota_limit`` by app and quota."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    def collect(self) -> Iterator[Metric]:
        used = GaugeMetricFamily(
            "chatferry_app_quota_used",
            "What each app uses of each quota now (see docs/quotas.md).",
            labels=["app", "quota"],
        )
        limit = GaugeMetricFamily(
            "chatferry_app_quota_limit",
            "Each app's quotas (0: no limit).",
            labels=["app", "quota"],
        )
        try:
            with read_connection(self._engine) as conn:
                rows = conn.execute(_usage_query()).all()
        except Exception as exc:
            log_event(log, "could not read the quota usage for /metrics", logging.WARNING, exc)
            return
        for row in rows:
            quota = limits(row, self._settings)
            for q in QUOTAS:
                used.add_metric([row.app_id, q.name], getattr(row, q.name))
                limit.add_metric([row.app_id, q.name], quota[q.name])
        yield used
        yield limit
