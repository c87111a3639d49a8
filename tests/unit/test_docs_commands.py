"""Every ``chatferry`` command the README and the docs pages show is one the command line
accepts, so the pages cannot drift from it.

- A command line in a code block (``sh``, ``ini``, ...) is parsed as the shell would
  split it and handed to the real command tree's parser (no command runs): the command
  path, every option and argument, the choices and ranges. A path that the example
  expects to exist (a file to import, a backup directory) is the only refusal accepted.
- A command in running text (``chatferry export list [--page N] [--all]``) must name a
  command that exists, and every ``--option`` it shows must be one of that command's.

The README's "Try it" session is also run for real against a server, as written:
``tests/test_readme_session.py``.
"""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer import _click

from chatferry.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`(chatferry [^`]+)`")
# A command line in a block: optional path to the script, optional ExecStart=.
LINE = re.compile(r"^(?:ExecStart=)?(?:\S*/)?chatferry\s+(.*)$")


@functools.cache
def _root() -> Any:
    return typer.main.get_command(cli)


def block_commands(page: Path) -> list[str]:
    """Each ``chatferry ...`` command line of the page's code blocks (continuations joined)."""
    found = []
    for block in FENCE.findall(page.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            match = LINE.match(line.strip())
            if match:
                found.append(match.group(1))
    return found


def inline_commands(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    return [m.group(1).removeprefix("chatferry ") for m in INLINE.finditer(text.replace("\n", " "))]


def parse(args: list[str]) -> None:
    """Parses ``chatferry ARGS`` down to the last subcommand; raises the parser's error."""
    command = _root()
    ctx = command.make_context("chatferry", list(args))
    while hasattr(command, "commands"):
        rest = [*ctx._protected_args, *ctx.args]
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)


def command_and_options(words: list[str]) -> tuple[Any, set[str]]:
    """The command the leading words name and the options it (and the root) accepts."""
    root = command = _root()
    for word in words:
        sub = getattr(command, "commands", {}).get(word)
        if sub is None:
            break
        command = sub
    if getattr(command, "name", "") == "import":  # 'chatferry import FILE' is 'import upload'
        command = command.commands["upload"]
    options = {opt for p in [*root.params, *command.params] for opt in p.opts + p.secondary_opts}
    return command, options


def _example(page: Path, commands: list[str]) -> list[Any]:
    return [pytest.param(c, id=f"{page.name}: {c[:60]}") for c in commands]


BLOCKS = [p for page in PAGES for p in _example(page, block_commands(page))]
INLINES = [p for page in PAGES for p in _example(page, inline_commands(page))]


def test_the_pages_show_commands_in_blocks_and_in_text() -> None:
    assert len(BLOCKS) >= 15 and len(INLINES) >= 30


def shell_words(line: str) -> list[str]:
    """The words of the command, as the shell splits them, up to ``&``, ``|``, ``;`` or a
    redirection; a systemd unit's instance (``%i``) is taken as 1."""
    lexer = shlex.shlex(line.replace("%i", "1"), posix=True, punctuation_chars=True)
    lexer.commenters = "#"
    lexer.wordchars += ":@%+,"  # URLs and addresses stay one word, as in the shell
    words = []
    for word in lexer:
        if set(word) <= set("&|;<>()"):
            break
        words.append(word)
    return words


@pytest.mark.parametrize("line", BLOCKS)
def test_a_command_line_in_a_block_parses(line: str) -> None:
    args = shell_words(line)
    try:
        parse(args)
    except _click.exceptions.BadParameter as exc:
        assert "does not exist" in exc.format_message(), (line, exc.format_message())
    except _click.exceptions.UsageError as exc:
        pytest.fail(f"{line}: {exc.format_message()}")
    except _click.exceptions.Exit:
        pass  # --version


@pytest.mark.parametrize("text", INLINES)
def test_a_command_in_the_text_names_real_options(text: str) -> None:
    words = re.split(r"[\s\[\]|,]+", text)
    command, options = command_and_options(words)
    assert command is not _root() or words[0].startswith("-"), f"no command {words[0]!r}"
    for word in words:
        option = word.split("=", 1)[0].rstrip(".:;)")
        if option.startswith("--"):
            assert option in options, f"chatferry {text}: {option} is not an option"
