"""Client errors: one sentence a person can act on, and the exit code it ends with."""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_JOB_FAILED = 3
EXIT_PROBLEMS = 4
EXIT_ATTACHMENTS = 5
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 error (the server refused a request, the network, the"
    " configuration, a local file); 2 usage (a bad option or argument); 3 an export or"
    " import ended failed or cancelled; 4 verify (or restore's check) found problems in"
    " a backup; 5 backup: every row is in, some attachments could not be fetched;"
    " 130 interrupted."
)


class ClientError(Exception):
    """An error the command line prints as one line and exits with ``exit_code``."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(ClientError):
    """The server answered with an error (its envelope's message, status and extension keys)."""

    def __init__(self, status: int, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or {}

    @property
    def code(self) -> str:
        """The extension key ``error.code`` (``""`` from a server that sends none)."""
        value = self.details.get("code")
        return value if isinstance(value, str) else ""


class JobFailed(ClientError):
    """An export or import ended ``failed`` or ``cancelled``."""

    exit_code = EXIT_JOB_FAILED

    def __init__(self, message: str, record: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.record = record or {}


class BackupProblems(ClientError):
    """A backup directory failed its checks; ``problems`` lists every one."""

    exit_code = EXIT_PROBLEMS

    def __init__(self, message: str, problems: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.problems = problems


class AttachmentsMissing(ClientError):
    """Every row is backed up, but some attachments could not be fetched."""

    exit_code = EXIT_ATTACHMENTS
