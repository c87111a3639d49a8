"""Alembic environment: runs against the engine chatferry hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from chatferry.db.models import Base

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):  # pragma: no cover - only via chatferry.db.migrate
    raise RuntimeError("run migrations through chatferry.db.migrate.upgrade_to_head")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
