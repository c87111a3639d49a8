"""Quotas per app: exports and imports created an hour, jobs queued or running at once,
and bytes of export files kept on storage.

Each quota is a deployment setting (``CHATFERRY_QUOTA_*``) that an app may override
(``chatferry apps set-limits``); 0 means no limit. A request that would go over a quota
is refused and nothing of it kept: 429 with ``Retry-After`` where waiting helps (the
hourly quotas, the active jobs), 409 for the stored bytes (only deleting exports helps).

Counted atomically: the caller inserts the new record and its job, then ``admit`` locks
the app's row (``SELECT ... FOR NO KEY UPDATE`` on PostgreSQL; on SQLite the insert
holds the database's write lock already) and counts, in the same transaction; so two API
processes cannot both take an app's last slot. The hourly counts read the jobs table
(jobs are never deleted), so deleting an export does not give its slot back.
The runs a schedule fires by itself count but are not refused (a schedule must not
skip a run); a run the app asks for (run now) is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, func, select
from sqlalchemy.orm import Session

from chatferry.clock import utcnow
from chatferry.db.models import App, Export, Job, table_of
from chatferry.errors import ChatferryError, TooManyRequests
from chatferry.jobs.status import JobStatus
from chatferry.settings import Settings

HOUR = timedelta(hours=1)
# A 429 for the active jobs: jobs end in seconds to minutes; ask again soon.
ACTIVE_JOBS_RETRY_SECONDS = 2

_apps = table_of(App)
_jobs = table_of(Job)
_exports = table_of(Export)


@dataclass(frozen=True)
class Quota:
    name: str  # the key in the API, the metrics and `apps list --json`
    what: str  # what it counts, for messages
    unit: str

    @property
    def column(self) -> str:
        """The apps column that holds the app's own value (NULL: the setting's)."""
        return f"quota_{self.name}"

    @property
    def setting(self) -> str:
        return f"CHATFERRY_QUOTA_{self.name.upper()}"

    @property
    def option(self) -> str:
        """The ``chatferry apps set-limits`` option."""
        return "--" + self.name.replace("_", "-")


EXPORTS_PER_HOUR = Quota("exports_per_hour", "exports created in the last hour", "exports")
IMPORTS_PER_HOUR = Quota("imports_per_hour", "imports created in the last hour", "imports")
ACTIVE_JOBS = Quota("active_jobs", "exports and imports queued or running", "jobs")
STORED_BYTES = Quota("stored_bytes", "bytes of export files kept on storage", "bytes")
QUOTAS = (EXPORTS_PER_HOUR, IMPORTS_PER_HOUR, ACTIVE_JOBS, STORED_BYTES)
_PER_HOUR = {"export": EXPORTS_PER_HOUR, "import": IMPORTS_PER_HOUR}


class QuotaExceeded(TooManyRequests):
    """Over an hourly quota or the active jobs: waiting helps (``Retry-After``)."""


class StoredBytesExceeded(ChatferryError):
    """Over the stored bytes: waiting does not help, deleting exports does."""

    status = 409


def overrides(app: App | Row[Any]) -> dict[str, int | None]:
    """The app's own quota values (None: the deployment's setting applies)."""
    return {q.name: getattr(app, q.column) for q in QUOTAS}


def limits(app: App | Row[Any], settings: Settings) -> dict[str, int]:
    """The quotas that apply to the app (0: no limit)."""
    own = overrides(app)
    return {q.name: _either(own[q.name], getattr(settings, q.column)) for q in QUOTAS}


def _either(own: int | None, default: int) -> int:
    return default if own is None else own


def usage(conn: Connection, app_pk: int, now: datetime | None = None) -> dict[str, int]:
    """What the app uses of each quota now."""
    since = (now or utcnow()) - HOUR
    return {
        EXPORTS_PER_HOUR.name: _created_since(conn, app_pk, "export", since)[0],
        IMPORTS_PER_HOUR.name: _created_since(conn, app_pk, "import", since)[0],
        ACTIVE_JOBS.name: _active_jobs(conn, app_pk),
        STORED_BYTES.name: _stored_bytes(conn, app_pk),
    }


def _created_since(
    conn: Connection, app_pk: int, kind: str, since: datetime
) -> tuple[int, datetime | None]:
    """The app's jobs of ``kind`` created since then, and the oldest one's time."""
    query = select(func.count(), func.min(_jobs.c.created_at)).where(
        _jobs.c.app_pk == app_pk, _jobs.c.kind == kind, _jobs.c.created_at >= since
    )
    count, oldest = conn.execute(query).one()
    return int(count), oldest


def _active_jobs(conn: Connection, app_pk: int) -> int:
    query = select(func.count()).where(
        _jobs.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]), _jobs.c.app_pk == app_pk
    )
    return int(conn.scalar(query) or 0)


def _stored_bytes(conn: Connection, app_pk: int) -> int:
    query = select(func.coalesce(func.sum(_exports.c.size), 0)).where(
        _exports.c.app_pk == app_pk, _exports.c.storage_key != ""
    )
    return int(conn.scalar(query) or 0)


def _locked_app(session: Session, app_pk: int) -> Row[Any]:
    """The app's row, locked until the transaction ends (PostgreSQL: FOR NO KEY UPDATE,
    which waits for another admit but not for inserts that reference the app)."""
    query = select(_apps).where(_apps.c.id == app_pk).with_for_update(key_share=True)
    return session.execute(query).one()


def admit(
    session: Session,
    settings: Settings,
    app_pk: int,
    kind: str,
    added: int = 1,
    now: datetime | None = None,
) -> None:
    """Raises QuotaExceeded or StoredBytesExceeded if the ``added`` records of ``kind``
    ("export" or "import") just inserted take the app over one of its quotas (the
    caller's transaction then rolls back). Call it in the transaction that inserted the
    records and their jobs, after the insert: that insert holds SQLite's write lock, and
    the row lock taken here makes PostgreSQL's racing transactions count one after the
    other."""
    now = now or utcnow()
    app = _locked_app(session, app_pk)
    quota = limits(app, settings)
    conn = session.connection()
    # The counts include the new jobs: what the app had before is the count minus them.
    active = _active_jobs(conn, app_pk) - added
    _check_active(quota[ACTIVE_JOBS.name], active, added, app.app_id)
    hourly = _PER_HOUR[kind]
    count, oldest = _created_since(conn, app_pk, kind, now - HOUR)
    _check_hourly(hourly, quota[hourly.name], count - added, added, oldest, now, app.app_id)
    if kind == "export":
        _check_stored(quota[STORED_BYTES.name], _stored_bytes(conn, app_pk), app.app_id)


def refusal_details(quota: Quota, limit: int, used: int) -> dict[str, Any]:
    """The extension keys of a quota's refusal, for clients that act on it."""
    return {
        "code": "quota_exceeded",
        "quota": quota.name,
        "limit": limit,
        "used": used,
        "setting": quota.setting,
    }


def _how_to_raise(quota: Quota, app_id: str) -> str:
    return (
        f"ask the operator to raise it ({quota.setting}, or 'chatferry apps set-limits "
        f"{app_id} {quota.option} N')"
    )


def _check_active(limit: int, used: int, added: int, app_id: str) -> None:
    if not limit or used + added <= limit:
        return
    raise QuotaExceeded(
        f"this app already has {used} exports and imports queued or running, its quota "
        f"{ACTIVE_JOBS.name} of {limit}: retry after {ACTIVE_JOBS_RETRY_SECONDS} s, when "
        f"some have finished, or {_how_to_raise(ACTIVE_JOBS, app_id)}",
        refusal_details(ACTIVE_JOBS, limit, used),
        {"Retry-After": str(ACTIVE_JOBS_RETRY_SECONDS)},
    )


def _check_hourly(
    quota: Quota,
    limit: int,
    used: int,
    added: int,
    oldest: datetime | None,
    now: datetime,
    app_id: str,
) -> None:
    if not limit or used + added <= limit:
        return
    # The oldest one counted leaves the hour then: a slot is free again.
    wait = max(1, math.ceil(((oldest or now) + HOUR - now).total_seconds()))
    raise QuotaExceeded(
        f"this app created {used} {quota.unit} in the last hour, its quota {quota.name} "
        f"of {limit}: retry after {wait} s, or "
        f"{_how_to_raise(quota, app_id)}",
        {**refusal_details(quota, limit, used), "retry_after": wait},
        {"Retry-After": str(wait)},
    )


def _check_stored(limit: int, used: int, app_id: str) -> None:
    if not limit or used < limit:
        return
    raise StoredBytesExceeded(
        f"this app's export files take {used} bytes on storage, its quota "
        f"{STORED_BYTES.name} of {limit} bytes: delete exports you have downloaded "
        f"(DELETE /api/v2.1/rest/exports/{{unique_id}}), then retry, or "
        f"{_how_to_raise(STORED_BYTES, app_id)}",
        refusal_details(STORED_BYTES, limit, used),
    )


def set_overrides(app: App, values: dict[str, int | None], clear: list[str]) -> None:
    """Sets the app's own quota values (None: unchanged) and clears those in ``clear``
    (back to the deployment's settings); ValueError for a negative value or an unknown
    name."""
    names = {q.name for q in QUOTAS}
    for name in clear:
        if name not in names:
            raise ValueError(f"no quota named {name!r}: use one of {', '.join(sorted(names))}")
        setattr(app, f"quota_{name}", None)
    for name, value in values.items():
        if value is None:
            continue
        if value < 0:
            raise ValueError(f"{name} must be 0 (no limit) or more, not {value}")
        setattr(app, f"quota_{name}", value)


def report(conn: Connection, settings: Settings, app_pk: int) -> list[dict[str, Any]]:
    """Each quota of the app with its limit (0: none), what it uses, and the setting."""
    app = conn.execute(select(_apps).where(_apps.c.id == app_pk)).one()
    quota = limits(app, settings)
    used = usage(conn, app_pk)
    own = overrides(app)
    return [
        {
            "name": q.name,
            "description": q.what,
            "limit": quota[q.name],
            "used": used[q.name],
            "unit": q.unit,
            "setting": q.setting,
            "overridden": own[q.name] is not None,
        }
        for q in QUOTAS
    ]
