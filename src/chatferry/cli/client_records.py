"""What the client's commands over records share: the list, get, delete, pause and
resume commands of exports, imports and schedules are made here, from what differs
between them (the client function, the columns, the words).

No ``from __future__ import annotations`` here: the commands made below carry their
annotations as objects, which Typer reads from the function (names local to a factory
cannot be resolved from strings).
"""

import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chatferry.cli.client_common import (
    AppIdOption,
    JsonOption,
    RichReporter,
    SecretOption,
    ServerOption,
    connect,
    print_json,
    show_record,
    show_rows,
)

if TYPE_CHECKING:
    from chatferry.client.http import Api

Record = dict[str, Any]
# A table column: its header and how a record's cell is read.
Column = tuple[str, Callable[[Record], Any]]

PageOption = Annotated[int, typer.Option(min=1, help="Page number (newest first).")]
LimitOption = Annotated[
    int | None, typer.Option(min=1, max=100, help="Rows a page (chatferry only).")
]
AllOption = Annotated[bool, typer.Option("--all", help="Every page.")]
WaitOption = Annotated[bool, typer.Option("--wait", help="Wait until it finishes.")]


def client_function(module: str, name: str) -> Callable[..., Any]:
    """``chatferry.client.<module>.<name>``, imported when first called (the client's
    modules stay out of ``chatferry --help``'s start-up)."""

    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(f"chatferry.client.{module}"), name)(*args)

    return call


def emit_record(title: str, record: Record, as_json: bool) -> None:
    print_json(record) if as_json else show_record(title, record)


def show_records(
    records: Sequence[Record], columns: Sequence[Column], title: str, as_json: bool
) -> None:
    if as_json:
        print_json(list(records))
        return
    rows = [[read(record) for _, read in columns] for record in records]
    show_rows([header for header, _ in columns], rows, title=title)


def field(key: str) -> Callable[[Record], Any]:
    return lambda record: record.get(key)


def add_list_command(
    app: typer.Typer,
    plural: str,
    fetch_page: Callable[["Api", int, int | None], list[Record]],
    fetch_all: Callable[["Api"], Iterable[Record]],
    columns: Sequence[Column],
) -> None:
    """``<group> list [--page N] [--limit M] [--all]``."""

    def command(
        page: PageOption = 1,
        limit: LimitOption = None,
        all_pages: AllOption = False,
        server: ServerOption = None,
        app_id: AppIdOption = None,
        secret: SecretOption = None,
        as_json: JsonOption = False,
    ) -> None:
        with connect(server, app_id, secret) as api:
            records = list(fetch_all(api)) if all_pages else fetch_page(api, page, limit)
        title = f"{plural} ({'all' if all_pages else f'page {page}'})"
        show_records(records, columns, title, as_json)

    command.__doc__ = f"List {plural}, newest first."
    app.command("list")(command)


Act = Callable[["Api", str], Record]
# Waits for a job's record to be final: (api, record, as_json) -> the final record.
Wait = Callable[["Api", Record, bool], Record]
Show = Callable[[str, Record, bool], None]


def add_record_command(
    app: typer.Typer,
    name: str,
    noun: str,
    act: Act,
    title: str,
    doc: str,
    wait_for: Wait | None = None,
    show: Show = emit_record,
    id_key: str = "unique_id",
) -> None:
    """``<group> <name> ID [--wait]``: one call about one record, then the record shown
    (with ``wait_for``, a --wait option waits for it to end first)."""
    id_help = f"The {noun}'s {id_key}."
    id_argument = Annotated[str, typer.Argument(help=id_help, show_default=False, metavar=id_key)]

    def run(unique_id: str, wait: bool, connection: tuple[Any, ...], as_json: bool) -> None:
        with connect(*connection) as api:
            record = act(api, unique_id)
            if wait and wait_for is not None:
                record = wait_for(api, record, as_json)
        show(title, record, as_json)

    def command(
        unique_id: id_argument,
        server: ServerOption = None,
        app_id: AppIdOption = None,
        secret: SecretOption = None,
        as_json: JsonOption = False,
    ) -> None:
        run(unique_id, False, (server, app_id, secret), as_json)

    def waiting_command(
        unique_id: id_argument,
        wait: WaitOption = False,
        server: ServerOption = None,
        app_id: AppIdOption = None,
        secret: SecretOption = None,
        as_json: JsonOption = False,
    ) -> None:
        run(unique_id, wait, (server, app_id, secret), as_json)

    chosen = command if wait_for is None else waiting_command
    chosen.__doc__ = doc
    app.command(name)(chosen)


# Waits for a record by its id, calling back with each version: the client's wait_for_*.
Waiter = Callable[["Api", str, Callable[[Record], None]], Record]


def wait_with_bar(label: str, wait: Waiter, api: "Api", unique_id: str) -> Record:
    """Waits for a job's record with a progress bar of its ``percentage``."""
    with RichReporter() as reporter:
        task = reporter.task(label, total=100)

        def on_update(current: Record) -> None:
            value = current.get("percentage")
            task.update(value if isinstance(value, int | float) else 0)

        return wait(api, unique_id, on_update)
