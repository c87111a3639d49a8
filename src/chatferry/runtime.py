"""The long-lived objects one chatferry process shares: settings, database, storage."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from chatferry.apps.secrets import SecretVerifier
from chatferry.db.engine import create_db_engine, make_session_factory
from chatferry.db.migrate import upgrade_to_head
from chatferry.settings import Settings
from chatferry.storage.signing import LinkSigner, load_signing_key
from chatferry.storage.store import FileStore


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: FileStore
    signer: LinkSigner
    verifier: SecretVerifier = field(default_factory=SecretVerifier)
    # Set when this process enqueues a job, so its own idle workers start at once.
    job_wakeup: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        self.engine.dispose()


def build_runtime(settings: Settings | None = None, migrate: bool = True) -> Runtime:
    """Connects to the database (migrating it first) and opens the file store."""
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(settings.resolved_database_url())
    if migrate:
        upgrade_to_head(engine)
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
        signer=LinkSigner(load_signing_key(engine, settings.signing_key)),
    )
