"""``chatferry export ...``: create, list, get, delete and download exports."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chatferry.cli.client_common import (
    AppIdOption,
    JsonOption,
    RichReporter,
    SecretOption,
    ServerOption,
    connect,
    human_size,
    note,
    print_json,
    show_record,
    show_rows,
)
from chatferry.client.errors import ClientError, JobFailed

if TYPE_CHECKING:
    from chatferry.client.download import Downloaded
    from chatferry.client.http import Api

export_cli = typer.Typer(
    help="Exports: create one (and wait, and download it), list, get, delete, download.",
    no_args_is_help=True,
)


class Resource(StrEnum):
    users = "users"
    rooms = "rooms"
    comments = "comments"


StartOption = Annotated[
    datetime | None,
    typer.Option(
        formats=["%Y-%m-%d"],
        metavar="YYYY-MM-DD",
        help="First day, in the app's timezone (server default: end date minus 30 days).",
    ),
]
EndOption = Annotated[
    datetime | None,
    typer.Option(
        formats=["%Y-%m-%d"],
        metavar="YYYY-MM-DD",
        help="Last day, included (server default: today).",
    ),
]
IdArgument = Annotated[str, typer.Argument(help="The export's unique_id.", show_default=False)]


def _day(value: datetime | None) -> date | None:
    return value.date() if value else None


def file_name(record: dict[str, Any]) -> str:
    """The record's ``original_filename`` made safe as a file name in one directory."""
    name = str(record.get("original_filename") or "").replace("\\", "/").rsplit("/", 1)[-1]
    if name in ("", ".", ".."):
        name = f"{record.get('unique_id')}.json"
    return name


def wait_with_bar(api: Api, record: dict[str, Any]) -> dict[str, Any]:
    """Waits for the export with a progress bar; JobFailed if it ends failed or cancelled."""
    from chatferry.client.exports import wait_for_export

    unique_id = str(record.get("unique_id"))
    with RichReporter() as reporter:
        task = reporter.task(f"export {record.get('resource_name')} {unique_id[:8]}", total=100)

        def on_update(current: dict[str, Any]) -> None:
            value = current.get("percentage")
            task.update(value if isinstance(value, int | float) else 0)

        return wait_for_export(api, unique_id, on_update)


def download_with_bar(api: Api, record: dict[str, Any], dest: Path) -> Downloaded:
    from chatferry.client.download import download_file
    from chatferry.client.exports import get_export

    unique_id = str(record.get("unique_id"))
    with RichReporter() as reporter:
        task = reporter.task(f"download {dest.name}", total=None)
        return download_file(
            api,
            record,
            dest,
            progress=lambda done, total: task.update(done, total),
            refresh=lambda: str(get_export(api, unique_id).get("download_url") or ""),
        )


def _destination(record: dict[str, Any], output: Path | None) -> Path:
    if output is None:
        return Path.cwd() / file_name(record)
    if output.is_dir() or str(output).endswith(("/", "\\")):
        return output / file_name(record)
    return output


def _file_json(got: Downloaded) -> dict[str, Any]:
    return {
        "path": str(got.path),
        "bytes": got.size,
        "rows": got.rows,
        "sha256": got.sha256,
        "sha256_checked": got.sha256_checked,
    }


def _show_download(got: Downloaded) -> None:
    checked = "sha256 and rows checked" if got.sha256_checked else "rows checked"
    note(f"saved {got.path} ({got.rows} rows, {human_size(got.size)}, {checked})")


def _emit_record(title: str, record: dict[str, Any], as_json: bool) -> None:
    print_json(record) if as_json else show_record(title, record)


def _waited(api: Api, record: dict[str, Any], as_json: bool) -> dict[str, Any]:
    """The finished record; on failure the record is shown, then the error raised."""
    try:
        return wait_with_bar(api, record)
    except JobFailed as failed:
        _emit_record("export", failed.record, as_json)
        raise


