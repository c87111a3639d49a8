"""``chatferry schedules ...``: periodic exports (a chatferry extension of the API)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from chatferry.cli.client_common import (
    AppIdOption,
    JsonOption,
    SecretOption,
    ServerOption,
    connect,
    print_json,
    show_record,
    show_rows,
)
from chatferry.cli.client_exports import Resource

schedules_cli = typer.Typer(
    help="Periodic exports: create, list, get, pause, resume, delete (chatferry servers).",
    no_args_is_help=True,
)
IdArgument = Annotated[str, typer.Argument(help="The schedule's unique_id.", show_default=False)]


def _emit(title: str, record: dict[str, Any], as_json: bool) -> None:
    print_json(record) if as_json else show_record(title, record)


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
    _emit("schedule created", record, as_json)


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
    if as_json:
        print_json(records)
        return
    show_rows(
        ("unique_id", "type", "cron", "window", "keep", "paused", "next_run_at", "last_run_at"),
        [
            [
                r.get("unique_id"),
                r.get("type"),
                r.get("cron"),
                r.get("window_days"),
                r.get("keep_last"),
                "yes" if r.get("paused") else "no",
                r.get("next_run_at"),
                r.get("last_run_at"),
            ]
            for r in records
        ],
        title="schedules",
    )


@schedules_cli.command("get")
def schedules_get(
    unique_id: IdArgument,
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one schedule."""
    from chatferry.client.schedules import get_schedule

    with connect(server, app_id, secret) as api:
        record = get_schedule(api, unique_id)
    _emit("schedule", record, as_json)


@schedules_cli.command("pause")
def schedules_pause(
    unique_id: IdArgument,
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause a schedule (no runs until it is resumed)."""
    from chatferry.client.schedules import set_paused

    with connect(server, app_id, secret) as api:
        record = set_paused(api, unique_id, True)
    _emit("schedule paused", record, as_json)


@schedules_cli.command("resume")
def schedules_resume(
    unique_id: IdArgument,
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a paused schedule."""
    from chatferry.client.schedules import set_paused

    with connect(server, app_id, secret) as api:
        record = set_paused(api, unique_id, False)
    _emit("schedule resumed", record, as_json)


@schedules_cli.command("delete")
def schedules_delete(
    unique_id: IdArgument,
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a schedule (its exports stay)."""
    from chatferry.client.schedules import delete_schedule

    with connect(server, app_id, secret) as api:
        record = delete_schedule(api, unique_id)
    _emit("schedule deleted", record, as_json)
