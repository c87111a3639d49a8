"""``chatferry verify``: checks a backup directory offline.

Every part: the file exists, its size and sha256 match the manifest, it is a JSON array of
objects with the manifest's row count. Every type: its parts follow each other without a
gap or an overlap. Every reference resolves inside the backup: rooms' creators and
participants are users, comments' rooms are rooms and creators users, and a reply's parent
is a comment that comes before it (the order a restore imports them in). No key twice.

An encrypted backup is checked without a key as far as a key is not needed: every file's
size and sha256 (of the encrypted bytes) and the coverage of the days. With identities,
each part is decrypted in memory as it is read (its hash taken on the way) and every check
above runs on its plaintext.
Every attachment in the index (or a random ``sample`` percent of them) is stored under its
sha256 with that size and hash; attachments that could not be fetched are counted. An
encrypted backup's attachments: see ``chatferry.client.attachments.sealed_check``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from chatferry.client.attachments.check import check_files, sample, stored_files
from chatferry.client.attachments.sealed_check import check_with_key, check_without_key
from chatferry.client.download import file_digest
from chatferry.client.manifest import RESOURCES, Manifest, Part, load_manifest
from chatferry.client.progress import NullReporter, Reporter

if TYPE_CHECKING:
    from chatferry.client.crypto import Identity

MAX_LISTED = 1000
Row = dict[str, Any]


@dataclass
class VerifyReport:
    parts: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    problems: list[dict[str, str]] = field(default_factory=list)
    problem_count: int = 0
    encrypted: bool = False
    contents_checked: bool = True  # False: an encrypted backup checked without its key
    attachments: int = 0
    attachments_checked: int = 0
    attachments_failed: int = 0

    def add(self, where: str, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append({"where": where, "problem": message})

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "parts": self.parts,
            "rows": self.rows,
            "attachments": self.attachments,
            "attachments_checked": self.attachments_checked,
            "attachments_failed": self.attachments_failed,
            "problem_count": self.problem_count,
            "problems": self.problems,
            "encrypted": self.encrypted,
            "contents_checked": self.contents_checked,
        }


@dataclass
class _Index:
    """What the parts read so far define, and where each key was first seen."""

    emails: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    rooms: dict[str, str] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)
    waiting_parents: dict[str, list[str]] = field(default_factory=dict)


def check_coverage(manifest: Manifest, report: VerifyReport) -> None:
    """Consecutive parts of a type neither leave a day out nor cover one twice."""
    for resource in RESOURCES:
        parts = manifest.parts_of(resource)
        for before, after in pairwise(parts):
            expected = before.end_date + timedelta(days=1)
            if after.start_date > expected:
                report.add(
                    after.file,
                    f"no part of {resource} covers {expected.isoformat()} to "
                    f"{(after.start_date - timedelta(days=1)).isoformat()}",
                )
            elif after.start_date < expected:
                report.add(after.file, f"overlaps {before.file}: days would be restored twice")


def _inside(directory: Path, part: Part, report: VerifyReport) -> Path | None:
    path = (directory / part.file).resolve()
    if directory.resolve() not in path.parents:
        report.add(part.file, "the file is outside the backup directory")
        return None
    if not path.is_file():
        report.add(part.file, "the file is missing")
        return None
    return path


def _check_digest(part: Part, size: int, sha256: str, report: VerifyReport) -> None:
    if size != part.bytes:
        report.add(part.file, f"the file has {size} bytes, the manifest says {part.bytes}")
    if sha256 != part.sha256:
        report.add(part.file, "the file's sha256 differs from the manifest's: it was changed")


def _parse_rows(part: Part, data: bytes, report: VerifyReport) -> list[Row] | None:
    try:
        rows = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        report.add(part.file, f"the file is not valid JSON ({exc})")
        return None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        report.add(part.file, "the file is not a JSON array of objects")
        return None
    if len(rows) != part.rows:
        report.add(part.file, f"the file has {len(rows)} rows, the manifest says {part.rows}")
    return rows


def _decrypted(
    path: Path, part: Part, identities: list[Identity], report: VerifyReport
) -> bytes | None:
    """The part's plaintext; a damaged file is a problem, a key that opens no part of
    an intact file raises KeyProblem."""
    from chatferry.client.crypto import CorruptFile, KeyProblem, decrypt_bytes

    try:
        data, size, sha256 = decrypt_bytes(path, identities)
    except (CorruptFile, KeyProblem) as exc:
        size, sha256 = file_digest(path)
        if isinstance(exc, KeyProblem) and (size, sha256) == (part.bytes, part.sha256):
            raise
        _check_digest(part, size, sha256, report)
        report.add(part.file, exc.message)
        return None
    _check_digest(part, size, sha256, report)
    return data


def read_part(
    directory: Path, part: Part, report: VerifyReport, identities: list[Identity] | None = None
) -> list[Row] | None:
    """The part's rows, if the file matches the manifest; else its problems are reported.
    An encrypted part is decrypted with ``identities``; without them only its size and
    sha256 are checked (and no rows are returned)."""
    path = _inside(directory, part, report)
    if path is None:
        return None
    if part.file.endswith(".age") != report.encrypted:
        kind = "an encrypted" if report.encrypted else "a plain"
        report.add(part.file, f"the file does not belong in {kind} backup")
        return None
    if report.encrypted and identities is None:
        _check_digest(part, *file_digest(path), report)
        return None
    if report.encrypted and identities is not None:
        decrypted = _decrypted(path, part, identities, report)
        return None if decrypted is None else _parse_rows(part, decrypted, report)
    data = path.read_bytes()
    _check_digest(part, len(data), hashlib.sha256(data).hexdigest(), report)
    return _parse_rows(part, data, report)


def _where(part: Part, index: int) -> str:
    return f"{part.file} row {index + 1}"


def _unique(seen: dict[str, str], value: Any, name: str, where: str, report: VerifyReport) -> None:
    if not isinstance(value, str) or not value:
        report.add(where, f"{name} is missing")
    elif value in seen:
        report.add(where, f"{name} {value!r} is also in {seen[value]}")
    else:
        seen[value] = where


def _known(seen: dict[str, str], value: Any, what: str, where: str, report: VerifyReport) -> None:
    if value not in seen:
        report.add(where, f"{what} {value!r} is not in the backup")


def check_users(part: Part, rows: list[Row], index: _Index, report: VerifyReport) -> None:
    for i, row in enumerate(rows):
        where = _where(part, i)
        _unique(index.emails, row.get("Email"), "Email", where, report)
        token = row.get("AuthenticationToken")
        if token:
            _unique(index.tokens, token, "AuthenticationToken", where, report)


def check_rooms(part: Part, rows: list[Row], index: _Index, report: VerifyReport) -> None:
    for i, row in enumerate(rows):
        where = _where(part, i)
        _unique(index.rooms, row.get("UniqueId"), "UniqueId", where, report)
        _known(index.emails, row.get("CreatorEmail"), "creator", where, report)
        participants = row.get("ParticipantEmails")
        if not isinstance(participants, list):
            report.add(where, "ParticipantEmails is not a list")
            continue
        for email in participants:
            _known(index.emails, email, "participant", where, report)


def check_comments(part: Part, rows: list[Row], index: _Index, report: VerifyReport) -> None:
    for i, row in enumerate(rows):
        where = _where(part, i)
        unique_id = row.get("UniqueId")
        _unique(index.comments, unique_id, "UniqueId", where, report)
        _known(index.rooms, row.get("RoomUniqueId"), "room", where, report)
        _known(index.emails, row.get("CreatorEmail"), "creator", where, report)
        parent = row.get("ParentCommentUniqueId")
        if parent and parent not in index.comments:
            index.waiting_parents.setdefault(str(parent), []).append(where)


def check_parents(index: _Index, report: VerifyReport) -> None:
    """Replies whose parent is missing, or comes after them (a restore would refuse them)."""
    for parent, replies in index.waiting_parents.items():
        for where in replies:
            if parent in index.comments:
                report.add(where, f"its parent comment {parent!r} comes after it")
            else:
                report.add(where, f"parent comment {parent!r} is not in the backup")


CHECKS = {"users": check_users, "rooms": check_rooms, "comments": check_comments}


def ordered_parts(manifest: Manifest) -> Iterator[Part]:
    """Users, then rooms, then comments, each oldest first: the order of a restore."""
    for resource in RESOURCES:
        yield from manifest.parts_of(resource)


def check_attachments(
    directory: Path,
    manifest: Manifest,
    report: VerifyReport,
    percent: float | None,
    identities: list[Identity] | None = None,
) -> None:
    if manifest.encrypted:
        check_sealed_attachments(directory, manifest, report, percent, identities)
        return
    files = stored_files(manifest.attachments, report.add)
    chosen = sample(sorted(files), percent)
    check_files(directory, files, chosen, report.add)
    report.attachments = len(files)
    report.attachments_checked = len(chosen)
    report.attachments_failed = sum("sha256" not in e for e in manifest.attachments.values())


def check_sealed_attachments(
    directory: Path,
    manifest: Manifest,
    report: VerifyReport,
    percent: float | None,
    identities: list[Identity] | None,
) -> None:
    """An encrypted backup's: the encrypted files' sizes and hashes, and with identities
    the plaintext of each attachment against the sealed index."""
    files = manifest.encrypted_files
    if identities is None:
        counts = check_without_key(directory, files, percent, report.add)
    else:
        counts = check_with_key(directory, files, identities, percent, report.add)
    report.attachments = counts.files
    report.attachments_checked = counts.checked
    report.attachments_failed = counts.failed


def verify_backup(
    directory: Path,
    reporter: Reporter | None = None,
    identities: list[Identity] | None = None,
    sample_percent: float | None = None,
) -> VerifyReport:
    """Every check on ``directory``; the report lists each problem found. An encrypted
    backup's contents are checked only with ``identities`` (KeyProblem if they open none).
    ``sample_percent``: a random share of the attachments (0: none of them)."""
    report = VerifyReport()
    try:
        manifest = load_manifest(directory)
    except Exception as exc:  # the manifest is the first thing a backup needs
        report.add("manifest.json", getattr(exc, "message", str(exc)))
        return report
    report.encrypted = manifest.encrypted
    report.contents_checked = not manifest.encrypted or identities is not None
    check_coverage(manifest, report)
    index = _Index()
    task = (reporter or NullReporter()).task("verify", total=len(manifest.parts))
    for done, part in enumerate(ordered_parts(manifest), 1):
        rows = read_part(directory, part, report, identities)
        report.parts += 1
        if not report.contents_checked:
            report.rows[part.type] += part.rows  # as the manifest says
        elif rows is not None:
            report.rows[part.type] += len(rows)
            CHECKS[part.type](part, rows, index, report)
        task.update(done)
    task.done()
    check_parents(index, report)
    if sample_percent != 0:  # 0: the attachments are not checked at all
        check_attachments(directory, manifest, report, sample_percent, identities)
    return report
