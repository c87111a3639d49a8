"""chatferry running for a test: in process (``client``) or as real processes.

Real processes (``start_server``, ``start_worker``, ``run_cli``) run with the test's
``settings_env``, bind 127.0.0.1 on a free port and write their output to
``<tmp_path>/*.log``, which is printed after the test (pytest shows it on failure).
Tests that start processes are marked ``slow``. The processes are forked from a warm
interpreter that has imported chatferry already (``support.warm``): real processes, for
signals and exit codes too, without a second of imports each.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from chatferry.api.app import create_api
from chatferry.runtime import Runtime
from support import warm
from support.db import waking_listeners
from support.waiting import wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_command(*args: str) -> list[str]:
    """``python -m chatferry ARGS`` with this interpreter."""
    return [sys.executable, "-m", "chatferry", *args]


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """The real ASGI app with its worker threads, in process."""
    test_client = TestClient(create_api(runtime, run_worker=True))
    test_client.__enter__()
    try:
        yield test_client
    finally:
        with waking_listeners(runtime):
            test_client.__exit__(None, None, None)


# A real chatferry process: a fresh ``python -m chatferry`` or one forked by the warm
# interpreter (``support.warm``); both have the ``Popen`` methods the tests use.
Process = subprocess.Popen[bytes] | warm.WarmProcess


def start_process(args: tuple[str, ...], env: dict[str, str], log_path: Path) -> Process:
    """``python -m chatferry ARGS`` writing to ``log_path``: forked by the warm
    interpreter when ``env`` allows it (``support.warm.fits``), else a fresh process."""
    if warm.fits(env):
        return warm.start_logged(warm.WarmProcess, args, env, log_path)
    return subprocess.Popen(
        cli_command(*args), env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT
    )


@dataclass
class ServerProcess:
    process: Process
    base_url: str
    log_path: Path
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.base_url, timeout=30)

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_server(settings_env: dict[str, str], tmp_path: Path) -> Iterator[StartServer]:
    """``start_server(extra_env=None, *args)``: ``chatferry serve ARGS`` as a real
    process (``start_process``) on a free loopback port, ready (``/healthz`` answers)
    when it returns."""
    servers: list[ServerProcess] = []

    def start(extra_env: dict[str, str] | None = None, *args: str) -> ServerProcess:
        port = free_port()
        log_path = tmp_path / f"serve-{port}.log"
        process = start_process(
            ("serve", "--host", "127.0.0.1", "--port", str(port), *args),
            {**os.environ, **settings_env, **(extra_env or {})},
            log_path,
        )
        server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
        servers.append(server)
        wait_for(lambda: _answers(server), timeout=30)
        return server

    yield start
    for server in servers:
        server.stop()


def _answers(server: ServerProcess) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"server exited: {server.log_path.read_text()}")
    try:
        return server.http.get("/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class WorkerLog:
    """A ``chatferry worker`` process whose output goes to ``log_path``."""

    log_path: Path
    poll: Callable[[], int | None]

    def wait_started(self, timeout: float = 30.0) -> None:
        """Waits for the line saying it runs (its SIGTERM handler is set by then)."""
        wait_for(self._says_started, timeout=timeout)

    def _says_started(self) -> bool:
        if self.poll() is not None:
            raise AssertionError(f"worker exited: {self.log_path.read_text()}")
        return "worker started" in self.log_path.read_text(errors="replace")


class WorkerProcess(WorkerLog, subprocess.Popen[bytes]):  # type: ignore[misc]
    """A fresh ``python -m chatferry worker`` process."""


class WarmWorkerProcess(WorkerLog, warm.WarmProcess):  # type: ignore[misc]
    """A ``chatferry worker`` process forked by the warm interpreter."""


StartWorker = Callable[..., WorkerLog]


@pytest.fixture
def start_worker(settings_env: dict[str, str], tmp_path: Path) -> Iterator[StartWorker]:
    """``start_worker(extra_env=None, *args, name="worker", ready=True)``: ``chatferry
    worker ARGS`` as a real process, returned once it runs (unless ``ready=False``: then
    call its ``wait_started()``); killed after the test if it is still running."""
    workers: list[WorkerProcess | WarmWorkerProcess] = []

    def start(
        extra_env: dict[str, str] | None = None,
        *args: str,
        name: str = "worker",
        ready: bool = True,
    ) -> WorkerLog:
        log_path = tmp_path / f"{name}-{time.monotonic_ns()}.log"
        env = {**os.environ, **settings_env, **(extra_env or {})}
        process: WorkerProcess | WarmWorkerProcess
        if warm.fits(env):
            process = warm.start_logged(WarmWorkerProcess, ("worker", *args), env, log_path)
        else:
            process = WorkerProcess(
                cli_command("worker", *args),
                env=env,
                stdout=log_path.open("wb"),
                stderr=subprocess.STDOUT,
            )
        process.log_path = log_path
        workers.append(process)
        if ready:
            process.wait_started()
        return process

    yield start
    for process in workers:
        kill(process)


def kill(process: Process) -> None:
    """SIGKILLs the process if it still runs, and reaps it."""
    if process.poll() is None:
        process.kill()
        process.wait()


def run_cli(
    settings_env: dict[str, str], *args: str, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m chatferry ARGS`` with the test's CHATFERRY_* settings (in
    ``cwd``, if given): a real process, forked from a warm interpreter (``support.warm``)."""
    return warm.run(args, {**os.environ, **settings_env}, timeout=timeout, cwd=cwd)


def run_cli_json(settings_env: dict[str, str], *args: str) -> Any:
    """Runs a CLI command that must succeed and print JSON; returns the parsed JSON."""
    done = run_cli(settings_env, *args)
    assert done.returncode == 0, f"{args} exited {done.returncode}: {done.stdout}{done.stderr}"
    return json.loads(done.stdout)


@pytest.fixture(autouse=True)
def show_process_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, prints the logs of the processes it started (shown on failure)."""
    yield
    tmp_path: Path | None = request.node.funcargs.get("tmp_path")
    if tmp_path is None:
        return
    for log in sorted(tmp_path.glob("*.log")):
        print(f"----- {log.name} -----\n{log.read_text(errors='replace')[-20000:]}")
