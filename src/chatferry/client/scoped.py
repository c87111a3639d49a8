"""Scoped restores and the dry-run diff: what the target holds, learnt through the API.

The target is read the way a backup reads an app: exports of its users and rooms over
the backup's days and of its comments over the scope's days, into a temporary directory
that is removed afterwards (the exports are deleted on the server as
a backup deletes them). The rows are compared by key (:mod:`chatferry.client.scope`).

A scoped restore writes the rows the target lacks as a small backup of their own in
``DIR/scoped/<scope id>/`` and restores that with the usual resumable restore (its own
``restore-state.json``, its own upload names); a run again recomputes what is missing.
Of an encrypted backup, those parts (and the target's exports) are age files to the
backup's recipients, read back with the restore's identities: no plaintext on disk.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from chatferry.client.attachments.run import AttachmentOptions
from chatferry.client.backup import BackupOptions, _parse_offset, run_backup
from chatferry.client.files import directory_lock, now_rfc3339
from chatferry.client.http import Api
from chatferry.client.manifest import RESOURCES, Manifest, Part
from chatferry.client.progress import Reporter
from chatferry.client.restore import Restore, RestoreSummary, Rewrite, _Parts, check_backup
from chatferry.client.scope import Diff, Row, Scope, comment_days, compare, key_of, select
from chatferry.client.verify import ordered_parts

if TYPE_CHECKING:
    from chatferry.client.crypto import Identity

NONE = AttachmentOptions(mode="none")


def rows_of(
    directory: Path, manifest: Manifest, identities: list[Identity] | None = None
) -> dict[str, list[Row]]:
    """Every row of the backup by type (an encrypted one decrypted in memory)."""
    parts = _Parts(directory, identities)
    rows: dict[str, list[Row]] = {t: [] for t in RESOURCES}
    for part in ordered_parts(manifest):
        rows[part.type].extend(parts.rows(part.file))
    return rows


def _export(
    api: Api,
    manifest: Manifest,
    work: Path,
    types: tuple[str, ...],
    days: tuple[date, date] | None,
    reporter: Reporter,
    identities: list[Identity] | None = None,
) -> dict[str, list[Row]]:
    """The target's rows, exported into ``work`` (encrypted to the backup's recipients
    when the backup is encrypted: no plaintext of them on disk either)."""
    first = min(p.start_date for p in manifest.parts)
    last = max(p.end_date for p in manifest.parts)
    since, until = days or (first, last)
    provisional = any(p.provisional for p in manifest.parts) and until >= last
    if provisional:
        until = last - timedelta(days=1)
    recipients = tuple(manifest.recipients) if identities else ()
    options = BackupOptions(work, types, since, None if provisional else until,
                            recipients=recipients, until_now=provisional,
                            attachments=NONE)  # fmt: skip
    result = run_backup(api, options, reporter)
    return rows_of(work, result.manifest, identities)


def target_rows(
    api: Api,
    manifest: Manifest,
    days: tuple[date, date] | None,
    reporter: Reporter,
    identities: list[Identity] | None = None,
) -> dict[str, dict[str, Row]]:
    """The target's rows over the backup's days (comments: over ``days``), by type and key."""
    held: dict[str, dict[str, Row]] = {t: {} for t in RESOURCES}
    if not manifest.parts:
        return held
    work = Path(tempfile.mkdtemp(prefix="chatferry-target-"))
    try:
        for types in (("users", "rooms"), ("comments",)):
            span = days if types == ("comments",) else None
            got = _export(api, manifest, work / types[0], types, span, reporter, identities)
            for resource in types:
                held[resource] = {key_of(resource, r): r for r in got[resource]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return held


def diff_against(
    api: Api,
    directory: Path,
    manifest: Manifest,
    scope: Scope,
    reporter: Reporter,
    identities: list[Identity] | None = None,
) -> Diff:
    offset = _parse_offset(manifest.utc_offset) or _parse_offset("+00:00")
    assert offset is not None
    selected = select(rows_of(directory, manifest, identities), scope, offset)
    days = comment_days(selected["comments"], offset) if not scope.whole else None
    held = target_rows(api, manifest, days, reporter, identities)
    diff = Diff()
    for resource in RESOURCES:
        compare(resource, selected[resource], held[resource], diff)
    return diff


def scope_id(scope: Scope) -> str:
    text = f"{sorted(scope.rooms or [])}|{scope.since}|{scope.until}|{scope.types}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _write_part(sub: Path, resource: str, data: bytes, manifest: Manifest) -> tuple[str, int, str]:
    """A scoped part's file (an age file to the backup's recipients when it is encrypted:
    no plaintext on disk); its name, size and sha256."""
    if not manifest.encrypted:
        (sub / f"{resource}.json").write_bytes(data)
        return f"{resource}.json", len(data), hashlib.sha256(data).hexdigest()
    from chatferry.client.crypto import encrypt_bytes, recipients_of

    name = f"{resource}.json.age"
    sealed = encrypt_bytes(sub / name, data, recipients_of(manifest.recipients))
    return name, sealed.size, sealed.sha256


def write_scoped(directory: Path, manifest: Manifest, scope: Scope, diff: Diff) -> Path:
    """The rows the target lacks as a backup directory of their own."""
    sub = directory / "scoped" / scope_id(scope)
    sub.mkdir(mode=0o700, parents=True, exist_ok=True)
    first = min(p.start_date for p in manifest.parts)
    last = max(p.end_date for p in manifest.parts)
    parts = []
    for resource in RESOURCES:
        rows = diff.new[resource]
        data = b"[\n" + b",\n".join(orjson.dumps(r) for r in rows) + b"\n]\n" if rows else b"[]\n"
        name, size, digest = _write_part(sub, resource, data, manifest)
        # Provisional: the next run of this scope replaces the file wholesale (what the
        # target lacks then), and the restore state keeps the keys it imported.
        parts.append(Part(resource, first, last, len(rows), size, digest, name, provisional=True))
    scoped = replace(manifest, backup_id=f"{manifest.backup_id}-{scope_id(scope)}",
                     created_at=now_rfc3339(), parts=parts, pending=[], attachments={},
                     encrypted_files={})  # fmt: skip
    scoped.save(sub)
    return sub


def dry_run_diff(
    api: Api,
    directory: Path,
    scope: Scope,
    reporter: Reporter,
    identities: list[Identity] | None = None,
) -> Diff:
    """What a restore (of ``scope``) would add to the target; imports and writes nothing
    (an encrypted backup's rows are compared in memory)."""
    manifest = check_backup(directory, reporter, identities)
    return diff_against(api, directory, manifest, scope, reporter, identities)


def scoped_restore(
    api: Api,
    directory: Path,
    scope: Scope,
    reporter: Reporter,
    limit: int,
    rewrite: Rewrite | None = None,
    identities: list[Identity] | None = None,
) -> RestoreSummary:
    """Restores the rows of ``scope`` the target lacks (conflicts are left out, listed).
    An encrypted backup's (with ``identities``): its scoped parts are written encrypted to
    the backup's recipients, and the target's rows are read encrypted too."""
    with directory_lock(directory, "restore"):
        manifest = check_backup(directory, reporter, identities)
        diff = diff_against(api, directory, manifest, scope, reporter, identities)
        sub = write_scoped(directory, manifest, scope, diff)
    summary = Restore(api, sub, reporter, limit, identities, check=False, rewrite=rewrite).run()
    summary.diff = diff.as_json()
    return summary
