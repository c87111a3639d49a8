"""One line on stderr for every error (``--debug`` adds the traceback), and its exit code."""

from __future__ import annotations

import sys
import traceback

from chatferry.client.errors import EXIT_ERROR, ClientError
from chatferry.errors import ChatferryError


class _State:
    debug = False


state = _State()


NOISE = ("(Background on this error at", "For further information visit")
MAX_DETAIL = 400


def one_line(text: str) -> str:
    """A multi-line exception message as one line, without links to library docs."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    kept = "; ".join(line for line in lines if not line.startswith(NOISE))
    return kept if len(kept) <= MAX_DETAIL else kept[: MAX_DETAIL - 3] + "..."


def error_line(exc: BaseException) -> tuple[str, int]:
    """The message and exit code for an error that reached the command line."""
    if isinstance(exc, ClientError):
        return exc.message, exc.exit_code
    if isinstance(exc, ChatferryError):
        return exc.message, EXIT_ERROR
    detail = one_line(str(exc)) or "no details"
    hint = "" if state.debug else " (run with --debug for the traceback)"
    return f"{exc.__class__.__name__}: {detail}{hint}", EXIT_ERROR


def print_error(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    # soft_wrap: one line however long, so scripts and logs get it whole.
    Console(stderr=True, soft_wrap=True, highlight=False).print(
        f"[red]error:[/red] {escape(message)}"
    )


def report_error(exc: BaseException) -> int:
    """Prints the error (and, with --debug, its traceback); returns the exit code."""
    if state.debug:
        traceback.print_exception(exc, file=sys.stderr)
    message, code = error_line(exc)
    print_error(message)
    return code
