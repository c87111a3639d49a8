"""``chatferry login``, ``logout`` and ``config``: the saved connection (0600 file)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from chatferry.cli.client_common import (
    AppIdOption,
    JsonOption,
    SecretOption,
    ServerOption,
    note,
    print_json,
    show_rows,
)
from chatferry.client.config import (
    ENV_APP_ID,
    ENV_SECRET,
    ENV_SERVER,
    Connection,
    config_path,
    normalize_server,
    read_config,
    remove_config,
    resolve,
    write_config,
)


def _ask(value: str | None, env: str, prompt: str, default: str | None, hide: bool) -> str:
    given = value or os.environ.get(env, "")
    if given:
        return given
    answer: str = typer.prompt(prompt, default=default, hide_input=hide, show_default=not hide)
    return answer.strip()


def _check(connection: Connection) -> None:
    """One authenticated request, so that a typo is found now rather than later."""
    from chatferry.client.http import Api

    with Api(connection) as api:
        api.call("GET", "/exports", params={"page": 1})


def login(
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Try the credentials before saving.")
    ] = True,
) -> None:
    """Save the server, app id and secret (asks for what is not given) for later commands."""
    saved = read_config()
    chosen_server = normalize_server(
        _ask(server, ENV_SERVER, "Server URL", saved.get("server"), hide=False)
    )
    chosen_app = _ask(app_id, ENV_APP_ID, "App id", saved.get("app_id"), hide=False)
    chosen_secret = _ask(secret, ENV_SECRET, "Secret", None, hide=True)
    connection = Connection(chosen_server, chosen_app, chosen_secret)
    if check:
        _check(connection)
    path = write_config({"server": chosen_server, "app_id": chosen_app, "secret": chosen_secret})
    note(f"saved to {path} (readable by you only); commands use it when no flag or env is set")


def logout() -> None:
    """Delete the saved connection."""
    path = config_path()
    note(f"deleted {path}" if remove_config(path) else f"nothing saved ({path} does not exist)")


def config(
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the connection commands would use, and where each setting comes from."""
    connection = resolve(server, app_id, secret)
    shown = {
        "server": connection.server,
        "app_id": connection.app_id,
        "secret": "(set)",
        "sources": connection.sources,
        "config_file": str(config_path()),
    }
    if as_json:
        print_json(shown)
        return
    rows = [
        ["server", connection.server, connection.sources["server"]],
        ["app id", connection.app_id, connection.sources["app_id"]],
        ["secret", "(set, not shown)", connection.sources["secret"]],
    ]
    show_rows(("setting", "value", "from"), rows, title=f"config file: {config_path()}")
