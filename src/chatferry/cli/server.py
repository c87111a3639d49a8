"""The server's commands: serve, worker, check, apps, keys and demo-data.

They import the server stack (SQLAlchemy, FastAPI, storage) inside each function, so
that ``chatferry --help`` and the client commands never load it. Each one opens the
runtime through the preflight (chatferry.preflight): a bad setting, an unreachable
database or storage is one line saying what to set, not a traceback.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from chatferry.cli.server_quotas import apps_set_limits, quota_cell, quota_columns

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from chatferry.preflight import Announce
    from chatferry.runtime import Runtime

apps_cli = typer.Typer(help="Manage apps (tenants) and their credentials.", no_args_is_help=True)
keys_cli = typer.Typer(help="Manage the server's keys.", no_args_is_help=True)
console = Console()
log = logging.getLogger("chatferry.cli")


def _runtime(
    migrate: bool = True, check_store: bool = False, announce: Announce | None = None
) -> Runtime:
    """The runtime, after the preflight checks (files written are owner-only)."""
    from chatferry.preflight import announce_on_stderr, open_runtime

    os.umask(0o077)
    return open_runtime(migrate, check_store, announce or announce_on_stderr).runtime


def _print_json(value: object) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _configure_logging() -> None:
    from chatferry.obs.log import configure_logging
    from chatferry.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)


def _announce_in_log(line: str) -> None:
    """What a long-running process announces (a new database) goes to its log."""
    logging.getLogger("chatferry.preflight").warning(line)


def _server_runtime(command: str, migrate: bool) -> Runtime:
    """serve's and worker's runtime after the preflight, with their first log line."""
    from chatferry.db.sqlite_library import turn_off_memory_statistics
    from chatferry.obs.log import log_event
    from chatferry.preflight import configuration

    statistics_off = turn_off_memory_statistics()  # before any connection: see there
    _configure_logging()
    rt = _runtime(migrate=migrate, check_store=True, announce=_announce_in_log)
    shown: dict[str, Any] = dict(configuration(rt.settings))
    if rt.engine.dialect.name == "sqlite":
        shown["sqlite_memory_statistics"] = "off" if statistics_off else "on"
    log_event(log, f"{command} checked the database and storage", **shown)
    return rt


def _freeze_startup_heap() -> None:
    """Puts every object made while starting (modules, models, the app) out of the
    garbage collector's reach, so its full collections scan only what requests and jobs
    make. Without it, every other import of a 4 MB file spent ~0.1 s more in its checks:
    a full collection walked the whole server's heap."""
    gc.collect()
    gc.freeze()


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Run the API only.")] = False,
) -> None:
    """Run the API (and, unless --no-worker, the job workers); migrates the database first."""
    from chatferry.api.app import create_api
    from chatferry.api.server import run_server

    rt = _server_runtime("serve", migrate=True)
    _warn_without_base_url(host, rt.settings.base_url)
    api = create_api(rt, run_worker=not no_worker)
    _freeze_startup_heap()
    run_server(api, rt.settings, host, port)


def _warn_without_base_url(host: str, base_url: str | None) -> None:
    from chatferry.api.listen import base_url_warning

    warning = base_url_warning(host, base_url)
    if warning:
        log.warning(warning)


def _serve_metrics(rt: Runtime, host: str, port: int) -> WSGIServer:
    """The worker's /metrics; one line saying what to change if the port is taken."""
    from chatferry.jobs.queue_metrics import serve_metrics
    from chatferry.obs.log import log_event
    from chatferry.preflight import PreflightError

    try:
        server = serve_metrics(rt.engine, host, port)
    except OSError as exc:
        raise PreflightError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}): choose another "
            "--metrics-port, or another --metrics-host"
        ) from None
    url = f"http://{host}:{port}/metrics"
    log_event(log, "metrics served", url=url)
    return server


