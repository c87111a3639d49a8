"""``manifest.json``: what a backup directory holds.

Keys: ``server``, ``app_id``, ``client_version``, ``created_at``, ``backup_id``,
``updated_at``, ``since``/``until`` (the days every type covers once a run completed),
``utc_offset`` (the app's, as its records showed it), ``timezone`` (the app's IANA zone,
when a chatferry server named it), ``parts`` (each ``type``,
``start_date``, ``end_date``, ``rows``, ``bytes``, ``sha256``, ``file``, plus the export's
id and timings; ``provisional`` marks the part of the day in progress that ``--until now``
took, which the next run replaces), ``pending`` (exports created but not yet downloaded,
which the next run picks up instead of creating them again) and ``attachments`` (per URL
its ``sha256``, ``bytes``, ``content_type`` and ``fetched_at``, or the ``error`` that kept
it out and ``failed_at``; the files are ``attachments/<sha256>``).

An encrypted backup adds ``encryption`` (``format``, and the ``recipients`` every file of
the backup is encrypted to, which later runs reuse); its parts' files end in ``.age`` and
their ``bytes`` and ``sha256`` are the encrypted files' (see docs/encryption.md). It has
no ``attachments`` (URLs are user data): its URL index is sealed in
``attachments/index/*.json.age``, and ``encrypted_files`` maps every encrypted attachment
and index file to the ``bytes`` and ``sha256`` of its encrypted bytes.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from chatferry.client.errors import ClientError
from chatferry.client.files import now_rfc3339, read_json, write_bytes_atomic

MANIFEST_NAME = "manifest.json"
RESOURCES = ("users", "rooms", "comments")
ENCRYPTION_FORMAT = "age-encryption.org/v1"


@dataclass(frozen=True, order=True)
class Window:
    """Whole days ``start`` to ``end`` (inclusive) of one resource type."""

    start: date
    end: date
    resource: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def label(self) -> str:
        if self.start == self.end:
            return f"{self.resource} {self.start.isoformat()}"
        return f"{self.resource} {self.start.isoformat()}..{self.end.isoformat()}"


@dataclass
class Part:
    type: str
    start_date: date
    end_date: date
    rows: int
    bytes: int
    sha256: str
    file: str
    export_id: str = ""
    export_seconds: float | None = None
    download_seconds: float | None = None
    sha256_from_server: bool = False
    original_filename: str = ""  # the export's own name (its file is named by its window)
    provisional: bool = False

    @property
    def window(self) -> Window:
        return Window(self.start_date, self.end_date, self.type)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        self.__dict__.pop("_json", None)  # a changed part is serialised again

    def as_json(self) -> dict[str, Any]:
        """The part as the manifest holds it; cached (a manifest is saved after every part,
        so converting every part at each save would grow with the square of the parts)."""
        cached: dict[str, Any] | None = self.__dict__.get("_json")
        if cached is None:
            cached = {f.name: getattr(self, f.name) for f in fields(self)}
            cached["start_date"] = self.start_date.isoformat()
            cached["end_date"] = self.end_date.isoformat()
            self.__dict__["_json"] = cached
        return dict(cached)

    @classmethod
    def from_json(cls, data: Any) -> Part:
        if not isinstance(data, dict):
            raise ValueError("a part is not an object")
        part = cls(
            type=_text(data, "type"),
            start_date=date.fromisoformat(_text(data, "start_date")),
            end_date=date.fromisoformat(_text(data, "end_date")),
            rows=_count(data, "rows"),
            bytes=_count(data, "bytes"),
            sha256=_text(data, "sha256"),
            file=_text(data, "file"),
            export_id=str(data.get("export_id") or ""),
            export_seconds=_seconds(data.get("export_seconds")),
            download_seconds=_seconds(data.get("download_seconds")),
            sha256_from_server=data.get("sha256_from_server") is True,
            original_filename=str(data.get("original_filename") or ""),
            provisional=data.get("provisional") is True,
        )
        if part.type not in RESOURCES or part.start_date > part.end_date:
            raise ValueError(f"part {part.file}: bad type or dates")
        return part


@dataclass
class Pending:
    window: Window
    export_id: str

    def as_json(self) -> dict[str, str]:
        return {
            "type": self.window.resource,
            "start_date": self.window.start.isoformat(),
            "end_date": self.window.end.isoformat(),
            "export_id": self.export_id,
        }

    @classmethod
    def from_json(cls, data: Any) -> Pending:
        if not isinstance(data, dict):
            raise ValueError("a pending export is not an object")
        start = date.fromisoformat(_text(data, "start_date"))
        end = date.fromisoformat(_text(data, "end_date"))
        return cls(Window(start, end, _text(data, "type")), _text(data, "export_id"))


@dataclass
class Manifest:
    server: str
    app_id: str
    client_version: str
    created_at: str
    backup_id: str
    updated_at: str = ""
    since: date | None = None
    until: date | None = None
    utc_offset: str = ""
    timezone: str = ""  # the app's IANA zone, when the server names it
    parts: list[Part] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)

    @property
    def encrypted(self) -> bool:
        return bool(self.recipients)

    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)
    encrypted_files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def new(cls, server: str, app_id: str) -> Manifest:
        from chatferry import __version__

        return cls(server, app_id, __version__, now_rfc3339(), str(uuid.uuid4()))

    def parts_of(self, resource: str) -> list[Part]:
        """The parts of one type, oldest first."""
        return sorted((p for p in self.parts if p.type == resource), key=lambda p: p.start_date)

    def as_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "app_id": self.app_id,
            "client_version": self.client_version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "backup_id": self.backup_id,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "utc_offset": self.utc_offset,
            "timezone": self.timezone,
            "parts": [p.as_json() for p in sorted(self.parts, key=_part_order)],
            "pending": [p.as_json() for p in self.pending],
            **self._encryption(),
        }

    def _encryption(self) -> dict[str, Any]:
        if not self.recipients:
            return {"attachments": dict(sorted(self.attachments.items()))}
        return {
            "encryption": {"format": ENCRYPTION_FORMAT, "recipients": self.recipients},
            "encrypted_files": dict(sorted(self.encrypted_files.items())),
        }

    def save(self, directory: Path) -> None:
        write_bytes_atomic(directory / MANIFEST_NAME, self.dumps())

    def dumps(self) -> bytes:
        """The manifest's file as it is now (stamped with this client and the time)."""
        from chatferry import __version__

        self.client_version = __version__
        self.updated_at = now_rfc3339()
        return orjson.dumps(self.as_json(), option=orjson.OPT_INDENT_2) + b"\n"


