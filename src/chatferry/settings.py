"""Deployment settings, read once from ``CHATFERRY_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from chatferry.errors import ChatferryError

ENV_PREFIX = "CHATFERRY_"


class Settings(BaseSettings):
    """Every knob an operator can turn; see the table in docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Path("chatferry-data")
    database_url: str | None = None
    storage_url: str | None = None
    base_url: str | None = None
    # Keys (see security/keys.py): from here, else from <data dir>/keys.json.
    signing_key: str | None = None
    previous_signing_key: str | None = None
    secret_hash_key: str | None = None
    download_url_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    # Object storage (CHATFERRY_STORAGE_URL=s3://...): obstore's own retries of one
    # request, before the job's retry with backoff takes over.
    storage_max_retries: int = Field(default=3, ge=0)
    storage_retry_timeout_seconds: float = Field(default=60.0, gt=0)
    storage_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    # Local storage only: below this much free space /readyz says the storage is not
    # ready and new exports are refused with 503 (0 turns the check off).
    storage_min_free_bytes: int = Field(default=100 * 1024 * 1024, ge=0)
    # Export files are deleted this many days after the export finished (0: kept forever).
    export_retention_days: int = Field(default=0, ge=0)

    export_max_users: int = Field(default=1000, gt=0)
    export_max_rooms: int = Field(default=1000, gt=0)
    export_max_comments: int = Field(default=5000, gt=0)
    export_max_days: int = Field(default=30, gt=0, le=366)
    import_max_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # Rows in one import file, checked before any per-row work (a real row is over 100
    # bytes, so a file under the byte limit of real rows never reaches it).
    import_max_rows: int = Field(default=100_000, gt=0)

    worker_concurrency: int = Field(default=2, gt=0, le=256)
    job_lease_seconds: float = Field(default=30.0, gt=0)
    job_poll_seconds: float = Field(default=1.0, gt=0)
    # Runs of a job that may end on a (temporary) error, and runs whose worker may
    # vanish (its lease running out: a crash, a kill, a deploy) before it is failed.
    job_max_attempts: int = Field(default=3, gt=0)
    job_max_crashes: int = Field(default=10, gt=0)
    # On PostgreSQL idle workers wake on LISTEN/NOTIFY; polling is then only a fallback.
    job_listen_poll_seconds: float = Field(default=10.0, gt=0)
    # A job that failed on a transient error runs again after 2^attempt seconds, at most:
    job_retry_max_backoff_seconds: float = Field(default=300.0, gt=0)
    export_batch_size: int = Field(default=2000, gt=0)
    # Test and benchmark aid: a pause after each batch, so a job can be observed mid-run
    # (injected as a hook by the composition root, never read in the export's loop).
    export_batch_delay_seconds: float = Field(default=0.0, ge=0)

    # GET /exports/{id}?wait=S: how often a waiting request rereads its record when no
    # event can reach it (SQLite with a worker in another process; see docs/webhooks.md).
    wait_poll_seconds: float = Field(default=1.0, gt=0)
    # The longest a ?wait= holds a request (a longer one, up to 60, is cut to this): under
    # a proxy's read timeout.
    wait_max_seconds: float = Field(default=60.0, gt=0, le=60)
    # Webhooks (docs/webhooks.md): plain http:// and private addresses are refused unless
    # allowed; one try's timeout; the delays between tries (seconds, comma-separated).
    webhooks_allow_http: bool = False
    webhooks_allow_private: bool = False
    webhooks_timeout_seconds: float = Field(default=10.0, gt=0)
    webhooks_retry_delays: str = "5,300,1800,7200,18000,36000"
    webhooks_concurrency: int = Field(default=32, gt=0, le=1000)
    webhooks_per_app: int = Field(default=4, gt=0, le=1000)

    # Logs: "text" (timestamped lines) or "json" (one object a line).
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Rate limits (0 turns one off): failed sign-ins a minute per client address and per
    # app id, and requests a second per app.
    rate_limit_auth_failures_per_minute: float = Field(default=30.0, ge=0)
    rate_limit_app_requests_per_second: float = Field(default=200.0, ge=0)
    # A 429 for failed sign-ins is answered after this delay (a flood's connection then
    # costs a request a second); the right credentials are never delayed.
    rate_limit_refusal_delay_seconds: float = Field(default=1.0, ge=0, le=60)
    # Quotas per app (0 turns one off; `chatferry apps set-limits` overrides them for one
    # app): exports and imports created in the last hour, jobs queued or running at once,
    # and bytes of export files kept on storage. See docs/quotas.md.
    quota_exports_per_hour: int = Field(default=1000, ge=0)
    quota_imports_per_hour: int = Field(default=1000, ge=0)
    quota_active_jobs: int = Field(default=100, ge=0)
    quota_stored_bytes: int = Field(default=20 * 1024**3, ge=0)
    # The HTTP server: idle keep-alive timeout, concurrent connections, and the time a
    # request's headers, then its body, may take to arrive.
    http_keepalive_seconds: float = Field(default=5.0, gt=0)
    http_max_connections: int = Field(default=200, gt=0)
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: the configured one, or SQLite under the data dir."""
        url = self.database_url or f"sqlite:///{self.data_dir.resolve() / 'chatferry.db'}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    def resolved_storage_url(self) -> str:
        """Where export files live: the configured URL, or ``file://<data dir>/files``."""
        return self.storage_url or (self.data_dir.resolve() / "files").as_uri()


class ConfigError(ChatferryError):
    """A setting has a value chatferry cannot use; the message names the variable."""


def _setting_problem(error: dict[str, object]) -> str:
    location = error.get("loc") or ("?",)
    name = ENV_PREFIX + str(location[0]).upper()  # type: ignore[index]
    return f"{name}: {error.get('msg')}"


def load_settings() -> Settings:
    """The settings from the environment, or ConfigError naming each bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(_setting_problem(dict(e)) for e in exc.errors())
        raise ConfigError(f"invalid setting: {problems}") from None
