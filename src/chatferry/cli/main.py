"""``chatferry``: serve, worker, apps and demo-data."""

from __future__ import annotations

import os
import signal
import threading
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from chatferry.apps import service as apps
from chatferry.db.engine import transaction
from chatferry.errors import ChatferryError
from chatferry.resources import Resource
from chatferry.runtime import Runtime, build_runtime

cli = typer.Typer(
    help="chatferry: backup, export and import for chat app data.", no_args_is_help=True
)
apps_cli = typer.Typer(help="Manage apps (tenants) and their credentials.", no_args_is_help=True)
cli.add_typer(apps_cli, name="apps")
console = Console()
# Errors go to stderr, unwrapped, so stdout stays JSON (or nothing) for scripts.
err_console = Console(stderr=True, soft_wrap=True)


def _runtime() -> Runtime:
    os.umask(0o077)  # everything chatferry writes is readable by its owner only
    return build_runtime()


def _fail(exc: ChatferryError) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {exc.message}", highlight=False)
    return typer.Exit(code=1)


def _print_json(value: object) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _configure_logging() -> None:
    from chatferry.obs.log import configure_logging
    from chatferry.settings import Settings

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Run the API only.")] = False,
) -> None:
    """Run the API (and, unless --no-worker, the job workers); migrates the database first."""
    from chatferry.api.app import create_api
    from chatferry.api.server import run_server

    _configure_logging()
    rt = _runtime()
    run_server(create_api(rt, run_worker=not no_worker), rt.settings, host, port)


@cli.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Job threads (default from settings).")
    ] = None,
) -> None:
    """Run jobs only, until SIGINT or SIGTERM (running jobs are finished first)."""
    from chatferry.composition import background

    _configure_logging()
    rt = _runtime()
    jobs = background(rt, concurrency)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    jobs.start()
    stop.wait()
    jobs.stop()


@apps_cli.command("create")
def apps_create(
    name: Annotated[str, typer.Option(help="A name for the app.")],
    app_id: Annotated[str | None, typer.Option(help="Keep an existing app id.")] = None,
    secret: Annotated[str | None, typer.Option(help="Keep an existing secret.")] = None,
    timezone: Annotated[str, typer.Option(help="IANA zone for dates and records.")] = "UTC",
) -> None:
    """Create an app; prints {"app_id": ..., "secret": ...} as JSON."""
    rt = _runtime()
    try:
        with transaction(rt.sessions) as session:
            app, plain = apps.create_app(session, rt.secrets, name, app_id, secret, timezone)
            created = {
                "app_id": app.app_id,
                "secret": plain,
                "name": app.name,
                "timezone": app.timezone,
            }
    except ChatferryError as exc:
        raise _fail(exc) from None
    _print_json(created)


@apps_cli.command("list")
def apps_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List apps with their timezone and limits (secrets are never shown)."""
    rt = _runtime()
    with transaction(rt.sessions) as session:
        contexts = [apps.app_context(a, rt.settings) for a in apps.list_apps(session)]
    if as_json:
        _print_json(
            [
                {
                    "app_id": c.app_id,
                    "name": c.name,
                    "timezone": c.timezone,
                    "export_max_rows": c.export_max_rows,
                    "import_max_bytes": c.import_max_bytes,
                }
                for c in contexts
            ]
        )
        return
    table = Table("app_id", "name", "timezone", "export max rows (u/r/c)", "import max bytes")
    # Operators copy app ids from here: never cut one short.
    table.columns[0].min_width = max((len(c.app_id) for c in contexts), default=0)
    for c in contexts:
        rows = c.export_max_rows
        table.add_row(
            c.app_id,
            c.name,
            c.timezone,
            "/".join(str(rows[r]) for r in Resource),
            str(c.import_max_bytes),
        )
    # A pipe or file has no width: print whole rows there rather than cut at 80 columns.
    (console if console.is_terminal else Console(width=1000)).print(table)


@apps_cli.command("rotate-secret")
def apps_rotate_secret(app_id: str) -> None:
    """Give the app a new secret (the old one stops working); prints it as JSON."""
    rt = _runtime()
    try:
        with transaction(rt.sessions) as session:
            secret = apps.rotate_secret(session, rt.secrets, app_id)
    except ChatferryError as exc:
        raise _fail(exc) from None
    _print_json({"app_id": app_id, "secret": secret})


@apps_cli.command("update")
def apps_update(
    app_id: str,
    timezone: Annotated[str | None, typer.Option(help="IANA zone, e.g. Asia/Jakarta.")] = None,
    export_max_users: Annotated[int | None, typer.Option(help="0 = deployment default.")] = None,
    export_max_rooms: Annotated[int | None, typer.Option(help="0 = deployment default.")] = None,
    export_max_comments: Annotated[int | None, typer.Option(help="0 = deployment default.")] = None,
    import_max_bytes: Annotated[int | None, typer.Option(help="0 = deployment default.")] = None,
) -> None:
    """Change an app's timezone or its own limits."""
    rt = _runtime()
    limits = {
        "export_max_users": export_max_users,
        "export_max_rooms": export_max_rooms,
        "export_max_comments": export_max_comments,
        "import_max_bytes": import_max_bytes,
    }
    try:
        with transaction(rt.sessions) as session:
            app = apps.update_app(session, app_id, timezone, limits)
            ctx = apps.app_context(app, rt.settings)
    except ChatferryError as exc:
        raise _fail(exc) from None
    _print_json(
        {
            "app_id": ctx.app_id,
            "timezone": ctx.timezone,
            "export_max_rows": ctx.export_max_rows,
            "import_max_bytes": ctx.import_max_bytes,
        }
    )


@cli.command("demo-data")
def demo_data(
    app_id: Annotated[str, typer.Option(help="The app to fill.")],
    users: Annotated[int, typer.Option(min=2)] = 200,
    rooms: Annotated[int, typer.Option(min=1)] = 100,
    comments: Annotated[int, typer.Option(min=0)] = 5000,
    days: Annotated[int, typer.Option(min=1, help="Spread rows over the last D days.")] = 30,
    seed: Annotated[int | None, typer.Option(help="Seed for repeatable data.")] = None,
) -> None:
    """Fill an app with realistic users, rooms and messages."""
    from chatferry.demo.generate import DemoSpec, generate

    rt = _runtime()
    try:
        with transaction(rt.sessions) as session:
            app = apps.get_app(session, app_id)
            counts = generate(session, app.id, DemoSpec(users, rooms, comments, days, seed))
    except ChatferryError as exc:
        raise _fail(exc) from None
    _print_json({"app_id": app_id, **counts})


def main() -> None:
    cli()
