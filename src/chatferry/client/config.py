"""Where the client's server, app id and secret come from.

Each setting is taken from the command line's flag, else the environment
(``CHATFERRY_SERVER``, ``QISCUS_SDK_APP_ID``, ``QISCUS_SDK_SECRET``), else the config file
that ``chatferry login`` writes (``config.json`` in the user's config dir, mode 0600). A
config file that other users can read is refused: it holds the secret.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chatferry.client.errors import ClientError

ENV_SERVER = "CHATFERRY_SERVER"
ENV_APP_ID = "QISCUS_SDK_APP_ID"
ENV_SECRET = "QISCUS_SDK_SECRET"
API_PATH = "/api/v2.1/rest"
KEYS = ("server", "app_id", "secret")
_ENV = {"server": ENV_SERVER, "app_id": ENV_APP_ID, "secret": ENV_SECRET}
_FLAGS = {"server": "--server", "app_id": "--app-id", "secret": "--secret"}


@dataclass(frozen=True)
class Connection:
    """A server and the app credentials to use on it; ``sources`` says where each came from."""

    server: str
    app_id: str
    secret: str = field(repr=False)
    sources: dict[str, str] = field(default_factory=dict, compare=False)


def config_path() -> Path:
    """``config.json`` in the user's config dir (``$XDG_CONFIG_HOME/chatferry`` on Linux)."""
    from typer import get_app_dir

    return Path(get_app_dir("chatferry")) / "config.json"


def normalize_server(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash or the API's base path."""
    value = url.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ClientError(
            f"the server {url!r} is not an http:// or https:// URL: "
            "give it like https://chat-backups.example.com or http://127.0.0.1:8000"
        )
    if value.endswith(API_PATH):
        value = value[: -len(API_PATH)]
    return value


def read_config(path: Path | None = None) -> dict[str, str]:
    """The saved settings; {} when there is no file. Refuses a file others can read."""
    path = path or config_path()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ClientError(
            f"the config file {path} can be read by other users (mode "
            f"{stat.S_IMODE(mode):04o}) and it holds your secret: run 'chmod 600 {path}', "
            "and rotate the secret if someone else may have read it"
        )
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClientError(
            f"the config file {path} could not be read ({exc.__class__.__name__}): "
            "fix it, or delete it and run 'chatferry login' again"
        ) from None
    if not isinstance(data, dict):
        raise ClientError(f"the config file {path} is not a JSON object: run 'chatferry login'")
    return {k: v for k, v in data.items() if k in KEYS and isinstance(v, str) and v}


def write_config(values: dict[str, str], path: Path | None = None) -> Path:
    """Saves the settings atomically, readable by the user only (0600, dir 0700)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({k: values[k] for k in KEYS if values.get(k)}, handle, indent=2)
        handle.write("\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    return path


def remove_config(path: Path | None = None) -> bool:
    """Deletes the config file; False when there was none."""
    path = path or config_path()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _pick(name: str, flag: str | None, saved: dict[str, str]) -> tuple[str, str]:
    if flag:
        return flag, _FLAGS[name]
    from_env = os.environ.get(_ENV[name], "")
    if from_env:
        return from_env, _ENV[name]
    if saved.get(name):
        return saved[name], "config file"
    return "", ""


def _missing_message(missing: list[str]) -> str:
    hints = ", ".join(f"{_FLAGS[name]} (or {_ENV[name]})" for name in missing)
    return f"no {' and no '.join(m.replace('_', ' ') for m in missing)} given: pass {hints}, " + (
        "or run 'chatferry login' once to save them"
    )


def resolve(
    server: str | None = None,
    app_id: str | None = None,
    secret: str | None = None,
    path: Path | None = None,
) -> Connection:
    """The connection from flags, else the environment, else the config file."""
    flags = {"server": server, "app_id": app_id, "secret": secret}
    needs_file = any(not flags[k] and not os.environ.get(_ENV[k]) for k in KEYS)
    saved = read_config(path) if needs_file else {}
    picked = {name: _pick(name, flags[name], saved) for name in KEYS}
    missing = [name for name in KEYS if not picked[name][0]]
    if missing:
        raise ClientError(_missing_message(missing))
    return Connection(
        server=normalize_server(picked["server"][0]),
        app_id=picked["app_id"][0].strip(),
        secret=picked["secret"][0].strip(),
        sources={name: source for name, (_value, source) in picked.items()},
    )
