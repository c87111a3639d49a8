"""``chatferry restore``: a backup directory into an app, on the same or another server.

Users, then rooms, then comments, in the backup's order (so a reply's parent is imported
before it). The rows are cut into uploads under the server's file limit, whole objects
only. The uploads are imported one after another (the next one's file is built while the
server imports the current one); the server validates each import whole before it writes
any row, so an upload with a bad row imports nothing. ``restore-state.json`` in the backup
directory records the plan and each upload's progress, rewritten atomically at every step;
every upload has a fixed name (``restore-<backup id>-<type>-<n>.json``), so a run killed at
any moment and started again looks an upload of unknown outcome up in the server's import
list by that name instead of sending it twice.

An encrypted backup is restored only with one of its identities: every part is decrypted
in memory (as it is verified, then as its uploads are built); nothing of its plaintext is
written to disk. Without a key that opens it, nothing is imported.

A provisional part (the day in progress, ``backup --until now``) is cut into uploads of
its own, which remember the keys of their rows. When a later backup run replaces the
part (the state records each planned file's sha256), uploads of the old part that were
not imported are dropped, the keys of those that were are kept, and the new parts'
rows with those keys are left out: a restore run again after the backup grew imports
each row once, with no "already exists" error. An encrypted backup's state keeps those
keys (emails, ids: user data) only as HMAC-SHA256 under a random secret kept encrypted
to the backup's recipients in ``restore-state.key.age``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from chatferry.client import imports
from chatferry.client.errors import ApiError, BackupProblems, ClientError
from chatferry.client.files import directory_lock, now_rfc3339, read_json, write_json_atomic
from chatferry.client.http import Api
from chatferry.client.manifest import RESOURCES, Manifest, Part, load_manifest
from chatferry.client.progress import NullReporter, Reporter, Task
from chatferry.client.records import Record
from chatferry.client.scope import key_of
from chatferry.client.verify import ordered_parts, verify_backup

if TYPE_CHECKING:
    from chatferry.client.crypto import Identity

STATE_NAME = "restore-state.json"
STATE_SECRET_NAME = "restore-state.key.age"
Rewrite = Callable[[dict[str, Any]], dict[str, Any]]
SPEC_UPLOAD_LIMIT = 4_000_000  # "4 MB": under both 4,000,000 and 4 MiB
_FRAME = 4  # "[\n" and "\n]"
_SEPARATOR = 2  # ",\n"


@dataclass
class Upload:
    """One file to import: rows ``first .. first + count`` of each segment's part file."""

    name: str
    type: str
    segments: list[list[Any]]  # [file, first row, row count]
    rows: int
    bytes: int
    status: str = "planned"  # planned, sent (outcome unknown until looked up), imported
    import_id: str = ""
    keys: list[str] = field(default_factory=list)  # a provisional part's rows, by key

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Upload:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class RestoreSummary:
    server: str
    app_id: str
    dry_run: bool
    uploads: int = 0
    imported_now: int = 0
    already_imported: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))
    checked_on_server: list[str] = field(default_factory=list)
    seconds: float = 0.0
    diff: dict[str, Any] | None = None
    rehosted: dict[str, int] | None = None
    server_dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Parts:
    """Part files parsed on demand (each row through ``rewrite``, e.g. re-hosted URLs);
    the last few stay in memory."""

    def __init__(
        self,
        directory: Path,
        identities: list[Identity] | None = None,
        rewrite: Rewrite | None = None,
    ) -> None:
        self.directory = directory
        self.identities = identities
        self.rewrite = rewrite
        self.secret = b""  # set: row keys are given as HMACs under it
        self._cache: dict[str, list[Any]] = {}

    def key(self, resource: str, row: Any) -> str:
        """The row's key as the restore state keeps it."""
        key = row_key(resource, row)
        if not self.secret or not key:
            return key
        return hmac.new(self.secret, key.encode(), hashlib.sha256).hexdigest()

    def rows(self, file: str) -> list[Any]:
        if file not in self._cache:
            if len(self._cache) >= 3:
                self._cache.pop(next(iter(self._cache)))
            rows = orjson.loads(self._read(self.directory / file))
            if self.rewrite is not None:
                rows = [self.rewrite(r) if isinstance(r, dict) else r for r in rows]
            self._cache[file] = rows
        return self._cache[file]

    def _read(self, path: Path) -> bytes:
        if path.suffix != ".age":
            return path.read_bytes()
        from chatferry.client.crypto import decrypt_bytes

        return decrypt_bytes(path, self.identities or [])[0]


