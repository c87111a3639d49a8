"""What the client prints: ids whole at any terminal width, file names every common file
system accepts, and help without a type beside plain flags."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from chatferry.cli import client_common
from chatferry.cli.client_exports import file_name
from chatferry.cli.main import cli

ROW = ["comments", "2026-11-06..2026-12-06", "finished", 100, 1402, "390.1 KB"]
COLUMNS = ("unique_id", "type", "days", "status", "%", "rows", "size", "created_at")


@pytest.mark.parametrize("width", [60, 80, 100, 160])
def test_a_list_shows_every_id_whole_at_any_width(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    console = Console(width=width, force_terminal=True, color_system=None, record=True)
    monkeypatch.setattr(client_common, "out", console)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    rows = [[unique_id, *ROW, "2026-12-07T07:12:03+07:00"] for unique_id in ids]
    client_common.show_rows(COLUMNS, rows, title="exports (page 1)")
    text = console.export_text()
    assert all(unique_id in text for unique_id in ids), text
    assert "…" not in text
    assert all(len(line) <= width for line in text.splitlines())


def test_a_table_without_ids_wraps_its_cells_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    console = Console(width=60, force_terminal=True, color_system=None, record=True)
    monkeypatch.setattr(client_common, "out", console)
    message = "Email 'someone@example.com' is also used by row 1, " * 3
    client_common.show_rows(("row", "key", "field", "message"), [[2, "k", "Email", message]])
    text = console.export_text()
    assert text.startswith("┏") and "Email" in text  # still one table


@pytest.mark.parametrize(
    ("original", "saved"),
    [
        (
            "2017-07-17T10:19:44+07:00_exported_comments.json",
            "2017-07-17T10-19-44+07-00_exported_comments.json",
        ),
        ('a<b>c"d|e?f*g\x01.json', "a-b-c-d-e-f-g-.json"),
        ("dir/sub\\name.json", "name.json"),  # never a path
        ("trailing. ", "trailing"),  # Windows drops trailing dots and spaces
        ("..", "abc.json"),
        ("", "abc.json"),
    ],
)
def test_downloaded_file_names_are_safe_on_every_common_file_system(
    original: str, saved: str
) -> None:
    assert file_name({"original_filename": original, "unique_id": "abc"}) == saved


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in getattr(group, "commands", {}).items():
        yield from _commands(command, (*path, name))


def test_no_help_shows_a_type_beside_a_plain_flag() -> None:
    root = typer.main.get_command(cli)
    runner = CliRunner()
    paths = list(_commands(root))
    assert ("export", "list") in paths and ("apps", "create") in paths
    for path in paths:
        done = runner.invoke(cli, [*path, "--help"], env={"COLUMNS": "100"})
        assert done.exit_code == 0, (path, done.output)
        assert "<bool>" not in done.output, (path, done.output)
    wait = runner.invoke(cli, ["export", "create", "--help"], env={"COLUMNS": "100"}).output
    assert "<users|rooms|comments>" in wait  # options that take a value keep their type
