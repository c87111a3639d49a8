"""The database every test runs on: SQLite and, where reachable, PostgreSQL.

Both are migrated ONCE per test session (per pytest-xdist worker) and handed to each test
empty: SQLite as a copy of a migrated template file, PostgreSQL as one schema per
session, emptied (every row deleted, every id sequence restarted) before each test.

PostgreSQL comes from CHATFERRY_TEST_POSTGRES_URL (default: the local server on
127.0.0.1:5432, database ``test``). Without a server the PostgreSQL variants skip with
the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from chatferry.db.engine import create_db_engine
from chatferry.db.migrate import upgrade_to_head
from chatferry.db.models import Base
from chatferry.jobs.notify import CHANNEL
from chatferry.runtime import Runtime, build_runtime
from chatferry.settings import Settings

POSTGRES_URL = os.environ.get(
    "CHATFERRY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ["sqlite", "postgresql"]
_RESET_APP_NAME = "chatferry-test-reset"


def _postgres_unavailable() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable ({exc.__class__.__name__}: {exc})"


def require_postgres(problem: str | None) -> None:
    """Skips the test when PostgreSQL is unreachable (fails it under CI=true)."""
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but {problem}")
        pytest.skip(problem)


@dataclass
class PostgresSchema:
    """A schema of the test database with every chatferry table, for one test session.

    Every connection made through ``url`` (this process, the servers and workers it
    starts) uses the schema and carries its name as ``application_name``.
    """

    name: str = field(default_factory=lambda: f"t_{uuid.uuid4().hex[:12]}")
    tables: list[str] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)
    _empty_script: str = ""
    _reset_conn: psycopg.Connection[tuple[object, ...]] | None = None

    @property
    def url(self) -> str:
        separator = "&" if "?" in POSTGRES_URL else "?"
        return (
            f"{POSTGRES_URL}{separator}options=-csearch_path%3D{self.name}"
            f"&application_name={self.name}"
        )

    def create(self) -> None:
        """Creates the schema and migrates it to head."""
        with _admin() as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.name)))
        engine = create_db_engine(Settings(database_url=self.url).resolved_database_url())
        try:
            upgrade_to_head(engine)
        finally:
            engine.dispose()
        with _admin() as conn:
            tables = {row[0] for row in conn.execute(_TABLES, (self.name,))}
            self.sequences = [row[0] for row in conn.execute(_SEQUENCES, (self.name,))]
        # Children before parents, so that plain DELETEs never trip a foreign key.
        ordered = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in tables]
        self.tables = ordered + sorted(tables - {*ordered, "alembic_version"})

    def empty(self) -> None:
        """Deletes every row (the migration's version stays); restarts the id sequences.

        The equivalent of ``TRUNCATE ... RESTART IDENTITY``, five times faster on the
        few rows a test leaves behind; sent as one script in one transaction (one round
        trip) on a connection kept for the session.
        """
        if not self._empty_script:
            statements = [
                *(
                    sql.SQL("DELETE FROM {}").format(sql.Identifier(self.name, t))
                    for t in self.tables
                ),
                *(
                    sql.SQL("ALTER SEQUENCE {} RESTART").format(sql.Identifier(self.name, s))
                    for s in self.sequences
                ),
            ]
            with _admin() as conn:
                self._empty_script = "; ".join(st.as_string(conn) for st in statements)
        try:
            self._empty_once()
        except psycopg.errors.LockNotAvailable:
            # A process of the previous test still holds a lock: it is stray.
            with _admin() as conn:
                self._terminate_connections(conn)
            self._empty_once()

    def _empty_once(self) -> None:
        for attempt in (1, 2):
            if self._reset_conn is None or self._reset_conn.closed:
                self._reset_conn = _admin()
                self._reset_conn.execute("SET lock_timeout = '3s'")
            try:
                with self._reset_conn.transaction():
                    self._reset_conn.execute(self._empty_script)  # type: ignore[arg-type]
                return
            except psycopg.errors.LockNotAvailable:
                raise
            except psycopg.OperationalError:
                # The connection was lost (a test terminated backends): connect again.
                self._reset_conn.close()
                self._reset_conn = None
                if attempt == 2:
                    raise

    def drop(self) -> None:
        if self._reset_conn is not None:
            self._reset_conn.close()
        with _admin() as conn:
            self._terminate_connections(conn)
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(self.name)))

    def _terminate_connections(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (self.name,),
        )


_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = %s"
_SEQUENCES = "SELECT sequencename FROM pg_sequences WHERE schemaname = %s"


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    """A connection for creating, emptying and dropping test schemas."""
    return psycopg.connect(POSTGRES_URL, autocommit=True, application_name=_RESET_APP_NAME)


@contextmanager
def migrated_postgres_schema() -> Iterator[PostgresSchema]:
    """A new migrated schema, dropped afterwards: the session's, or one for a test that
    needs a schema of its own."""
    schema = PostgresSchema()
    schema.create()
    try:
        yield schema
    finally:
        schema.drop()


@pytest.fixture(scope="session")
def postgres_problem() -> str | None:
    return _postgres_unavailable()


@pytest.fixture(scope="session")
def postgres_schema(postgres_problem: str | None) -> Iterator[PostgresSchema]:
    """This session's schema, migrated once (each xdist worker has its own)."""
    require_postgres(postgres_problem)
    with migrated_postgres_schema() as schema:
        yield schema


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file; each test gets a copy (faster than migrating)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "chatferry.db"
    engine = create_db_engine(f"sqlite:///{path}")
    try:
        upgrade_to_head(engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database: a SQLite file, or this session's PostgreSQL schema."""
    if request.param == "sqlite":
        path = tmp_path / "chatferry.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    schema: PostgresSchema = request.getfixturevalue("postgres_schema")
    schema.empty()
    return schema.url


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
    # The database is migrated already (the template file, the session's schema): a
    # migration check per test would cost more than most tests (Alembic loads its
    # scripts every time). `serve`, `check --migrate` and test_migrations migrate.
    rt = build_runtime(settings, migrate=False)
    yield rt
    rt.close()


@contextmanager
def waking_listeners(rt: Runtime) -> Iterator[None]:
    """While the block runs, NOTIFYs the job channel every 20 ms (PostgreSQL only).

    A worker's LISTEN thread looks up from its socket every half second to see whether
    it should stop; a notification wakes it at once, so stopping an in-process worker
    takes milliseconds instead of up to half a second per test.
    """
    if rt.engine.dialect.name != "postgresql":
        yield
        return
    done = threading.Event()

    def notify() -> None:
        with _admin() as conn:
            while not done.is_set():
                conn.execute("SELECT pg_notify(%s, 'test-stop')", (CHANNEL,))
                done.wait(0.02)

    thread = threading.Thread(target=notify, name="test-listener-waker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def lock_waiters(database_url: str) -> int:
    """How many connections of this PostgreSQL schema are waiting for a lock."""
    application_name = database_url.rsplit("application_name=", 1)[1].split("&", 1)[0]
    with _admin() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = %s AND wait_event_type = 'Lock'",
            (application_name,),
        ).fetchone()
    return int(row[0]) if row else 0
