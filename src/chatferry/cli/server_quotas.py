"""``chatferry apps set-limits``: an app's own quotas (see docs/quotas.md)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer

Value = Annotated[int | None, typer.Option(min=0, help="0 = no limit for this app.")]


def quota_columns(app: Any, settings: Any) -> dict[str, Any]:
    """The app's quotas (0: no limit) and which ones are its own, for `apps list`."""
    from chatferry.apps import quotas

    own = quotas.overrides(app)
    return {
        "quotas": quotas.limits(app, settings),
        "quota_overrides": {name: value for name, value in own.items() if value is not None},
    }


def quota_cell(app: Any, settings: Any) -> str:
    """``exports/h imports/h jobs bytes``, each own value marked with ``*``."""
    shown = quota_columns(app, settings)
    own = shown["quota_overrides"]
    return " ".join(
        f"{value}{'*' if name in own else ''}" for name, value in shown["quotas"].items()
    )


def _cleared(clear: list[str]) -> list[str]:
    """The quota names that ``--clear`` gives (option names, or ``all``)."""
    from chatferry.apps import quotas
    from chatferry.errors import BadRequest

    names = {q.option.removeprefix("--"): q.name for q in quotas.QUOTAS}
    for value in clear:
        if value != "all" and value not in names:
            raise BadRequest(f"--clear {value!r} names no quota: use {', '.join(names)} or all")
    return list(names.values()) if "all" in clear else [names[value] for value in clear]


def apps_set_limits(
    app_id: str,
    exports_per_hour: Value = None,
    imports_per_hour: Value = None,
    active_jobs: Value = None,
    stored_bytes: Value = None,
    clear: Annotated[
        list[str] | None,
        typer.Option(
            help="Back to the deployment's setting: exports-per-hour, imports-per-hour, "
            "active-jobs, stored-bytes or all (repeat the option for several)."
        ),
    ] = None,
) -> None:
    """Set an app's own quotas (0: no limit), or --clear them; prints them as JSON."""
    from chatferry.apps import quotas
    from chatferry.apps import service as apps
    from chatferry.cli.server import _runtime
    from chatferry.db.engine import begin_write, transaction
    from chatferry.errors import BadRequest

    cleared = _cleared(clear or [])
    values = {
        "exports_per_hour": exports_per_hour,
        "imports_per_hour": imports_per_hour,
        "active_jobs": active_jobs,
        "stored_bytes": stored_bytes,
    }
    rt = _runtime()
    with transaction(rt.sessions) as session:
        begin_write(session)
        app = apps.get_app(session, app_id)
        try:
            quotas.set_overrides(app, values, cleared)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        shown = {"app_id": app.app_id, **quota_columns(app, rt.settings)}
    typer.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
