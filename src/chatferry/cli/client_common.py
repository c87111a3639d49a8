"""What every client command shares: connection options, output, progress bars."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from chatferry.client.config import ENV_APP_ID, ENV_SECRET, ENV_SERVER, resolve

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from chatferry.client.http import Api

CONNECTION = "Connection"

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        help=f"The API's base URL, e.g. http://127.0.0.1:8000 (or {ENV_SERVER})",
        show_default=False,
        rich_help_panel=CONNECTION,
    ),
]
AppIdOption = Annotated[
    str | None,
    typer.Option(
        "--app-id",
        help=f"The app id (or {ENV_APP_ID})",
        show_default=False,
        rich_help_panel=CONNECTION,
    ),
]
SecretOption = Annotated[
    str | None,
    typer.Option(
        "--secret",
        help=f"The app secret; prefer {ENV_SECRET} or 'chatferry login' (a flag shows in ps)",
        show_default=False,
        rich_help_panel=CONNECTION,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (for scripts) instead of tables.")
]

out = Console()
err = Console(stderr=True, soft_wrap=True, highlight=False)


@contextmanager
def connect(
    server: str | None, app_id: str | None, secret: str | None, patient: bool = False
) -> Iterator[Api]:
    """An API client for the resolved connection, closed afterwards.

    ``patient`` (backup, restore) retries a lost connection for about 20 s, long enough
    for a server restart, and waits out the app's quotas (saying so on stderr); one-shot
    commands report a dead server within a second.
    """
    from chatferry.client.http import PATIENT_RETRIES, QUICK_RETRIES, QUOTA_PATIENCE, Api

    retries = PATIENT_RETRIES if patient else QUICK_RETRIES
    patience = QUOTA_PATIENCE if patient else 0.0
    connection = resolve(server, app_id, secret)
    with Api(connection, retries=retries, quota_patience=patience, on_wait=err.print) as api:
        yield api


def print_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def wide(console: Console) -> Console:
    """The console itself on a terminal; a very wide one for pipes (never cut an id)."""
    return console if console.is_terminal else Console(width=1000)


def human_size(size: Any) -> str:
    if not isinstance(size, int | float):
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def show_record(title: str, record: dict[str, Any]) -> None:
    """A record as a two-column table, keys in the server's order."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in record.items():
        shown = value if isinstance(value, str) else orjson.dumps(value).decode()
        table.add_row(key, shown)
    wide(out).print(table)


# Columns whose values are never cut: an id is what the next command needs.
WHOLE_COLUMNS = ("unique_id",)


def show_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    """A table; where it is wider than the terminal and holds ids, one block a row
    instead (each value on its own line, whole), so that no id is ever cut."""
    console = wide(out)
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    table = Table(*columns, title=title or None, title_justify="left")
    for row in cells:
        table.add_row(*row)
    natural = console.measure(table, options=console.options.update_width(10_000)).maximum
    too_wide = natural > console.width
    if not (too_wide and any(c in WHOLE_COLUMNS for c in columns)):
        console.print(table)
        return
    if title:
        console.print(title, style="italic")
    for row in cells:
        block = Table.grid(padding=(0, 2))
        block.add_column(style="bold")
        block.add_column(overflow="fold")
        for name, value in zip(columns, row, strict=True):
            block.add_row(name, value)
        console.print(block, "")


def note(message: str) -> None:
    err.print(message)


class _RichTask:
    def __init__(self, progress: Progress, task_id: TaskID, transient: bool) -> None:
        self._progress = progress
        self._id = task_id
        self._transient = transient

    def update(
        self, completed: float, total: float | None = None, label: str | None = None
    ) -> None:
        changes: dict[str, Any] = {"completed": completed}
        if total is not None:
            changes["total"] = total
        if label is not None:
            changes["description"] = label
        self._progress.update(self._id, **changes)

    def done(self) -> None:
        if self._transient:
            self._progress.remove_task(self._id)
        else:
            self._progress.stop_task(self._id)


class RichReporter:
    """Progress bars on stderr (only on a terminal), notes as lines above them."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=not err.is_terminal,
        )

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()

    def task(self, label: str, total: float | None = None, transient: bool = True) -> _RichTask:
        return _RichTask(self.progress, self.progress.add_task(label, total=total), transient)

    def note(self, message: str) -> None:
        self.progress.console.print(message) if err.is_terminal else note(message)
