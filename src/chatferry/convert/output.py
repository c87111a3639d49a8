"""The backup directory a conversion writes: part files per type and window (the export
format, as ``chatferry backup`` writes them), ``attachments/``, ``manifest.json``.

Converting into a directory that holds an earlier conversion of the same source keeps
every row already there, in place, and adds the rows that are new: to the end of their
window's part, or in new parts. A part therefore only grows at its end, which is what lets
``chatferry restore`` import just the new rows of a backup it restored before.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from chatferry.client.attachments import store
from chatferry.client.errors import ClientError
from chatferry.client.files import read_json, write_json_atomic
from chatferry.client.manifest import MANIFEST_NAME, RESOURCES, Part, manifest_from_json
from chatferry.convert.ids import window_at, window_days

KEYS = {"users": "Email", "rooms": "UniqueId", "comments": "UniqueId"}
Row = dict[str, Any]


def encode_part(lines: list[bytes]) -> bytes:
    """Encoded rows as a JSON array, one object a line: the bytes an export writes."""
    return b"[\n" + b",\n".join(lines) + b"\n]\n" if lines else b"[]\n"


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


@dataclass
class Previous:
    """What an earlier conversion left in the directory (nothing for a new one)."""

    manifest: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, dict[int, Part]] = field(default_factory=lambda: {r: {} for r in RESOURCES})

    @property
    def exists(self) -> bool:
        return bool(self.manifest)

    def keys(self, out: Path, resource: str) -> set[str]:
        """The keys (Email or UniqueId) of every row the earlier conversion wrote."""
        return {
            str(row.get(KEYS[resource]))
            for part in self.parts[resource].values()
            for row in orjson.loads((out / part.file).read_bytes())
        }

    def rows(self, out: Path, resource: str, window: int) -> list[bytes]:
        """The window's rows as the earlier conversion wrote them (encoded, in order)."""
        part = self.parts[resource].get(window)
        rows = orjson.loads((out / part.file).read_bytes()) if part else []
        return [orjson.dumps(row) for row in rows]


def load_previous(out: Path, server: str) -> Previous:
    """The earlier conversion in ``out``; ClientError if ``out`` holds something else."""
    path = out / MANIFEST_NAME
    if not path.is_file():
        if out.is_dir() and any(p.name != ".chatferry.lock" for p in out.iterdir()):
            raise ClientError(
                f"{out} is not empty and holds no conversion: give a new or empty directory"
            )
        return Previous()
    try:
        data = read_json(path)
        manifest = manifest_from_json(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ClientError(f"{path} is not a valid backup manifest: {exc}") from None
    if manifest.server != server:
        raise ClientError(
            f"{out} holds a backup of {manifest.server}, not a conversion of this kind "
            f"({server}): give a new or empty directory"
        )
    previous = Previous(manifest=data)
    for part in manifest.parts:
        window = window_at(part.start_date)
        if window is None or window_days(window)[1] != part.end_date:
            raise ClientError(f"{out}: part {part.file} is not a window a conversion writes")
        previous.parts[part.type][window] = part
    return previous


class Attachments:
    """Files whose bytes the export holds, stored as ``attachments/<sha256>``."""

    def __init__(self, out: Path, previous: dict[str, Any]) -> None:
        self.out = out
        self.index: dict[str, dict[str, Any]] = dict(previous)

    def add(self, url: str, stream: IO[bytes], content_type: str, fetched_at: str) -> None:
        # Through the client's attachment store, like every attachment a backup keeps.
        sha256, size = store.store_stream(self.out, stream)
        self.index.setdefault(
            url,
            {
                "sha256": sha256,
                "bytes": size,
                "content_type": content_type,
                "fetched_at": fetched_at,
            },
        )


def window_range(windows: Iterable[int]) -> Iterator[int]:
    """Every window from the first to the last: parts follow each other without a gap."""
    present = sorted(set(windows))
    if present:
        yield from range(present[0], present[-1] + 1)


def part_entry(out: Path, resource: str, window: int, data: bytes, rows: int) -> Part:
    start, end = window_days(window)
    relative = f"{resource}/{start.isoformat()}_{end.isoformat()}.json"
    write_atomic(out / relative, data)
    sha256 = hashlib.sha256(data).hexdigest()
    return Part(resource, start, end, rows, len(data), sha256, relative)


def write_manifest(out: Path, head: dict[str, Any], parts: list[Part], files: Any) -> None:
    ordered = sorted(parts, key=lambda p: (RESOURCES.index(p.type), p.start_date))
    data = {
        **head,
        "since": min((p.start_date for p in parts), default=None),
        "until": max((p.end_date for p in parts), default=None),
        "utc_offset": "+00:00",
        "parts": [p.as_json() for p in ordered],
        "pending": [],
        "attachments": dict(sorted(files.items())),
    }
    for key in ("since", "until"):
        data[key] = data[key].isoformat() if data[key] else ""
    write_json_atomic(out / MANIFEST_NAME, data)
