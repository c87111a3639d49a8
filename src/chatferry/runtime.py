"""The long-lived objects one chatferry process shares: settings, database, storage, keys."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from chatferry.db.engine import create_db_engine, make_session_factory
from chatferry.db.migrate import upgrade_to_head
from chatferry.fs import make_private
from chatferry.jobs.events import EventHub
from chatferry.security.keys import check_fingerprint, load_keys
from chatferry.security.secrets import SecretHasher
from chatferry.security.signing import LinkSigner
from chatferry.settings import Settings
from chatferry.storage.store import FileStore


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: FileStore
    signer: LinkSigner
    secrets: SecretHasher
    # Set when this process enqueues a job, so its own idle workers start at once.
    job_wakeup: threading.Event = field(default_factory=threading.Event)
    # Records that ended, for waiting requests and webhooks (see jobs/events.py).
    events: EventHub = field(default_factory=EventHub)

    def close(self) -> None:
        self.events.close()
        self.engine.dispose()


def prepare_data_dir(path: Path) -> None:
    """Creates the data dir readable by its owner only (0700), and keeps it so."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    make_private(path, directory=True)


def build_runtime(settings: Settings | None = None, migrate: bool = True) -> Runtime:
    """Connects to the database (migrating it first) and opens the file store."""
    settings = settings or Settings()
    prepare_data_dir(settings.data_dir)
    engine = create_db_engine(settings.resolved_database_url())
    if migrate:
        upgrade_to_head(engine)
    keys = load_keys(
        engine,
        settings.data_dir,
        settings.signing_key,
        settings.previous_signing_key,
        settings.secret_hash_key,
    )
    check_fingerprint(engine, keys.secret_hash)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        store=FileStore(
            settings.resolved_storage_url(),
            max_retries=settings.storage_max_retries,
            retry_timeout_seconds=settings.storage_retry_timeout_seconds,
            connect_timeout_seconds=settings.storage_connect_timeout_seconds,
        ),
        signer=LinkSigner(keys.signing, keys.previous_signing, settings.download_url_ttl_seconds),
        secrets=SecretHasher(keys.secret_hash),
    )
