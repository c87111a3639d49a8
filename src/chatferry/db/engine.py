"""Engine and session factory for SQLite (embedded) and PostgreSQL (scale-out)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

from chatferry.db.outage import watch_database
from chatferry.fs import make_private

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Connections kept open: as many as the API's thread pool (40) and the job threads use at
# once, so busy moments reuse connections instead of opening (and setting up) new ones.
SQLITE_POOL_SIZE = 48


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_db_engine(url: str) -> Engine:
    """An engine with the per-dialect settings the job queue and exports rely on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url)
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    watch_database(engine)  # one log line when the database is lost, one when back
    return engine


def _create_sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    on_disk = Path(database) if database and database != ":memory:" else None
    if on_disk is not None:
        on_disk.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=SQLITE_POOL_SIZE,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()
        if on_disk is not None:  # the database and its journal: owner only
            for suffix in ("", "-wal", "-shm"):
                make_private(on_disk.with_name(on_disk.name + suffix))

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get(_READ_ONLY):  # see reading(): each statement on its own
            return
        # Writers that must not lose a race (job claims) ask for BEGIN IMMEDIATE.
        mode = "IMMEDIATE" if options.get("sqlite_immediate") else ""
        conn.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


_READ_ONLY = "chatferry_read_only"


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for reads outside any transaction: each statement sees the latest
    committed data, and no BEGIN and COMMIT round trips are spent (the request paths
    that only read). Never write through it."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")
        else:  # the driver already runs each statement alone; skip our BEGIN
            conn.execution_options(**{_READ_ONLY: True})
        yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A session on a read_connection: for reads only."""
    with read_connection(engine) as conn, Session(bind=conn, expire_on_commit=False) as session:
        yield session


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction: every statement in it sees the same committed data
    (SQLite: a deferred transaction in WAL mode; PostgreSQL: REPEATABLE READ). Writers
    are not blocked while it is open."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        with conn.begin():
            yield conn


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commits when the block ends, rolls back if it raises."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def immediate_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction that takes SQLite's write lock up front (plain BEGIN elsewhere)."""
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            yield conn


def begin_write(session: Session) -> None:
    """Starts the session's transaction as a writer (``BEGIN IMMEDIATE`` on SQLite).

    A SQLite transaction that reads first and writes later cannot wait for the write
    lock: if a job worker writes in between, the write fails at once with "database is
    locked". Call this first in any transaction that reads and then writes.
    """
    session.connection(execution_options={"sqlite_immediate": True})