class GroupSaver:
    """Saves a manifest that several threads change: :meth:`stage` snapshots it (under the
    lock that guards it), :meth:`commit` returns once that snapshot, or a later one, is on
    disk (synced). Saves that queue up while one is written share the next write."""

    def __init__(self, manifest: Manifest, directory: Path) -> None:
        self.manifest = manifest
        self.directory = directory
        self._writing = threading.Lock()
        self._staging = threading.Lock()
        self._staged: tuple[int, bytes] = (0, b"")
        self._written = 0

    def stage(self) -> int:
        data = self.manifest.dumps()
        with self._staging:
            ticket = self._staged[0] + 1
            self._staged = (ticket, data)
        return ticket

    def commit(self, ticket: int) -> None:
        with self._writing:
            if self._written >= ticket:
                return
            with self._staging:
                latest, data = self._staged
            write_bytes_atomic(self.directory / MANIFEST_NAME, data)
            self._written = latest


def _part_order(part: Part) -> tuple[int, date]:
    return RESOURCES.index(part.type), part.start_date


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} is missing or not a string")
    return value


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key} is missing or not a whole number")
    return value


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _optional_day(data: dict[str, Any], key: str) -> date | None:
    value = data.get(key)
    return date.fromisoformat(value) if isinstance(value, str) and value else None


def _derived_id(data: dict[str, Any]) -> str:
    """A stable id for a manifest written without ``backup_id`` (restores name uploads by it)."""
    seed = f"{data.get('server')}|{data.get('app_id')}|{data.get('created_at')}"
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def _recipients(data: dict[str, Any]) -> list[str]:
    encryption = data.get("encryption")
    if encryption is None:
        return []
    if not isinstance(encryption, dict) or encryption.get("format") != ENCRYPTION_FORMAT:
        raise ValueError(f"encryption is not {ENCRYPTION_FORMAT} (a newer chatferry's backup?)")
    recipients = encryption.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        raise ValueError("encryption lists no recipients")
    if not all(isinstance(r, str) and r for r in recipients):
        raise ValueError("a recipient is not a string")
    return list(recipients)


def manifest_from_json(data: Any) -> Manifest:
    """The manifest; ValueError (or KeyError) names what is wrong with it."""
    if not isinstance(data, dict):
        raise ValueError("it is not a JSON object")
    return Manifest(
        server=_text(data, "server"),
        app_id=_text(data, "app_id"),
        client_version=str(data.get("client_version") or ""),
        created_at=str(data.get("created_at") or ""),
        backup_id=str(data.get("backup_id") or _derived_id(data)),
        updated_at=str(data.get("updated_at") or ""),
        since=_optional_day(data, "since"),
        until=_optional_day(data, "until"),
        utc_offset=str(data.get("utc_offset") or ""),
        timezone=str(data.get("timezone") or ""),
        parts=[Part.from_json(p) for p in data.get("parts") or []],
        pending=[Pending.from_json(p) for p in data.get("pending") or []],
        recipients=_recipients(data),
        attachments=_attachments(data.get("attachments")),
        encrypted_files=_encrypted_files(data.get("encrypted_files")),
    )


def require_backup(directory: Path) -> None:
    """ClientError unless ``directory`` exists and holds a manifest."""
    if not directory.is_dir():
        raise ClientError(f"there is no backup in {directory}: the directory does not exist")
    if not (directory / MANIFEST_NAME).is_file():
        raise ClientError(
            f"there is no backup in {directory}: it holds no {MANIFEST_NAME} "
            f"(make one with: chatferry backup --out {directory})"
        )


def _attachments(value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError("attachments is not an object of objects")
    return {str(url): entry for url, entry in value.items()}


def _encrypted_files(value: Any) -> dict[str, dict[str, Any]]:
    files = _attachments(value)
    for name, entry in files.items():
        size, sha256 = entry.get("bytes"), entry.get("sha256")
        if not isinstance(size, int) or isinstance(size, bool) or not isinstance(sha256, str):
            raise ValueError(f"encrypted_files gives {name} no bytes and sha256")
    return files


def load_manifest(directory: Path) -> Manifest:
    """The directory's manifest; ClientError when it is missing or malformed."""
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise ClientError(f"{directory} holds no {MANIFEST_NAME}: it is not a chatferry backup")
    try:
        return manifest_from_json(read_json(path))
    except (ValueError, KeyError, TypeError) as exc:
        raise ClientError(f"{path} is not a valid backup manifest: {exc}") from None