Ref = tuple[str, int, int, str]  # file, row index, encoded size, key


def row_key(resource: str, row: Any) -> str:
    return key_of(resource, row) if isinstance(row, dict) else ""


def row_refs(
    parts: _Parts,
    manifest: Manifest,
    resource: str,
    provisional: bool = False,
    skip: frozenset[str] = frozenset(),
    first_rows: Mapping[str, int] | None = None,
) -> Iterator[Ref]:
    """(file, row index, encoded size, key) of every row of ``resource`` in the regular
    (or the provisional) parts, in restore order, leaving out the keys in ``skip`` and,
    per file, the ``first_rows`` planned already."""
    for part in ordered_parts(manifest):
        if part.type == resource and part.provisional == provisional:
            first = (first_rows or {}).get(part.file, 0)
            for index, row in enumerate(parts.rows(part.file)[first:], first):
                key = parts.key(resource, row)
                if key not in skip or not key:
                    yield part.file, index, len(orjson.dumps(row)), key


def chunk(
    refs: Iterable[Ref], resource: str, limit: int, names: Iterator[str], keyed: bool = False
) -> list[Upload]:
    """Cuts rows into uploads of at most ``limit`` bytes, keeping their order (``keyed``:
    each upload lists its rows' keys)."""
    uploads: list[Upload] = []
    current: Upload | None = None
    for file, index, size, key in refs:
        if _FRAME + size > limit:
            raise ClientError(
                f"row {index + 1} of {file} is {size} bytes, more than the server's upload "
                f"limit of {limit} bytes: it cannot be imported whole"
            )
        if current is None or current.bytes + _SEPARATOR + size > limit:
            current = Upload(next(names), resource, [], 0, _FRAME - _SEPARATOR)
            uploads.append(current)
        last = current.segments[-1] if current.segments else None
        if last is not None and last[0] == file and last[1] + last[2] == index:
            last[2] += 1
        else:
            current.segments.append([file, index, 1])
        current.rows += 1
        current.bytes += _SEPARATOR + size
        if keyed:
            current.keys.append(key)
    return uploads


def content_of(parts: _Parts, upload: Upload) -> bytes:
    """The upload's file: a JSON array, one object a line."""
    rows = [
        orjson.dumps(row)
        for file, first, count in upload.segments
        for row in parts.rows(file)[first : first + count]
    ]
    return b"[\n" + b",\n".join(rows) + b"\n]"


class _Builder:
    """Builds uploads' files on a thread of its own: the next upload's while the server
    imports the current one. Only that thread reads the part files, except after
    :meth:`settle` (which waits for the one being built ahead)."""

    def __init__(self, parts: _Parts) -> None:
        self.parts = parts
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="restore-build")
        self._ahead: tuple[Upload, Future[bytes]] | None = None

    def content(self, upload: Upload) -> bytes:
        ahead = self.settle()
        if ahead is not None and ahead[0] is upload:
            return ahead[1].result()
        return self._pool.submit(content_of, self.parts, upload).result()

    def prepare(self, upload: Upload | None) -> None:
        """Starts building ``upload``'s file (unless it is imported already)."""
        self.settle()
        if upload is not None and upload.status != "imported":
            self._ahead = (upload, self._pool.submit(content_of, self.parts, upload))

    def settle(self) -> tuple[Upload, Future[bytes]] | None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            wait([ahead[1]])
        return ahead

    def close(self) -> None:
        self.settle()
        self._pool.shutdown()


class _Names:
    """Upload names ``restore-<backup id>-<type>-<n>.json``, numbered on from the state."""

    def __init__(self, backup_id: str, counters: dict[str, int]) -> None:
        self.backup_id = backup_id
        self.counters = counters

    def of(self, resource: str) -> Iterator[str]:
        while True:
            self.counters[resource] = self.counters.get(resource, 0) + 1
            yield f"restore-{self.backup_id}-{resource}-{self.counters[resource]:04d}.json"


def plan_uploads(
    parts: _Parts,
    manifest: Manifest,
    limit: int,
    names: _Names,
    skip: dict[str, frozenset[str]] | None = None,
    first_rows: Mapping[str, int] | None = None,
) -> list[Upload]:
    """Every type's regular rows, then its provisional ones, in uploads of their own."""
    uploads: list[Upload] = []
    for resource in RESOURCES:
        for provisional in (False, True):
            left_out = (skip or {}).get(resource, frozenset())
            refs = row_refs(parts, manifest, resource, provisional, left_out, first_rows)
            uploads.extend(chunk(refs, resource, limit, names.of(resource), provisional))
    return uploads


