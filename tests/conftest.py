"""Shared fixtures: every test runs against SQLite and, where reachable, PostgreSQL.

PostgreSQL comes from CHATFERRY_TEST_POSTGRES_URL (default: the local server on
127.0.0.1:5432, database ``test``). Each test gets its own schema. Without a server the
PostgreSQL variants skip with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from chatferry.api.app import create_api
from chatferry.apps.service import create_app
from chatferry.db.engine import transaction
from chatferry.runtime import Runtime, build_runtime
from chatferry.settings import Settings

POSTGRES_URL = os.environ.get(
    "CHATFERRY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ["sqlite", "postgresql"]


def _postgres_unavailable() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable ({exc.__class__.__name__}: {exc})"


@pytest.fixture(scope="session")
def postgres_problem() -> str | None:
    return _postgres_unavailable()


@pytest.fixture(params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_problem: str | None
) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chatferry.db'}"
        return
    if postgres_problem:
        if IN_CI:
            pytest.fail(f"CI=true but {postgres_problem}")
        pytest.skip(postgres_problem)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND query LIKE %s",
            (f"%{schema}%",),
        )
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def extra_env() -> dict[str, str]:
    """CHATFERRY_* settings a test adds; override with parametrize("extra_env", ...)."""
    return {}


@pytest.fixture
def settings_env(tmp_path: Path, database_url: str, extra_env: dict[str, str]) -> dict[str, str]:
    """The CHATFERRY_* environment a test's server or CLI runs with."""
    return {
        "CHATFERRY_DATA_DIR": str(tmp_path / "data"),
        "CHATFERRY_DATABASE_URL": database_url,
        "CHATFERRY_JOB_POLL_SECONDS": "0.1",
        "CHATFERRY_JOB_LEASE_SECONDS": "3",
        **extra_env,
    }


@pytest.fixture
def settings(settings_env: dict[str, str]) -> Settings:
    return Settings(**{k.removeprefix("CHATFERRY_").lower(): v for k, v in settings_env.items()})


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = build_runtime(settings)
    yield rt
    rt.close()


@dataclass(frozen=True)
class Credentials:
    app_id: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"QISCUS-SDK-APP-ID": self.app_id, "QISCUS-SDK-SECRET": self.secret}


@pytest.fixture
def make_app(runtime: Runtime):  # type: ignore[no-untyped-def]
    """Creates an app (tenant) and returns its credentials."""

    def make(name: str = "Test app", timezone: str = "UTC", **kwargs: str) -> Credentials:
        with transaction(runtime.sessions) as session:
            app, secret = create_app(session, runtime.secrets, name, timezone=timezone, **kwargs)
            return Credentials(app.app_id, secret)

    return make


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """The real ASGI app with its worker threads, in process."""
    with TestClient(create_api(runtime, run_worker=True)) as test_client:
        yield test_client


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    """Polls until ``predicate()`` returns something truthy, which it returns."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "chatferry", *args]


@pytest.fixture
def start_server(settings_env: dict[str, str], tmp_path: Path):  # type: ignore[no-untyped-def]
    """Starts ``chatferry serve`` as a real process on a free loopback port."""
    servers: list[ServerProcess] = []

    def start(extra_env: dict[str, str] | None = None, *args: str) -> ServerProcess:
        port = free_port()
        log_path = tmp_path / f"serve-{port}.log"
        env = {**os.environ, **settings_env, **(extra_env or {})}
        process = subprocess.Popen(
            cli_command("serve", "--host", "127.0.0.1", "--port", str(port), *args),
            env=env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
        servers.append(server)

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"server exited: {log_path.read_text()}")
            try:
                return httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=30)
        return server

    yield start
    for server in servers:
        server.stop()