def _downloaded(api: Api, record: dict[str, Any], dest: Path, as_json: bool) -> None:
    got = download_with_bar(api, record, dest)
    if as_json:
        print_json({"export": record, "file": _file_json(got)})
        return
    show_record("export", record)
    _show_download(got)


@export_cli.command("create")
def export_create(
    resource: Annotated[Resource, typer.Option("--type", help="What to export.")],
    start_date: StartOption = None,
    end_date: EndOption = None,
    run_at: Annotated[
        str | None,
        typer.Option(help="Run later: RFC 3339 with offset, e.g. 2030-01-05T02:00:00+07:00."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it finishes.")] = False,
    download: Annotated[
        Path | None, typer.Option(help="Wait, then download the file into this directory.")
    ] = None,
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an export (at most the server's date range and row limit)."""
    from chatferry.client.exports import create_export

    with connect(server, app_id, secret) as api:
        record = create_export(api, resource.value, _day(start_date), _day(end_date), run_at)
        if not (wait or download):
            _emit_record("export created", record, as_json)
            note(f"follow it with: chatferry export get {record.get('unique_id')} --wait")
            return
        record = _waited(api, record, as_json)
        if download is None:
            _emit_record("export finished", record, as_json)
            return
        download.mkdir(parents=True, exist_ok=True)
        _downloaded(api, record, download / file_name(record), as_json)


@export_cli.command("list")
def export_list(
    page: Annotated[int, typer.Option(min=1, help="Page number (newest first).")] = 1,
    limit: Annotated[
        int | None, typer.Option(min=1, max=100, help="Rows a page (chatferry only).")
    ] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Every page.")] = False,
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """List exports, newest first."""
    from chatferry.client.exports import all_exports, list_exports

    with connect(server, app_id, secret) as api:
        records = list(all_exports(api)) if all_pages else list_exports(api, page, limit)
    if as_json:
        print_json(records)
        return
    show_rows(
        ("unique_id", "type", "days", "status", "%", "rows", "size", "created_at"),
        [_export_row(r) for r in records],
        title=f"exports ({'all' if all_pages else f'page {page}'})",
    )


def _export_row(record: dict[str, Any]) -> list[Any]:
    days = ""
    if record.get("start_date"):
        days = f"{record.get('start_date')}..{record.get('end_date')}"
    return [
        record.get("unique_id"),
        record.get("resource_name"),
        days,
        record.get("status"),
        record.get("percentage"),
        record.get("total_rows"),
        human_size(record.get("size")),
        record.get("created_at"),
    ]


@export_cli.command("get")
def export_get(
    unique_id: IdArgument,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it finishes.")] = False,
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one export (with --wait: once it has finished)."""
    from chatferry.client.exports import get_export

    with connect(server, app_id, secret) as api:
        record = get_export(api, unique_id)
        if wait:
            record = _waited(api, record, as_json)
    _emit_record("export", record, as_json)


@export_cli.command("delete")
def export_delete(
    unique_id: IdArgument,
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete an export and its file (a running export is cancelled first)."""
    from chatferry.client.exports import delete_export

    with connect(server, app_id, secret) as api:
        record = delete_export(api, unique_id)
    _emit_record("export deleted", record, as_json)


@export_cli.command("download")
def export_download(
    unique_id: IdArgument,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File or directory (default: original name here)."),
    ] = None,
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download an export's file (waits if it is still running); resumes and verifies."""
    from chatferry.client.exports import check_finished, get_export

    with connect(server, app_id, secret) as api:
        record = get_export(api, unique_id)
        if record.get("status") == "scheduled":
            raise ClientError(
                f"export {unique_id} is scheduled for {record.get('run_at') or 'later'}: "
                f"download it once it has run (chatferry export get {unique_id} --wait)"
            )
        if record.get("status") == "started":
            record = _waited(api, record, as_json)
        check_finished(record)
        dest = _destination(record, output)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _downloaded(api, record, dest, as_json)