def state_secret(directory: Path, manifest: Manifest, identities: list[Identity] | None) -> bytes:
    """The secret an encrypted backup's restore state hashes row keys under: random, kept
    encrypted to the backup's recipients (made on the first restore)."""
    from chatferry.client.crypto import decrypt_bytes, encrypt_bytes, recipients_of

    path = directory / STATE_SECRET_NAME
    if path.is_file():
        return decrypt_bytes(path, identities or [])[0]
    secret = secrets.token_bytes(32)
    encrypt_bytes(path, secret, recipients_of(manifest.recipients))
    return secret


def require_key(directory: Path, identities: list[Identity] | None) -> None:
    """KeyProblem unless the backup is plain or ``identities`` open it (tried on its
    smallest part; a damaged part is left to verify's report)."""
    from chatferry.client.crypto import ENV_IDENTITY, KeyProblem, decrypt_into
    from chatferry.client.download import file_digest

    manifest = load_manifest(directory)
    if not manifest.encrypted:
        return
    if identities is None:
        raise KeyProblem(
            f"the backup in {directory} is encrypted: give one of its identities with "
            f"--identity FILE (or {ENV_IDENTITY}); nothing was restored"
        )
    parts = sorted((p for p in manifest.parts if (directory / p.file).is_file()),
                   key=lambda p: p.bytes)  # fmt: skip
    if not parts:
        return
    try:
        decrypt_into(directory / parts[0].file, identities, lambda _: None)
    except KeyProblem:
        if file_digest(directory / parts[0].file) == (parts[0].bytes, parts[0].sha256):
            raise
    except ClientError:
        return


def check_backup(
    directory: Path,
    reporter: Reporter,
    identities: list[Identity] | None = None,
    attachments: bool = False,
) -> Manifest:
    """The manifest, once verify found nothing wrong with the backup (decrypted with
    ``identities`` if it is encrypted: KeyProblem without them or with wrong ones). Its
    attachments are checked only when asked: a restore that does not re-host them does
    not read them."""
    require_key(directory, identities)
    report = verify_backup(directory, reporter, identities, None if attachments else 0.0)
    if not report.ok:
        raise BackupProblems(
            f"the backup in {directory} has {report.problem_count} problem(s): nothing was "
            "restored; run 'chatferry verify' for the list",
            report.problems,
        )
    return load_manifest(directory)


def _target_key(api: Api) -> str:
    return f"{api.connection.server} {api.connection.app_id}"


