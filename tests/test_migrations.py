"""The migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import uuid

import orjson
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select

from chatferry.clock import utcnow
from chatferry.db.engine import transaction
from chatferry.db.migrate import alembic_config, upgrade_to_head
from chatferry.db.models import App, Base, Import
from chatferry.runtime import Runtime
from support.apps import NewApp


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


def test_problems_kept_before_rows_counted_from_1_are_renumbered(
    runtime: Runtime, new_app: NewApp
) -> None:
    """Migration 0008: a failed import recorded when errors.Data's row was an index (0
    for the first object) reads like a new one after the upgrade, and back after a
    downgrade; a problem of the whole file keeps its null row."""
    creds = new_app()
    new_style = [{"row": 1, "key": "a", "field": "Email", "message": "m"},
                 {"row": None, "key": None, "field": "", "message": "whole file"},
                 {"row": 3, "key": None, "field": "Name", "message": "m"}]  # fmt: skip
    with transaction(runtime.sessions) as session:
        app_pk = session.scalar(select(App.id).where(App.app_id == creds.app_id))
        assert app_pk is not None
        record = Import(unique_id=str(uuid.uuid4()), app_pk=app_pk, resource_name="users",
                        status="failed", error_data=orjson.dumps(new_style).decode(),
                        created_at=utcnow())  # fmt: skip
        session.add(record)
        session.flush()
        import_pk = record.id

    def rows() -> list[int | None]:
        with transaction(runtime.sessions) as session:
            data = session.scalar(select(Import.error_data).where(Import.id == import_pk))
        return [problem["row"] for problem in orjson.loads(data or "null")]

    config = alembic_config(runtime.engine)
    before = ScriptDirectory.from_config(config).get_revision("0008").down_revision
    assert isinstance(before, str)
    try:
        command.downgrade(config, before)
        assert rows() == [0, None, 2]  # as the imports of older versions recorded them
    finally:
        upgrade_to_head(runtime.engine)
    assert rows() == [1, None, 3]