def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Job threads (default from settings).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Serve Prometheus metrics on this port (at /metrics)."),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Address the metrics port binds (with --metrics-port).")
    ] = "127.0.0.1",
) -> None:
    """Run jobs and schedules only, until SIGINT or SIGTERM (running jobs finish first);
    checks the database is migrated and the storage writable first."""
    from chatferry.composition import background

    rt = _server_runtime("worker", migrate=False)
    metrics = _serve_metrics(rt, metrics_host, metrics_port) if metrics_port else None
    jobs = background(rt, concurrency)
    _freeze_startup_heap()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    jobs.start()
    stop.wait()
    jobs.stop()
    if metrics is not None:
        metrics.shutdown()


def check(
    migrate: Annotated[bool, typer.Option(help="Migrate the database if it is behind.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check the settings, database, schema, keys and storage; show the configuration.
    Exits 1 with the problem when a check fails (with --json too)."""
    from chatferry.errors import ChatferryError
    from chatferry.preflight import announce_on_stderr, configuration, open_runtime
    from chatferry.settings import load_settings

    settings = load_settings()
    shown = configuration(settings)
    if not as_json:
        for name, value in shown.items():
            typer.echo(f"{name:20} {value}")
    try:
        opened = open_runtime(migrate, True, announce_on_stderr, settings)
    except ChatferryError as exc:
        if not as_json:
            raise
        _print_json({"ok": False, "problem": exc.message, "configuration": shown})
        raise typer.Exit(1) from None
    opened.runtime.close()
    checks = {"database": "ok", "schema": "ok", "keys": "ok", "storage": "ok"}
    if as_json:
        _print_json({"ok": True, "configuration": shown, "checks": checks})
        return
    typer.echo("checks               database, schema, keys and storage: ok")


@apps_cli.command("create")
def apps_create(
    name: Annotated[str, typer.Option(help="A name for the app.")],
    app_id: Annotated[str | None, typer.Option(help="Keep an existing app id.")] = None,
    secret: Annotated[str | None, typer.Option(help="Keep an existing secret.")] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA zone for dates and records.", show_default="UTC")
    ] = None,
    timezone_from: Annotated[
        Path | None,
        typer.Option(
            help="Take the zone from this backup directory's manifest (a restore target).",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Create an app; prints {"app_id": ..., "secret": ...} as JSON."""
    from chatferry.apps import service as apps
    from chatferry.db.engine import transaction

    if timezone_from is not None:
        timezone = _zone_of_backup(timezone_from, timezone)
    timezone = timezone or "UTC"
    rt = _runtime()
    with transaction(rt.sessions) as session:
        app, plain = apps.create_app(session, rt.secrets, name, app_id, secret, timezone)
        created = {"app_id": app.app_id, "secret": plain, "name": app.name}
        created["timezone"] = app.timezone
    _print_json(created)


def _zone_of_backup(directory: Path, given: str | None) -> str:
    """The time zone a backup's manifest records (for ``apps create --timezone-from``)."""
    from chatferry.client.errors import ClientError
    from chatferry.client.manifest import load_manifest, require_backup
    from chatferry.client.timezones import backup_timezone

    if given is not None:
        raise ClientError("give either --timezone or --timezone-from, not both")
    require_backup(directory)
    zone = backup_timezone(load_manifest(directory))
    if zone is None:
        raise ClientError(
            f"the backup in {directory} does not record its app's time zone: "
            "give it with --timezone"
        )
    return zone


def _app_limits(ctx: Any) -> dict[str, Any]:
    return {
        "app_id": ctx.app_id,
        "name": ctx.name,
        "timezone": ctx.timezone,
        "export_max_rows": ctx.export_max_rows,
        "import_max_bytes": ctx.import_max_bytes,
    }


@apps_cli.command("list")
def apps_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List apps with their timezone and limits (secrets are never shown)."""
    from chatferry.apps import service as apps
    from chatferry.db.engine import transaction

    rt = _runtime()
    with transaction(rt.sessions) as session:
        models = apps.list_apps(session)
        contexts = [apps.app_context(a, rt.settings) for a in models]
    if as_json:
        pairs = zip(contexts, models, strict=True)
        _print_json([_app_limits(c) | quota_columns(a, rt.settings) for c, a in pairs])
        return
    table = Table("app_id", "name", "timezone", "export max rows (u/r/c)", "import max bytes")
    table.add_column("quotas: exports/h imports/h jobs bytes (* = own)")
    # Operators copy app ids from here: never cut one short.
    table.columns[0].min_width = max((len(c.app_id) for c in contexts), default=0)
    for c, model in zip(contexts, models, strict=True):
        rows = c.export_max_rows
        limits = f"{rows['users']}/{rows['rooms']}/{rows['comments']}"
        quota = quota_cell(model, rt.settings)
        table.add_row(c.app_id, c.name, c.timezone, limits, str(c.import_max_bytes), quota)
    # A pipe or file has no width: print whole rows there rather than cut at 80 columns.
    (console if console.is_terminal else Console(width=1000)).print(table)


@apps_cli.command("rotate-secret")
def apps_rotate_secret(app_id: str) -> None:
    """Give the app a new secret (the old one stops working); prints it as JSON."""
    from chatferry.apps import service as apps
    from chatferry.db.engine import transaction

    rt = _runtime()
    with transaction(rt.sessions) as session:
        secret = apps.rotate_secret(session, rt.secrets, app_id)
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
    from chatferry.apps import service as apps
    from chatferry.db.engine import transaction

    rt = _runtime()
    limits = {
        "export_max_users": export_max_users,
        "export_max_rooms": export_max_rooms,
        "export_max_comments": export_max_comments,
        "import_max_bytes": import_max_bytes,
    }
    with transaction(rt.sessions) as session:
        app = apps.update_app(session, app_id, timezone, limits)
        ctx = apps.app_context(app, rt.settings)
    shown = _app_limits(ctx)
    del shown["name"]
    _print_json(shown)


@keys_cli.command("rotate-signing")
def keys_rotate_signing() -> None:
    """Make a new download-link signing key in the data dir's key file; links already
    handed out keep working until they expire (restart the servers to use it)."""
    from chatferry.security.keys import rotate_signing_key
    from chatferry.settings import load_settings

    settings = load_settings()
    if settings.signing_key:
        raise typer.BadParameter(
            "CHATFERRY_SIGNING_KEY is set: rotate it there (the old value goes to "
            "CHATFERRY_PREVIOUS_SIGNING_KEY for the link lifetime)"
        )
    os.umask(0o077)
    rotate_signing_key(settings.data_dir)
    typer.echo("a new signing key is in place; restart every chatferry process to use it")


def demo_data(
    app_id: Annotated[str, typer.Option(help="The app to fill.")],
    users: Annotated[int, typer.Option(min=2)] = 200,
    rooms: Annotated[int, typer.Option(min=1)] = 100,
    comments: Annotated[int, typer.Option(min=0)] = 5000,
    days: Annotated[int, typer.Option(min=1, help="Spread rows over the last D days.")] = 30,
    seed: Annotated[int | None, typer.Option(help="Seed for repeatable data.")] = None,
    files_base_url: Annotated[
        str,
        typer.Option(
            metavar="URL",
            help="Avatars and some file_attachment messages point at files under URL.",
        ),
    ] = "",
) -> None:
    """Fill an app with realistic users, rooms and messages."""
    from chatferry.apps import service as apps
    from chatferry.db.engine import begin_write, transaction
    from chatferry.demo.generate import DemoSpec, generate

    rt = _runtime()
    with transaction(rt.sessions) as session:
        begin_write(session)  # it reads, then writes: take the write lock first
        app = apps.get_app(session, app_id)
        spec = DemoSpec(users, rooms, comments, days, seed, files_base_url)
        counts = generate(session, app.id, spec)
    _print_json({"app_id": app_id, **counts})


def register(cli: typer.Typer) -> None:
    """Adds the server's commands to the root command line."""
    cli.command(rich_help_panel="Server")(serve)
    cli.command(rich_help_panel="Server")(worker)
    cli.command(rich_help_panel="Server")(check)
    apps_cli.command("set-limits")(apps_set_limits)
    cli.add_typer(apps_cli, name="apps", rich_help_panel="Server")
    cli.add_typer(keys_cli, name="keys", rich_help_panel="Server")
    cli.command("demo-data", rich_help_panel="Server")(demo_data)