class Restore:
    """One run of ``chatferry restore`` from ``directory`` into the app of ``api``."""

    def __init__(
        self,
        api: Api,
        directory: Path,
        reporter: Reporter | None = None,
        upload_limit: int = SPEC_UPLOAD_LIMIT,
        identities: list[Identity] | None = None,
        check: bool = True,
        rewrite: Rewrite | None = None,
    ) -> None:
        self.api = api
        self.check = check
        self.directory = directory
        self.reporter = reporter or NullReporter()
        self.identities = identities
        self.parts = _Parts(directory, identities, rewrite)
        self.summary = RestoreSummary(api.connection.server, api.connection.app_id, False)
        self._default_limit = upload_limit
        self._state: dict[str, Any] = {}
        self._target: dict[str, Any] = {}
        self.uploads: list[Upload] = []
        self._tasks: dict[str, Task] = {}
        self._builder = _Builder(self.parts)

    # -- state ------------------------------------------------------------------------

    def _load_state(self, manifest: Manifest) -> None:
        path = self.directory / STATE_NAME
        state: Any = read_json(path) if path.is_file() else {}
        if not isinstance(state, dict) or state.get("backup_id") != manifest.backup_id:
            state = {"format": 1, "backup_id": manifest.backup_id, "restores": {}}
        self._state = state
        key = _target_key(self.api)
        target = state["restores"].get(key)
        if not isinstance(target, dict):
            target = self._new_target(manifest)
            state["restores"][key] = target
        self._target = target
        self.uploads = [Upload.from_json(u) for u in target["uploads"]]
        self._retire_replaced(manifest)
        self.uploads.extend(self._plan_new_parts(manifest))
        self._save()

    def _plan_new_parts(self, manifest: Manifest) -> list[Upload]:
        """Uploads for parts a later backup run added after this restore was planned, and
        for rows added at the end of a part since (a conversion run again on a grown export
        appends to its parts): only the rows after those already planned, without the rows
        of replaced provisional parts imported already."""
        planned: dict[str, int] = {}
        for upload in self.uploads:
            for file, first, count in upload.segments:
                planned[file] = max(planned.get(file, 0), first + count)
        new = [p for p in manifest.parts if p.rows > planned.get(p.file, 0)]
        if not new:
            return []
        self._target["finished_at"] = ""
        self._remember_files(new)
        names = _Names(manifest.backup_id, self._target.setdefault("counters", {}))
        limit = int(self._target.get("upload_limit") or self._default_limit)
        skip = {t: frozenset(k) for t, k in self._target.get("imported_keys", {}).items()}
        return plan_uploads(self.parts, replace(manifest, parts=new), limit, names, skip, planned)

    def _remember_files(self, parts: list[Part]) -> None:
        self._target.setdefault("files", {}).update({p.file: p.sha256 for p in parts})

    def _retire_replaced(self, manifest: Manifest) -> None:
        """Drops the uploads of provisional parts a later backup replaced, keeping the keys
        of the rows they imported (a regular part that grew keeps its uploads)."""
        current = {p.file: p.sha256 for p in manifest.parts}
        files: dict[str, str] = self._target.setdefault("files", {})
        keyed = {
            segment[0] for upload in self.uploads if upload.keys for segment in upload.segments
        }
        gone = {f for f, sha256 in files.items() if current.get(f) != sha256 and f in keyed}
        if not gone:
            return
        kept: list[Upload] = []
        imported: dict[str, list[str]] = self._target.setdefault("imported_keys", {})
        for upload in self.uploads:
            if not any(segment[0] in gone for segment in upload.segments):
                kept.append(upload)
                continue
            if upload.status == "sent":
                self._settle(upload)
            if upload.status == "imported":
                imported.setdefault(upload.type, []).extend(upload.keys)
        self.uploads = kept
        for file in gone:
            files.pop(file)

    def _new_target(self, manifest: Manifest) -> dict[str, Any]:
        names = _Names(manifest.backup_id, {})
        uploads = plan_uploads(self.parts, manifest, self._default_limit, names)
        return {
            "files": {p.file: p.sha256 for p in manifest.parts if p.rows},
            "server": self.api.connection.server,
            "app_id": self.api.connection.app_id,
            "upload_limit": self._default_limit,
            "counters": names.counters,
            "started_at": now_rfc3339(),
            "finished_at": "",
            "uploads": [u.as_json() for u in uploads],
        }

    def _save(self) -> None:
        self._target["uploads"] = [u.as_json() for u in self.uploads]
        write_json_atomic(self.directory / STATE_NAME, self._state)

    # -- running ----------------------------------------------------------------------

    def run(self) -> RestoreSummary:
        started = time.monotonic()
        with directory_lock(self.directory, "restore"):
            if self.check:
                manifest = check_backup(self.directory, self.reporter, self.identities)
            else:
                manifest = load_manifest(self.directory)
            if manifest.encrypted:
                self.parts.secret = state_secret(self.directory, manifest, self.identities)
            self._load_state(manifest)
            self._open_tasks()
            try:
                self._restore_all()
            finally:
                self._builder.close()
            self._target["finished_at"] = now_rfc3339()
            self._save()
        self._close_tasks()
        self.summary.seconds = round(time.monotonic() - started, 3)
        return self.summary

    def _restore_all(self) -> None:
        index = 0
        while index < len(self.uploads):
            following = self.uploads[index + 1] if index + 1 < len(self.uploads) else None
            try:
                self._restore(self.uploads[index], following)
            except ApiError as exc:
                if exc.status != 413:
                    raise
                self._replan(index, exc)
                continue
            index += 1

    def _restore(self, upload: Upload, following: Upload | None) -> None:
        self.summary.uploads = len(self.uploads)
        if upload.status == "sent" and self._settle(upload):
            self.summary.imported_now += 1
        if upload.status == "imported":
            self._progress(upload)
            return
        content = self._builder.content(upload)
        self._builder.prepare(following)
        upload.status, upload.import_id = "sent", ""
        self._save()
        record = imports.upload(self.api, upload.type, upload.name, content)
        upload.import_id = str(record.get("unique_id") or "")
        self._save()
        self._finish(upload, self._wait(upload, upload.import_id))
        self.summary.imported_now += 1

    def _wait(self, upload: Upload, unique_id: str, doing: str = "importing") -> Record:
        task = self._tasks[upload.type]
        task.update(self._done_rows(upload.type), label=f"{upload.type}: {doing} {upload.name}")
        return imports.wait_for_import(self.api, unique_id)

    def _settle(self, upload: Upload) -> bool:
        """Looks up an upload of unknown outcome; True if it turns out imported."""
        record = self._sent_record(upload)
        if record is None or record.get("status") == "failed":
            upload.status = "planned"
            return False
        if record.get("status") != "finished":
            record = imports.wait_for_import(self.api, str(record.get("unique_id")))
        self._finish(upload, record)
        return True

    def _sent_record(self, upload: Upload) -> Record | None:
        if upload.import_id:
            try:
                return imports.get_import(self.api, upload.import_id)
            except ApiError as exc:
                if exc.status != 404:
                    raise
        return imports.find_import(
            self.api,
            lambda r: r.get("original_filename") == upload.name and r.get("dry_run") is not True,
        )

    def _finish(self, upload: Upload, record: Record) -> None:
        imports.check_import(record)
        upload.status = "imported"
        upload.import_id = str(record.get("unique_id") or upload.import_id)
        self._save()
        self._progress(upload)

    def _replan(self, index: int, exc: ApiError) -> None:
        """The server refused an upload as too large: cut it and the rest smaller."""
        self._builder.settle()  # the parts are read here now
        current = self.uploads[index]
        limit = exc.details.get("limit_bytes")
        if not isinstance(limit, int) or limit <= 0 or limit >= current.bytes:
            limit = current.bytes // 2
        self.reporter.note(f"the server's upload limit is {limit} bytes: cutting smaller uploads")
        counters = self._target.setdefault("counters", {})
        names = _Names(str(self._state["backup_id"]), counters)
        rest: list[Upload] = []
        for resource in RESOURCES:
            for keyed in (False, True):
                mine = [
                    u for u in self.uploads[index:] if u.type == resource and bool(u.keys) == keyed
                ]
                rest.extend(chunk(self._refs_of(mine), resource, limit, names.of(resource), keyed))
        self.uploads[index:] = rest
        self._target["upload_limit"] = limit
        self._save()

    def _refs_of(self, uploads: list[Upload]) -> Iterator[Ref]:
        for upload in uploads:
            for file, first, count in upload.segments:
                for offset, row in enumerate(self.parts.rows(file)[first : first + count]):
                    key = self.parts.key(upload.type, row)
                    yield file, first + offset, len(orjson.dumps(row)), key

    # -- progress ---------------------------------------------------------------------

    def _done_rows(self, resource: str) -> int:
        return sum(u.rows for u in self.uploads if u.type == resource and u.status == "imported")

    def _open_tasks(self) -> None:
        for resource in RESOURCES:
            total = sum(u.rows for u in self.uploads if u.type == resource)
            self._tasks[resource] = self.reporter.task(resource, total=total, transient=False)
            self._tasks[resource].update(self._done_rows(resource))

    def _progress(self, upload: Upload) -> None:
        self.summary.rows[upload.type] = self._done_rows(upload.type)
        if upload.type in self._tasks:
            self._tasks[upload.type].update(self._done_rows(upload.type), label=upload.type)

    def _close_tasks(self) -> None:
        for task in self._tasks.values():
            task.done()
        self.summary.already_imported = len(self.uploads) - self.summary.imported_now
        self.summary.uploads = len(self.uploads)


