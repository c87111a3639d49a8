"""``chatferry import FILE ...`` (upload), ``import list`` and ``import get``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from chatferry.cli.client_common import (
    AppIdOption,
    JsonOption,
    SecretOption,
    ServerOption,
    connect,
    human_size,
    note,
    print_json,
    show_record,
    show_rows,
)
from chatferry.cli.client_exports import Resource
from chatferry.cli.client_records import (
    WaitOption,
    add_list_command,
    add_record_command,
    client_function,
    field,
    wait_with_bar,
)

if TYPE_CHECKING:
    from typer._click import Context

    from chatferry.client.http import Api


class UploadByDefault(TyperGroup):
    """``chatferry import FILE`` runs ``import upload FILE``; list and get stay commands."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["upload", *args]
        return super().parse_args(ctx, args)


import_cli = typer.Typer(
    cls=UploadByDefault,
    help=(
        "Imports: 'chatferry import FILE --type T [--dry-run] [--wait]' uploads a file; "
        "'import list' and 'import get ID' show imports and their problems."
    ),
    no_args_is_help=True,
)


def show_problems(record: dict[str, Any]) -> None:
    """The import's problems as a table: row (the API's number, from 1), key, field,
    message."""
    from chatferry.client.imports import error_summary, problems

    rows = []
    for problem in problems(record):
        row = problem.get("row")
        rows.append(
            [
                row if isinstance(row, int) else "",
                problem.get("key") or "",
                problem.get("field") or "",
                problem.get("message") or "",
            ]
        )
    if rows:
        show_rows(("row", "key", "field", "message"), rows, title=error_summary(record))


def _show(title: str, record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(record)
        return
    show_record(title, {k: v for k, v in record.items() if k != "errors"})
    show_problems(record)


def wait_import_with_bar(api: Api, record: dict[str, Any]) -> dict[str, Any]:
    label = f"import {record.get('original_filename')}"
    wait = client_function("imports", "wait_for_import")
    return wait_with_bar(label, wait, api, str(record.get("unique_id")))


def _finish(record: dict[str, Any], as_json: bool) -> None:
    """Shows the final record; JobFailed (exit 3) unless it finished."""
    from chatferry.client.imports import check_import

    dry_run = record.get("dry_run") is True
    _show("dry run" if dry_run else "import", record, as_json)
    check_import(record)
    if dry_run and not as_json:
        note(f"dry run passed: {record.get('total_rows')} rows would be imported, none was")


@import_cli.command("upload")
def import_upload(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A JSON file.")
    ],
    resource: Annotated[Resource, typer.Option("--type", help="What the file holds.")],
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check every row, write none (chatferry only); waits."),
    ] = False,
    wait: WaitOption = False,
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Upload a file to import (the same as 'chatferry import FILE')."""
    from chatferry.client.imports import upload

    content = file.read_bytes()
    with connect(server, app_id, secret) as api:
        record = upload(api, resource.value, file.name, content, dry_run=dry_run)
        if not (wait or dry_run):
            _show("import started", record, as_json)
            note(f"follow it with: chatferry import get {record.get('unique_id')} --wait")
            return
        _finish(wait_import_with_bar(api, record), as_json)


def _dry_run(record: dict[str, Any]) -> str:
    dry_run = record.get("dry_run")
    return "yes" if dry_run is True else ("" if dry_run is None else "no")


add_list_command(
    import_cli,
    "imports",
    client_function("imports", "list_imports"),
    client_function("imports", "all_imports"),
    [
        ("unique_id", field("unique_id")),
        ("type", field("resource_name")),
        ("status", field("status")),
        ("rows", field("total_rows")),
        ("size", lambda r: human_size(r.get("size"))),
        ("dry run", _dry_run),
        ("file", field("original_filename")),
        ("created_at", field("created_at")),
    ],
)


def _show_final(title: str, record: dict[str, Any], as_json: bool) -> None:
    if record.get("status") in ("failed", "cancelled"):
        _finish(record, as_json)
    _show(title, record, as_json)


add_record_command(
    import_cli,
    "get",
    "import",
    client_function("imports", "get_import"),
    "import",
    "Show one import and its problems; exit 3 if it failed.",
    wait_for=lambda api, record, _as_json: wait_import_with_bar(api, record),
    show=_show_final,
)
