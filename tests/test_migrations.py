"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from chatferry.db.migrate import upgrade_to_head
from chatferry.db.models import Base
from chatferry.runtime import Runtime


def test_migrated_schema_matches_the_models(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_uniqueness_is_enforced_by_constraints(runtime: Runtime) -> None:
    inspector = inspect(runtime.engine)
    unique = {
        table: {tuple(c["column_names"]) for c in inspector.get_unique_constraints(table)}
        for table in ("users", "rooms", "comments")
    }
    assert ("app_pk", "email") in unique["users"]
    assert ("app_pk", "authentication_token") in unique["users"]
    assert ("app_pk", "unique_id") in unique["rooms"]
    assert ("app_pk", "unique_id") in unique["comments"]


def test_upgrading_twice_is_harmless(runtime: Runtime) -> None:
    upgrade_to_head(runtime.engine)
    assert "exports" in inspect(runtime.engine).get_table_names()
