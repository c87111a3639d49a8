"""``chatferry export ...``: create, list, get, delete and download exports."""

from __future__ import annotations

import re
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
)
from chatferry.cli.client_records import (
    WaitOption,
    add_list_command,
    add_record_command,
    client_function,
    emit_record,
    field,
    wait_with_bar,
)
from chatferry.client.errors import ClientError, JobFailed
from chatferry.client.files import private_dir

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


# What Windows (and the sync tools that follow its rules) refuse in a file name.
_UNSAFE = re.compile(r'[<>:"|?*\x00-\x1f]')


def file_name(record: dict[str, Any]) -> str:
    """The record's ``original_filename`` made safe as a file name in one directory on
    every common file system: ``:`` and the other characters Windows refuses become ``-``
    (``2017-07-17T10-19-44+07-00_exported_comments.json``); the record keeps the original."""
    name = str(record.get("original_filename") or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("-", name).rstrip(". ")
    if name in ("", ".", ".."):
        name = f"{record.get('unique_id')}.json"
    return name


def wait_export_with_bar(api: Api, record: dict[str, Any]) -> dict[str, Any]:
    """Waits for the export with a progress bar; JobFailed if it ends failed or cancelled."""
    unique_id = str(record.get("unique_id"))
    label = f"export {record.get('resource_name')} {unique_id[:8]}"
    return wait_with_bar(label, client_function("exports", "wait_for_export"), api, unique_id)


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


def _waited(api: Api, record: dict[str, Any], as_json: bool) -> dict[str, Any]:
    """The finished record; on failure the record is shown, then the error raised."""
    try:
        return wait_export_with_bar(api, record)
    except JobFailed as failed:
        emit_record("export", failed.record, as_json)
        raise


def _downloaded(api: Api, record: dict[str, Any], dest: Path, as_json: bool) -> None:
    got = download_with_bar(api, record, dest)
    if as_json:
        print_json({"export": record, "file": _file_json(got)})
        return
    emit_record("export", record, as_json=False)
    _show_download(got)


# A time the server accepts (ahead, within a year): two days from today, 02:00 at +07:00.
_RUN_AT_EXAMPLE = f"{date.fromordinal(date.today().toordinal() + 2).isoformat()}T02:00:00+07:00"


@export_cli.command("create")
def export_create(
    resource: Annotated[Resource, typer.Option("--type", help="What to export.")],
    start_date: StartOption = None,
    end_date: EndOption = None,
    run_at: Annotated[
        str | None,
        typer.Option(help=f"Run later: RFC 3339 with offset, e.g. {_RUN_AT_EXAMPLE}."),
    ] = None,
    wait: WaitOption = False,
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
            emit_record("export created", record, as_json)
            note(f"follow it with: chatferry export get {record.get('unique_id')} --wait")
            return
        record = _waited(api, record, as_json)
        if download is None:
            emit_record("export finished", record, as_json)
            return
        private_dir(download)
        _downloaded(api, record, download / file_name(record), as_json)


def _days(record: dict[str, Any]) -> str:
    if not record.get("start_date"):
        return ""
    return f"{record.get('start_date')}..{record.get('end_date')}"


add_list_command(
    export_cli,
    "exports",
    client_function("exports", "list_exports"),
    client_function("exports", "all_exports"),
    [
        ("unique_id", field("unique_id")),
        ("type", field("resource_name")),
        ("days", _days),
        ("status", field("status")),
        ("%", field("percentage")),
        ("rows", field("total_rows")),
        ("size", lambda r: human_size(r.get("size"))),
        ("created_at", field("created_at")),
    ],
)


add_record_command(
    export_cli,
    "get",
    "export",
    client_function("exports", "get_export"),
    "export",
    "Show one export (with --wait: once it has finished).",
    wait_for=_waited,
)


add_record_command(
    export_cli,
    "delete",
    "export",
    client_function("exports", "delete_export"),
    "export deleted",
    "Delete an export and its file (a running export is cancelled first).",
)


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
        private_dir(dest.parent)
        _downloaded(api, record, dest, as_json)
