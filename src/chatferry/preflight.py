"""Preflight: before a process serves or works, its settings, database, schema, keys and
storage are checked, and whatever fails is ONE line that says what failed and what to
set. ``chatferry check`` runs the same checks and shows the configuration in use.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, make_url, text

from chatferry.db.engine import create_db_engine
from chatferry.db.migrate import alembic_config, upgrade_to_head
from chatferry.errors import ChatferryError
from chatferry.jobs.failures import short_error
from chatferry.obs.log import log_event
from chatferry.runtime import Runtime, build_runtime, prepare_data_dir
from chatferry.security.keys import KEY_FILE_NAME
from chatferry.settings import Settings, load_settings
from chatferry.storage.store import FileStore

Announce = Callable[[str], None]
log = logging.getLogger(__name__)


class PreflightError(ChatferryError):
    """A check before start failed; the message says what to set."""


def announce_on_stderr(line: str) -> None:
    print(f"chatferry: {line}", file=sys.stderr, flush=True)


def database_label(settings: Settings) -> str:
    """The database URL as shown to people: without its password."""
    url = make_url(settings.resolved_database_url())
    return url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)


def sqlite_path(settings: Settings) -> Path | None:
    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve()


_DATABASE_HINTS = (
    (
        "does not exist",
        "it does not exist: create it (e.g. createdb) or fix CHATFERRY_DATABASE_URL",
    ),
    ("password authentication", "it refused the user or password: fix CHATFERRY_DATABASE_URL"),
    ("no password supplied", "it wants a password: put it in CHATFERRY_DATABASE_URL"),
    (
        "connection refused",
        "nothing answers there: start it, or fix the host and port in CHATFERRY_DATABASE_URL",
    ),
    ("could not translate host", "the host name is unknown: fix CHATFERRY_DATABASE_URL"),
    ("timeout", "it did not answer in time: check the host and the network"),
    (
        "unable to open database file",
        "the file cannot be created or opened: make CHATFERRY_DATA_DIR a writable directory",
    ),
)


def database_problem(exc: BaseException, label: str) -> str:
    detail = str(exc).lower()
    for needle, hint in _DATABASE_HINTS:
        if needle in detail:
            return f"cannot use the database at {label}: {hint}"
    return (
        f"cannot use the database at {label} ({short_error(exc, 160)}): check "
        "CHATFERRY_DATABASE_URL"
    )


def connect_database(settings: Settings) -> Engine:
    """An engine whose database answered; PreflightError saying what to fix if not."""
    label = database_label(settings)
    try:
        engine = create_db_engine(settings.resolved_database_url())
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except ChatferryError:
        raise
    except Exception as exc:
        raise PreflightError(database_problem(exc, label)) from None
    return engine


def schema_revisions(engine: Engine) -> tuple[str | None, str | None]:
    """(the database's revision, this version's head revision)."""
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head


def ensure_schema(engine: Engine, settings: Settings, migrate: bool) -> None:
    """Migrates the database (``migrate``) or checks that it is migrated."""
    current, head = schema_revisions(engine)
    if current == head:
        return
    if not migrate:
        raise PreflightError(
            f"the database at {database_label(settings)} is not migrated (it is at "
            f"revision {current or 'none'}, this version needs {head}): run "
            "'chatferry serve' or 'chatferry check --migrate' once"
        )
    try:
        upgrade_to_head(engine)
    except Exception as exc:
        raise PreflightError(
            f"could not migrate the database at {database_label(settings)} "
            f"({short_error(exc, 160)}): check that its user may create tables"
        ) from None
    log_event(
        log,
        "database migrated",
        database=database_label(settings),
        from_revision=current or "none",
        to_revision=head,
    )


_STORAGE_HINTS = (
    (
        "<code>nosuchbucket</code>",
        "the bucket does not exist: create it, or fix CHATFERRY_STORAGE_URL",
    ),
    ("<code>invalidaccesskeyid</code>", "the access key is unknown: fix AWS_ACCESS_KEY_ID"),
    ("<code>signaturedoesnotmatch</code>", "the secret key is wrong: fix AWS_SECRET_ACCESS_KEY"),
    ("<code>accessdenied</code>", "access is denied: give the credentials write and delete rights"),
    (
        "permission denied",
        "it is not writable: fix the directory's permissions or CHATFERRY_STORAGE_URL",
    ),
    ("connection refused", "nothing answers at the endpoint: start it, or fix AWS_ENDPOINT_URL"),
    (
        "error sending request",
        "the endpoint cannot be reached: check AWS_ENDPOINT_URL and the network",
    ),
)


def storage_url_problem(url: str) -> str | None:
    """What is wrong with CHATFERRY_STORAGE_URL's form (None when it can be used)."""
    parsed = urlparse(url)
    usable = "file:///absolute/directory or s3://bucket/prefix"
    if parsed.scheme not in ("file", "s3"):
        what = f"'{parsed.scheme}' URLs are not supported" if parsed.scheme else "it has no scheme"
        return f"CHATFERRY_STORAGE_URL={url} is not usable: {what}; use {usable}"
    if parsed.scheme == "s3" and not parsed.netloc:
        return f"CHATFERRY_STORAGE_URL={url} names no bucket: use s3://bucket/prefix"
    if parsed.scheme == "file" and (parsed.netloc not in ("", "localhost") or not parsed.path):
        return (
            f"CHATFERRY_STORAGE_URL={url} is not an absolute directory: use "
            "file:///absolute/directory (three slashes)"
        )
    return None


