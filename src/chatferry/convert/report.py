"""The conversion report: what was written, and each kind of record left out, with why.

Kinds are counted in full; the first few examples of each are kept. Nothing a converter
drops goes unreported: a record it cannot convert is ``left_out`` (by the type it would
have been), and what the spec cannot hold at all is ``not_supported``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RESOURCES = ("users", "rooms", "comments")
EXAMPLES = 5


@dataclass
class Kind:
    reason: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "reason": self.reason, "examples": self.examples}


@dataclass
class ConversionReport:
    source: str
    export: str
    written: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    new_rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    attachments: int = 0
    left_out: dict[str, dict[str, Kind]] = field(default_factory=lambda: {r: {} for r in RESOURCES})
    not_supported: dict[str, Kind] = field(default_factory=dict)
    changed: dict[str, Kind] = field(default_factory=dict)
    broken: dict[str, Kind] = field(default_factory=dict)
    placeholder_emails: list[dict[str, str]] = field(default_factory=list)

    def leave_out(self, resource: str, kind: str, reason: str, example: str, n: int = 1) -> None:
        """``n`` records of ``resource`` not written, for ``reason``."""
        _count(self.left_out[resource], kind, reason, example, n)

    def unsupported(self, kind: str, reason: str, example: str, n: int = 1) -> None:
        """Something the spec's format cannot hold (reactions, edits, ...)."""
        _count(self.not_supported, kind, reason, example, n)

    def change(self, kind: str, reason: str, example: str) -> None:
        """A record written in another shape than its source's (e.g. a reply as text)."""
        _count(self.changed, kind, reason, example, 1)

    def broken_record(self, kind: str, reason: str, example: str) -> None:
        """A source record that cannot be read at all (not JSON, not the documented shape)."""
        _count(self.broken, kind, reason, example, 1)

    def left_out_count(self, resource: str) -> int:
        return sum(k.count for k in self.left_out[resource].values())

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "export": self.export,
            "written": self.written,
            "new_rows": self.new_rows,
            "attachments": self.attachments,
            "left_out": {
                resource: {name: kind.as_json() for name, kind in sorted(kinds.items())}
                for resource, kinds in self.left_out.items()
            },
            "not_supported": _kinds(self.not_supported),
            "changed": _kinds(self.changed),
            "broken": _kinds(self.broken),
            "placeholder_emails": self.placeholder_emails,
        }


def _kinds(kinds: dict[str, Kind]) -> dict[str, Any]:
    return {name: kind.as_json() for name, kind in sorted(kinds.items())}


def _count(kinds: dict[str, Kind], kind: str, reason: str, example: str, n: int) -> None:
    entry = kinds.setdefault(kind, Kind(reason))
    entry.count += n
    if len(entry.examples) < EXAMPLES and example:
        entry.examples.append(example)
