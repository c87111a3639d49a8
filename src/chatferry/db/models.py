"""SQLAlchemy models: tenants (apps), their chat data, exports and the job queue."""

from __future__ import annotations

from datetime import date, datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column

from chatferry.db.types import UtcDateTime

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
BigId = BigInteger().with_variant(Integer(), "sqlite")


# Jobs find their target by id: SQLite must never hand a deleted row's id to a new one.
_NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class Base(DeclarativeBase):
    pass


class App(Base):
    """A tenant: one chat application with its own credentials and limits."""

    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    app_id: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    export_max_users: Mapped[int | None] = mapped_column(Integer)
    export_max_rooms: Mapped[int | None] = mapped_column(Integer)
    export_max_comments: Mapped[int | None] = mapped_column(Integer)
    import_max_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The app's own quotas (NULL: the deployment's setting; 0: no limit), see apps/quotas.py.
    quota_exports_per_hour: Mapped[int | None] = mapped_column(Integer)
    quota_imports_per_hour: Mapped[int | None] = mapped_column(Integer)
    quota_active_jobs: Mapped[int | None] = mapped_column(Integer)
    quota_stored_bytes: Mapped[int | None] = mapped_column(BigInteger)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("app_pk", "email", name="uq_users_app_email"),
        UniqueConstraint("app_pk", "authentication_token", name="uq_users_app_token"),
        Index("ix_users_app_created", "app_pk", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(Text, default="")
    avatar_url: Mapped[str] = mapped_column(Text, default="")
    authentication_token: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Room(Base):
    __tablename__ = "rooms"
    __table_args__ = (
        UniqueConstraint("app_pk", "unique_id", name="uq_rooms_app_unique_id"),
        Index("ix_rooms_app_created", "app_pk", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    unique_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(Text, default="")
    type: Mapped[str] = mapped_column(String(20))
    options: Mapped[str] = mapped_column(Text, default="")
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    avatar_url: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RoomParticipant(Base):
    __tablename__ = "room_participants"

    room_id: Mapped[int] = mapped_column(
        ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (
        UniqueConstraint("app_pk", "unique_id", name="uq_comments_app_unique_id"),
        Index("ix_comments_app_created", "app_pk", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    unique_id: Mapped[str] = mapped_column(String(200))
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[str | None] = mapped_column(Text)  # JSON text, kept verbatim
    disable_link_preview: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ExportSchedule(Base):
    """A periodic export: fires by compare-and-set on ``next_run_at`` (see schedules/)."""

    __tablename__ = "export_schedules"
    __table_args__ = (
        Index("ix_export_schedules_app_created", "app_pk", "created_at", "id"),
        Index("ix_export_schedules_due", "paused", "next_run_at"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    unique_id: Mapped[str] = mapped_column(String(36), unique=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    resource_name: Mapped[str] = mapped_column(String(20))
    cron: Mapped[str] = mapped_column(String(100))
    window_days: Mapped[int] = mapped_column(Integer)
    keep_last: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    next_run_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The first day the schedule covers (set by its first run), and the last day up to
    # which every day (in the app's timezone) is in a finished run's file.
    coverage_start: Mapped[date | None] = mapped_column(Date)
    covered_through: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Export(Base):
    """One backup request and, once finished, the file it produced."""

    __tablename__ = "exports"
    __table_args__ = (
        Index("ix_exports_app_created", "app_pk", "created_at", "id"),
        # A run of a schedule may be split into several exports, one per window.
        UniqueConstraint(
            "schedule_id", "scheduled_for", "start_date", name="uq_exports_schedule_run"
        ),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    unique_id: Mapped[str] = mapped_column(String(36), unique=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    resource_name: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    percentage: Mapped[int] = mapped_column(Integer, default=0)
    total_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    error_message: Mapped[str] = mapped_column(Text, default="")
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    storage_key: Mapped[str] = mapped_column(Text, default="")
    sha256: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Set for a run of a periodic schedule; kept (as NULL) when the schedule is deleted.
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("export_schedules.id", ondelete="SET NULL", name="fk_exports_schedule_id")
    )
    # The schedule's run this export is; with schedule_id unique, so a run fires once.
    scheduled_for: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The schedule's public id, for the record: loaded with the row (NULL without one),
    # not on insert (refresh it then).
    schedule_unique_id: Mapped[str | None] = column_property(
        select(ExportSchedule.unique_id)
        .where(ExportSchedule.id == schedule_id)
        .correlate_except(ExportSchedule)
        .scalar_subquery(),
        expire_on_flush=False,  # keep the loaded value when the record is updated
    )
    # A one-off export requested for later: stays `scheduled` until its job runs.
    run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Retention removed the file; the record is kept.
    expired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Rows per day of the window as the file holds them (a JSON list, the first day
    # first), so coverage can tell a day whose rows changed since; NULL before 0007.
    day_rows: Mapped[str | None] = mapped_column(Text)


class Job(Base):
    """A durable unit of background work; the table is the queue."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_run_after", "status", "run_after"),
        Index("ix_jobs_status_app", "status", "app_pk"),
        Index("ix_jobs_app_kind_created", "app_pk", "kind", "created_at"),  # quotas per hour
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[int] = mapped_column(BigInteger)
    # The app the job works for: workers share their threads fairly between apps.
    app_pk: Mapped[int | None] = mapped_column(BigInteger)
    # For the logs: the target record's public id and its app's id.
    ref: Mapped[str] = mapped_column(String(64), default="", server_default="")
    app_ref: Mapped[str] = mapped_column(String(100), default="", server_default="")
    status: Mapped[str] = mapped_column(String(20))
    # Runs started; runs that ended on an error (budget max_attempts); runs whose worker
    # vanished, its lease running out (budget max_crashes).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    crashes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_crashes: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    run_after: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ServerKey(Base):
    """Deployment-wide secrets generated on first start (e.g. the link-signing key)."""

    __tablename__ = "server_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def table_of(model: type[Base]) -> Table:
    """The model's Core table, typed as a Table for Core statements."""
    return cast(Table, model.__table__)


class Import(Base):
    """One uploaded file to restore, and the outcome of checking and importing it."""

    __tablename__ = "imports"
    __table_args__ = (
        Index("ix_imports_app_created", "app_pk", "created_at", "id"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    unique_id: Mapped[str] = mapped_column(String(36), unique=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    resource_name: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    percentage: Mapped[int] = mapped_column(Integer, default=0)
    total_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    original_filename: Mapped[str] = mapped_column(Text, default="")
    storage_key: Mapped[str] = mapped_column(Text, default="")
    error_message: Mapped[str] = mapped_column(Text, default="")
    error_data: Mapped[str | None] = mapped_column(Text)  # JSON list of problems, or NULL
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookEndpoint(Base):
    """A URL an app wants told of its jobs' ends (see webhooks/)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_app", "app_pk", "created_at"), _NEVER_REUSE_IDS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    unique_id: Mapped[str] = mapped_column(String(36), unique=True)
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[str] = mapped_column(Text)  # comma-separated event types
    description: Mapped[str] = mapped_column(Text, default="")
    # The signing secret (whsec_<base64>): needed in full to sign, so kept as is, like the
    # app's data; shown to the tenant only when the endpoint is created.
    secret: Mapped[str] = mapped_column(String(200))
    # Where download links in payloads point when CHATFERRY_BASE_URL is not set: the
    # address the app used to register the endpoint.
    base_url: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WebhookDelivery(Base):
    """One event for one endpoint; its job (kind "webhook") tries it until delivered or
    out of tries. ``unique_id`` is the webhook-id header, the same on every try."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at", "id"),
        _NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    unique_id: Mapped[str] = mapped_column(String(64), unique=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    app_pk: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(40))
    # The record the event is about ("export"/"import" and its id), read again at each
    # try for a fresh download link; ``data`` is kept when the record is gone (a deleted
    # export) or has none (ping).
    record_kind: Mapped[str] = mapped_column(String(20), default="")
    record_id: Mapped[int | None] = mapped_column(BigInteger)
    data: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
