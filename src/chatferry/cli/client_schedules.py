"""``chatferry schedules ...``: periodic exports (a chatferry extension of the API)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chatferry.cli.client_common import (
    AppIdOption,
    JsonOption,
    SecretOption,
    ServerOption,
    connect,
)
from chatferry.cli.client_exports import Resource
from chatferry.cli.client_records import (
    add_record_command,
    client_function,
    emit_record,
    field,
    show_records,
)

if TYPE_CHECKING:
    from chatferry.client.http import Api

schedules_cli = typer.Typer(
    help="Periodic exports: create, list, get, pause, resume, delete (chatferry servers).",
    no_args_is_help=True,
)


@schedules_cli.command("create")
def schedules_create(
    resource: Annotated[Resource, typer.Option("--type", help="What each run exports.")],
    cron: Annotated[
        str, typer.Option(help="5 fields or @daily/@weekly/@monthly, in the app's timezone.")
    ],
    window_days: Annotated[
        int, typer.Option(min=1, max=30, help="Whole days before each run to export.")
    ] = 1,
    keep_last: Annotated[
        int, typer.Option(min=1, help="Finished runs to keep (older ones are deleted).")
    ] = 7,
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a schedule: each run exports the window_days whole days before it."""
    from chatferry.client.schedules import create_schedule

    with connect(server, app_id, secret) as api:
        record = create_schedule(api, resource.value, cron, window_days, keep_last)
    emit_record("schedule created", record, as_json)


@schedules_cli.command("list")
def schedules_list(
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the app's schedules."""
    from chatferry.client.schedules import list_schedules

    with connect(server, app_id, secret) as api:
        records = list_schedules(api)
    show_records(records, _COLUMNS, "schedules", as_json)


_COLUMNS = [
    ("unique_id", field("unique_id")),
    ("type", field("type")),
    ("cron", field("cron")),
    ("window", field("window_days")),
    ("keep", field("keep_last")),
    ("paused", lambda r: "yes" if r.get("paused") else "no"),
    ("next_run_at", field("next_run_at")),
    ("last_run_at", field("last_run_at")),
]


def _set_paused(paused: bool) -> Callable[[Api, str], dict[str, Any]]:
    set_paused = client_function("schedules", "set_paused")
    return lambda api, unique_id: set_paused(api, unique_id, paused)


for _name, _act, _title, _doc in [
    ("get", client_function("schedules", "get_schedule"), "schedule", "Show one schedule."),
    ("pause", _set_paused(True), "schedule paused", "Pause a schedule (no runs until resumed)."),
    ("resume", _set_paused(False), "schedule resumed", "Resume a paused schedule."),
    (
        "delete",
        client_function("schedules", "delete_schedule"),
        "schedule deleted",
        "Delete a schedule (its exports stay).",
    ),
]:
    add_record_command(schedules_cli, _name, "schedule", _act, _title, _doc)