def check_storage_url(settings: Settings) -> None:
    problem = storage_url_problem(settings.resolved_storage_url())
    if problem is not None:
        raise PreflightError(problem)


def storage_problem(exc: BaseException, url: str) -> str:
    detail = str(exc.__cause__ or exc).lower()
    for needle, hint in _STORAGE_HINTS:
        if needle in detail:
            return f"cannot write to the file storage at {url}: {hint}"
    return (
        f"cannot write to the file storage at {url} ({type(exc.__cause__ or exc).__name__}): check "
        "CHATFERRY_STORAGE_URL and the AWS_* settings"
    )


def check_storage(store: FileStore) -> None:
    """A write and a delete, as a job would do; PreflightError saying what to fix."""
    key = f".chatferry-probe/{os.getpid()}-{threading.get_ident()}"
    try:
        store.put_stream(key, iter([b"ok"]))
        store.delete(key)
    except Exception as exc:
        raise PreflightError(storage_problem(exc, store.url)) from None


@dataclass(frozen=True)
class Opened:
    runtime: Runtime
    created_database: bool


def open_runtime(
    migrate: bool,
    check_store: bool,
    announce: Announce = announce_on_stderr,
    settings: Settings | None = None,
) -> Opened:
    """The process's runtime after every check; a new SQLite database is announced."""
    settings = settings or load_settings()
    check_storage_url(settings)
    path = sqlite_path(settings)
    new_database = path is not None and not path.exists()
    prepare_data_dir(settings.data_dir)
    engine = connect_database(settings)
    ensure_schema(engine, settings, migrate or new_database)
    engine.dispose()
    if new_database:
        announce(
            f"created a new database at {path} (set CHATFERRY_DATA_DIR or "
            "CHATFERRY_DATABASE_URL to use another)"
        )
    rt = build_runtime(settings, migrate=False)
    if check_store:
        check_storage(rt.store)
    return Opened(rt, new_database)


def configuration(settings: Settings) -> dict[str, str]:
    """The configuration in use, as ``chatferry check`` shows it (no secret)."""
    key_file = settings.data_dir.resolve() / KEY_FILE_NAME
    return {
        "data_dir": str(settings.data_dir.resolve()),
        "database_url": database_label(settings),
        "storage_url": settings.resolved_storage_url(),
        "signing_key": "CHATFERRY_SIGNING_KEY" if settings.signing_key else str(key_file),
        "secret_hash_key": (
            "CHATFERRY_SECRET_HASH_KEY" if settings.secret_hash_key else str(key_file)
        ),
        "worker_concurrency": str(settings.worker_concurrency),
        "log_format": settings.log_format,
    }
