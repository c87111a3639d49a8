"""How long-running client work reports progress (the command line draws it with Rich)."""

from __future__ import annotations

from typing import Protocol


class Task(Protocol):
    def update(
        self, completed: float, total: float | None = None, label: str | None = None
    ) -> None: ...

    def done(self) -> None: ...


class Reporter(Protocol):
    def task(self, label: str, total: float | None = None, transient: bool = True) -> Task: ...

    def note(self, message: str) -> None: ...


class _NullTask:
    def update(
        self, completed: float, total: float | None = None, label: str | None = None
    ) -> None:
        return None

    def done(self) -> None:
        return None


class NullReporter:
    """Reports nothing (library use, tests)."""

    def task(self, label: str, total: float | None = None, transient: bool = True) -> Task:
        return _NullTask()

    def note(self, message: str) -> None:
        return None
