"""Creating, listing and authenticating apps (tenants)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, update
from sqlalchemy.orm import Session

from chatferry.clock import utcnow, validate_timezone
from chatferry.db.engine import begin_write
from chatferry.db.models import App, table_of
from chatferry.errors import BadRequest, NotFound, Unauthorized, show
from chatferry.resources import Resource
from chatferry.security.secrets import SecretHasher, generate_secret
from chatferry.settings import Settings

_APP_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_apps = table_of(App)
# Built once: this runs on every request.
_APP_BY_APP_ID = select(_apps).where(_apps.c.app_id == bindparam("app_id"))


@dataclass(frozen=True)
class AppContext:
    """What a request or job needs to know about the app it acts for."""

    pk: int
    app_id: str
    name: str
    timezone: str
    export_max_rows: dict[str, int]  # by resource name
    import_max_bytes: int


def app_context(app: App | Row[Any], settings: Settings) -> AppContext:
    """The app (a model or a row of the apps table) with deployment defaults filled in
    where it sets no limit of its own."""
    limits = {
        Resource.USERS.value: app.export_max_users or settings.export_max_users,
        Resource.ROOMS.value: app.export_max_rooms or settings.export_max_rooms,
        Resource.COMMENTS.value: app.export_max_comments or settings.export_max_comments,
    }
    return AppContext(
        pk=app.id,
        app_id=app.app_id,
        name=app.name,
        timezone=app.timezone,
        export_max_rows=limits,
        import_max_bytes=app.import_max_bytes or settings.import_max_bytes,
    )


def create_app(
    session: Session,
    hasher: SecretHasher,
    name: str,
    app_id: str | None = None,
    secret: str | None = None,
    timezone: str = "UTC",
) -> tuple[App, str]:
    """Creates an app; returns it with its plain secret (shown once, stored hashed)."""
    app_id = app_id or _generate_app_id(name)
    if not _APP_ID_PATTERN.match(app_id):
        raise BadRequest(
            f"app id {show(app_id)} is not valid: use 1-100 letters, digits, '.', '_' or '-'"
        )
    if secret is not None and len(secret) < 8:
        raise BadRequest("the secret is too short: use at least 8 characters")
    try:
        validate_timezone(timezone)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    secret = secret or generate_secret()
    secret_hash = hasher.hash(app_id, secret)
    begin_write(session)
    if session.scalar(select(App.id).where(App.app_id == app_id)) is not None:
        raise BadRequest(f"an app with id {app_id!r} already exists")
    app = App(
        app_id=app_id,
        name=name,
        secret_hash=secret_hash,
        timezone=timezone,
        created_at=utcnow(),
    )
    session.add(app)
    session.flush()
    return app, secret


def _generate_app_id(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "app"
    return f"{slug}-{generate_secret()[:8]}"


def get_app(session: Session, app_id: str) -> App:
    app = session.scalar(select(App).where(App.app_id == app_id))
    if app is None:
        raise NotFound(f"no app with id {app_id!r}")
    return app


def list_apps(session: Session) -> list[App]:
    return list(session.scalars(select(App).order_by(App.id)))


def rotate_secret(session: Session, hasher: SecretHasher, app_id: str) -> str:
    """Replaces the app's secret; the old one stops working at once."""
    secret = generate_secret()
    secret_hash = hasher.hash(app_id, secret)
    begin_write(session)
    app = get_app(session, app_id)
    app.secret_hash = secret_hash
    return secret


def update_app(
    session: Session,
    app_id: str,
    timezone: str | None = None,
    limits: dict[str, int | None] | None = None,
) -> App:
    """Changes an app's timezone or its own limits (0 clears a limit to the default)."""
    begin_write(session)
    app = get_app(session, app_id)
    if timezone is not None:
        try:
            app.timezone = validate_timezone(timezone)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
    for field, value in (limits or {}).items():
        if value is None:
            continue
        if value < 0:
            raise BadRequest(f"{field} must be a positive number, or 0 for the default")
        setattr(app, field, value or None)
    return app


_MAX_CREDENTIAL = 200


@dataclass(frozen=True)
class Authenticated:
    app: AppContext
    legacy_hash: bool  # stored by an older version: replace it (upgrade_secret_hash)


def lookup_app(conn: Connection, app_id: str | None, secret: str | None) -> Row[Any] | None:
    """The apps row that ``app_id`` names (None: no such app); Unauthorized when a
    credential is missing. Reads only; the secret is checked by verify_credentials."""
    if not app_id:
        raise Unauthorized("missing QISCUS-SDK-APP-ID header: send your app id")
    if not secret:
        raise Unauthorized("missing QISCUS-SDK-SECRET header: send your app secret")
    if len(app_id) > _MAX_CREDENTIAL or "\x00" in app_id:
        return None
    # A plain row, not a model: this runs on every request (a third of the ORM's cost).
    return conn.execute(_APP_BY_APP_ID, {"app_id": app_id}).one_or_none()


def verify_credentials(
    settings: Settings, hasher: SecretHasher, app_id: str, secret: str, app: Row[Any] | None
) -> Authenticated:
    """The app if ``secret`` is its secret, else Unauthorized (an unknown app costs the
    same check as a wrong secret)."""
    stored = app.secret_hash if app else None
    if not hasher.verify(app_id, stored, secret) or app is None:
        raise Unauthorized(
            "invalid app id or secret: check QISCUS-SDK-APP-ID and QISCUS-SDK-SECRET"
        )
    return Authenticated(app_context(app, settings), not hasher.is_current(app.secret_hash))


def upgrade_secret_hash(
    session: Session, hasher: SecretHasher, app: AppContext, secret: str
) -> None:
    """Replaces an app's legacy (Argon2) secret hash by the keyed hash, once the secret
    was checked against it."""
    session.execute(
        update(_apps)
        .where(_apps.c.id == app.pk)
        .values(secret_hash=hasher.hash(app.app_id, secret))
    )
