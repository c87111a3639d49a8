"""Applies the Alembic migrations that ship inside the package."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

# Any constant works; it only has to be the same for every chatferry process.
_MIGRATION_LOCK_KEY = 0x63686174


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", "chatferry.db:migrations")
    config.attributes["engine"] = engine
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Brings the schema up to date; on PostgreSQL, one process at a time."""
    config = alembic_config(engine)
    if engine.dialect.name != "postgresql":
        command.upgrade(config, "head")
        return
    with engine.connect() as lock_conn:
        lock_conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        try:
            command.upgrade(config, "head")
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            lock_conn.commit()
