"""``chatferry``: the command line's root.

It stays light: the server's commands import the server stack inside their functions and
the client's commands import only the client package, so ``chatferry --help`` and every
client command start fast. Every error ends as one line on stderr and an exit code.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from chatferry import __version__
from chatferry.cli import client_backup, client_config, server
from chatferry.cli.client_convert import convert_cli
from chatferry.cli.client_exports import export_cli
from chatferry.cli.client_imports import import_cli
from chatferry.cli.client_schedules import schedules_cli
from chatferry.cli.client_webhooks import webhooks_cli
from chatferry.cli.errors import report_error, state
from chatferry.client.errors import EXIT_CODES_HELP

cli = typer.Typer(
    help=(
        "chatferry: backup, export and import for chat app data. The server (serve, "
        "worker, apps, demo-data) and a client for any server that speaks the API "
        "(export, import, schedules, backup, restore, verify)."
    ),
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"chatferry {__version__}")
        raise typer.Exit()


@cli.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_show_version, help="Show the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="CHATFERRY_DEBUG", help="Show tracebacks of errors."),
    ] = False,
) -> None:
    state.debug = debug


server.register(cli)
cli.add_typer(export_cli, name="export", rich_help_panel="Client")
cli.add_typer(import_cli, name="import", rich_help_panel="Client")
cli.add_typer(schedules_cli, name="schedules", rich_help_panel="Client")
cli.add_typer(convert_cli, name="convert", rich_help_panel="Client")
cli.add_typer(webhooks_cli, name="webhooks", rich_help_panel="Client")
cli.command(rich_help_panel="Client")(client_backup.backup)
cli.command(rich_help_panel="Client")(client_backup.restore)
cli.command(rich_help_panel="Client")(client_backup.verify)
cli.command(rich_help_panel="Client")(client_backup.keygen)
cli.command(rich_help_panel="Client settings")(client_config.login)
cli.command(rich_help_panel="Client settings")(client_config.logout)
cli.command(rich_help_panel="Client settings")(client_config.config)


def main() -> None:
    """The console script: runs the command; any error becomes one line and an exit code."""
    try:
        cli()
    except Exception as exc:
        sys.exit(report_error(exc))
