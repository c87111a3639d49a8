"""The ``data`` of an export or import event: the record exactly as ``GET`` shows it,
with a fresh download link (read again at each try of a delivery)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from chatferry.api.records import download_url, export_record, import_record
from chatferry.apps.service import app_context
from chatferry.db.engine import read_connection
from chatferry.db.models import App, Export, ExportSchedule, Import, table_of
from chatferry.runtime import Runtime

_exports = table_of(Export)
_EXPORT = select(
    _exports,
    select(ExportSchedule.unique_id)
    .where(ExportSchedule.id == _exports.c.schedule_id)
    .scalar_subquery()
    .label("schedule_unique_id"),
)
_TABLES = {"export": _EXPORT, "import": select(table_of(Import))}


def render_record(rt: Runtime, kind: str, record_id: int, base: str) -> dict[str, Any] | None:
    """The record of ``kind`` ("export", "import") with this id; None if it is gone."""
    query = _TABLES.get(kind)
    if query is None:
        return None
    with read_connection(rt.engine) as conn:
        row = conn.execute(query.where(query.selected_columns.id == record_id)).first()
        app_row = row and conn.execute(select(table_of(App)).where(App.id == row.app_pk)).first()
    if row is None or not app_row:
        return None
    app = app_context(app_row, rt.settings)
    if kind == "import":
        return import_record(row, app)  # type: ignore[arg-type]
    ttl = rt.settings.download_url_ttl_seconds
    return export_record(row, app, download_url(row, base, rt.signer, ttl, rt.store))