def dry_run_restore(
    api: Api,
    directory: Path,
    reporter: Reporter | None = None,
    limit: int = SPEC_UPLOAD_LIMIT,
    identities: list[Identity] | None = None,
    on_server: bool = True,
) -> tuple[RestoreSummary, list[Upload]]:
    """Checks the backup offline, plans the uploads and, on a chatferry server, dry-runs
    the users' uploads against the app. Imports nothing; writes nothing.

    Rooms and comments refer to users and rooms that only the real restore creates, so
    the server can check them only then: each import is validated whole before any of its
    rows is written.
    ``on_server=False`` (the target holds some of the users already) plans only.
    """
    reporter = reporter or NullReporter()
    manifest = check_backup(directory, reporter, identities)
    parts = _Parts(directory, identities)
    uploads = plan_uploads(parts, manifest, limit, _Names(manifest.backup_id, {}))
    summary = RestoreSummary(api.connection.server, api.connection.app_id, True, len(uploads))
    for upload in uploads:
        summary.rows[upload.type] += upload.rows
    if on_server and api.has_extensions():
        for upload in (u for u in uploads if u.type == "users"):
            content = content_of(parts, upload)
            record = imports.upload(api, "users", upload.name, content, dry_run=True)
            imports.check_import(imports.wait_for_import(api, str(record.get("unique_id"))))
            summary.checked_on_server.append(upload.name)
    return summary, uploads
