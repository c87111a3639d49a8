"""Jobs find their target by id, so a deleted export's id must never come back."""

from __future__ import annotations

from sqlalchemy import select

from chatferry.apps.service import app_context
from chatferry.db.engine import transaction
from chatferry.db.models import App, Export
from chatferry.exports import service
from chatferry.exports.requests import ExportRequest
from chatferry.runtime import Runtime
from support.apps import NewApp

USERS = ExportRequest.model_validate({"type": "users"})


def test_an_export_created_after_a_delete_gets_a_new_id(runtime: Runtime, new_app: NewApp) -> None:
    creds = new_app()
    with transaction(runtime.sessions) as session:
        app = session.scalar(select(App).where(App.app_id == creds.app_id))
        assert app is not None
        ctx = app_context(app, runtime.settings)
    with transaction(runtime.sessions) as session:
        first = service.create_export(session, runtime.settings, ctx, USERS)
    with transaction(runtime.sessions) as session:
        service.delete_export(session, ctx, first.unique_id)
    with transaction(runtime.sessions) as session:
        second = service.create_export(session, runtime.settings, ctx, USERS)
    with transaction(runtime.sessions) as session:
        assert session.get(Export, first.id) is None
    assert second.id > first.id
