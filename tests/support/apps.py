"""Apps (tenants) for tests: ONE factory, ``new_app``.

App secrets are keyed hashes (cheap to check), so every test app goes through
``apps.service.create_app``, the code the CLI uses. Test users' passwords are another
matter: ``TEST_PASSWORD_HASH`` is an Argon2id hash made once at the lowest cost, so
imports of test users cost nothing unless a test is about hashing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher

from chatferry.apps.service import create_app
from chatferry.db.engine import transaction
from chatferry.runtime import Runtime

# A real Argon2id hasher at the lowest cost, for secrets and passwords tests do not study.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
# Test users' password, and its hash made once: importing ``PasswordHash`` costs nothing,
# importing ``Password`` costs an Argon2id hash at OWASP parameters per user.
TEST_PASSWORD = "secret-pass"
TEST_PASSWORD_HASH = CHEAP_HASHER.hash(TEST_PASSWORD)


@dataclass(frozen=True)
class Credentials:
    app_id: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"QISCUS-SDK-APP-ID": self.app_id, "QISCUS-SDK-SECRET": self.secret}


NewApp = Callable[..., Credentials]


def create_test_app(
    rt: Runtime,
    name: str = "Test app",
    timezone: str = "UTC",
    *,
    app_id: str | None = None,
    secret: str | None = None,
    real_secret_hash: bool = False,
) -> Credentials:
    """Creates an app and returns its credentials. ``real_secret_hash`` is kept for the
    tests that say they are about secrets: every app's secret is hashed for real now."""
    del real_secret_hash
    app_id = app_id or f"app-{uuid.uuid4().hex[:10]}"
    with transaction(rt.sessions) as session:
        app, plain = create_app(
            session, rt.secrets, name, app_id=app_id, secret=secret, timezone=timezone
        )
        return Credentials(app.app_id, plain)


@pytest.fixture
def new_app(runtime: Runtime) -> NewApp:
    """``new_app(name="Test app", timezone="UTC", *, app_id=None, secret=None,
    real_secret_hash=False) -> Credentials``: an app in the test's database."""

    def make(*args: str, **kwargs: str | bool | None) -> Credentials:
        return create_test_app(runtime, *args, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def make_app(new_app: NewApp) -> NewApp:
    """The older name of ``new_app`` (same factory, same arguments)."""
    return new_app
