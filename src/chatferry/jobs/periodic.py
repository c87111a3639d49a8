"""Periodic tasks of a worker process (schedule firing, retention): one thread each."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from chatferry.db.outage import log_failure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    interval_seconds: float
    run: Callable[[], object]


class PeriodicRunner:
    """Runs each task every ``interval_seconds`` until stopped; a failing pass is
    logged and the task tries again at its next interval."""

    def __init__(self, tasks: list[PeriodicTask]) -> None:
        self.tasks = tasks
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for task in self.tasks:
            thread = threading.Thread(
                target=self._loop, args=(task,), name=f"chatferry-{task.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self, task: PeriodicTask) -> None:
        while not self._stop.is_set():
            try:
                task.run()
            except Exception as exc:
                log_failure(log, f"the periodic task {task.name} failed; retrying", exc)
            self._stop.wait(task.interval_seconds)
