"""``chatferry backup``: a whole app as export files plus ``manifest.json``.

Each type is exported in windows of whole days, at most the server's range limit long. A
window the server refuses for its row limit is split (down to one day: one day still over
the limit stops the backup with the day, the count, the limit and the setting to raise).
A few exports run at once; each file is downloaded (resumably), verified, and recorded in
the manifest, which is rewritten atomically after every part. A run that is killed, or a
later run on the same directory, exports only the days no part covers yet.

An encrypted backup (recipients given to its first run, kept in the manifest) downloads
each part straight into an age file (``<part>.json.age``); no plaintext reaches the disk.
Every directory it creates is 0700 and every file 0600.

With ``until_now`` the day in progress is exported too, as a provisional part (one per
type) that the next run replaces. Then the attachments the rows point to are fetched
(see ``chatferry.client.attachments``); the result lists those that could not be.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from chatferry.client import exports, imports
from chatferry.client.attachments.index import (
    IndexWriter,
    SealedIndexWriter,
    fetch_attachments,
    fetch_sealed,
    retry_sealed,
)
from chatferry.client.attachments.run import AttachmentOptions
from chatferry.client.attachments.sealed import stale_temporaries
from chatferry.client.attachments.urls import row_urls
from chatferry.client.daycounts import day_counts
from chatferry.client.download import download_file
from chatferry.client.errors import ApiError, ClientError, JobFailed
from chatferry.client.files import directory_lock, open_to_others, private_dir
from chatferry.client.http import Api
from chatferry.client.manifest import (
    MANIFEST_NAME,
    RESOURCES,
    GroupSaver,
    Manifest,
    Part,
    Pending,
    Window,
    load_manifest,
)
from chatferry.client.plan import covered_days, cut, day_range, missing_windows, packed, split
from chatferry.client.progress import NullReporter, Reporter, Task
from chatferry.client.records import Record, seconds_between, utc_offset
from chatferry.client.timezones import server_timezone

if TYPE_CHECKING:
    from chatferry.client.crypto import Identity, Recipient

DEFAULT_WINDOW_DAYS = 30
DEFAULT_CONCURRENCY = 3
EMPTY_STOP_DAYS = 365
# Until the server's own offset is known, a day counts as over once it is over everywhere.
LATEST_OFFSET = timezone(timedelta(hours=-12))
EARLIEST_OFFSET = timezone(timedelta(hours=14))


@dataclass(frozen=True)
class BackupOptions:
    out: Path
    types: tuple[str, ...] = RESOURCES
    since: date | None = None
    until: date | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    window_days: int = DEFAULT_WINDOW_DAYS
    keep_exports: bool = False
    recipients: tuple[str, ...] = ()  # age or SSH public keys: an encrypted backup
    plain: bool = False  # asked for a plain backup (refused on an encrypted one)
    until_now: bool = False
    attachments: AttachmentOptions = field(default_factory=AttachmentOptions)
    # An encrypted backup's identities: its earlier attachment index is read, and what
    # earlier runs could not fetch is retried
    identities: tuple[Identity, ...] = ()


@dataclass
class BackupResult:
    manifest: Manifest
    new_parts: list[Part] = field(default_factory=list)
    attachment_failures: list[tuple[str, str]] = field(default_factory=list)
    # URL -> entry: the whole index of a plain backup, this run's of an encrypted one
    attachment_index: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Job:
    window: Window
    export_id: str = ""
    provisional: bool = False


class _Stopped(Exception):
    """Another export of the run failed: this one stops waiting."""


def last_complete_day(offset: timezone | None, now: datetime | None = None) -> date:
    """Yesterday in the app's timezone (or where the day ends last, if it is unknown)."""
    now = now or datetime.now(UTC)
    return now.astimezone(offset or LATEST_OFFSET).date() - timedelta(days=1)


def not_over(day: date, last: date) -> ClientError:
    return ClientError(
        f"--until {day.isoformat()} is not over yet in the app's timezone (the last whole "
        f"day is {last.isoformat()}): a backup holds whole days only, so that a later run "
        "can extend it without a gap"
    )


def one_day_over_limit(window: Window, exc: ApiError) -> ClientError:
    """The message that stops a backup: one day alone is over the server's row limit."""
    day = window.start.isoformat()
    rows, limit, setting = (exc.details.get(k) for k in ("rows", "limit", "setting"))
    if isinstance(rows, int) and isinstance(limit, int):
        return ClientError(
            f"{window.resource} of {day} alone are {rows} rows, over the server's limit of "
            f"{limit} rows for one export, and a backup cannot split a day: ask the "
            f"operator to raise {setting or 'the export row limit'} (or the app's own limit "
            f"with 'chatferry apps update APP_ID --export-max-{window.resource} N'), then "
            "run the backup again"
        )
    return ClientError(
        f"the server refused the export of {window.resource} of {day} alone ({exc.message}), "
        "and a backup cannot split a day: ask the operator to raise the export row limit"
    )


class Backup:
    """One run of ``chatferry backup`` into ``options.out``."""

    def __init__(self, api: Api, options: BackupOptions, reporter: Reporter | None = None):
        self.api = api
        self.options = options
        self.reporter = reporter or NullReporter()
        self.manifest: Manifest
        self._window_days = options.window_days
        self._offset: timezone | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._new_parts: list[Part] = []
        self._overall = self.reporter.task("backup", total=0, transient=False)
        self._planned = 0
        self._finished = 0
        self._recipients: list[Recipient] = []
        self._urls: dict[str, None] = {}  # of the parts this run downloaded, in order
        self._run_index: dict[str, dict[str, Any]] = {}
        self._saver: GroupSaver

    def run(self) -> BackupResult:
        out = self.options.out
        private_dir(out)
        with directory_lock(out, "backup"):
            self.manifest = self._open_manifest()
            self._saver = GroupSaver(self.manifest, out)
            self.manifest.timezone = server_timezone(self.api) or self.manifest.timezone
            self._prepare_run()
            warning = open_to_others(out)
            if warning:
                self.reporter.note(warning)
            self._offset = _parse_offset(self.manifest.utc_offset)
            until = self._until()
            self._drop_provisional(until)
            since = _earliest(self.options.since, self.manifest.since)
            if since is not None and since > until:
                raise ClientError(
                    f"--since {since.isoformat()} is after the last day to back up, "
                    f"{until.isoformat()}: pick an earlier --since"
                )
            self._run_jobs([_Job(p.window, p.export_id) for p in self.manifest.pending])
            if since is None:
                since = self._discover(until)
            else:
                self._run_windows(self._missing(since, until))
            until = self._extend_until(since, until)
            self._complete(since, until)
            if self.options.until_now:
                self._run_provisional(until + timedelta(days=1))
            failed = self._attachments()
        self._overall.done()
        index = self._run_index if self.manifest.encrypted else self.manifest.attachments
        return BackupResult(self.manifest, self._new_parts, failed, index)

    def _attachments(self) -> list[tuple[str, str]]:
        if self.manifest.encrypted:
            return self._sealed_attachments()
        writer = IndexWriter(self.manifest, self._lock, self._save, self.options.out)
        return fetch_attachments(
            self.options.out, self.manifest, self.options.attachments, writer, self.reporter
        )

    def _sealed_attachments(self) -> list[tuple[str, str]]:
        """Those of the parts this run downloaded, encrypted (earlier parts cannot be read
        without a key)."""
        if self.options.attachments.mode == "none":
            return []
        out, identities = self.options.out, self.options.identities
        writer = SealedIndexWriter(self.manifest, self._lock, self._save, out, self._recipients)
        self._run_index = writer.entries
        if identities:
            return retry_sealed(out, self.manifest, identities, self.options.attachments,
                                writer, self.reporter)  # fmt: skip
        urls = list(self._urls)
        return fetch_sealed(out, urls, self.options.attachments, writer, self.reporter)

    # -- the day in progress ------------------------------------------------------------

    def _drop_provisional(self, until: date) -> None:
        """Forgets the provisional parts this run replaces (all with --until now, else
        those of days now over) and exports of days not over that a killed run left."""
        with self._lock:
            replaced = self.options.until_now
            stale = [p for p in self.manifest.parts
                     if p.provisional and (replaced or p.end_date <= until)]  # fmt: skip
            self.manifest.parts = [p for p in self.manifest.parts if p not in stale]
            unfinished = [p for p in self.manifest.pending if p.window.end > until]
            self.manifest.pending = [p for p in self.manifest.pending if p not in unfinished]
            self._save()
        for part in stale:
            (self.options.out / part.file).unlink(missing_ok=True)
        for pending in unfinished:
            self._delete_quietly(pending.export_id)

    def _run_provisional(self, today: date) -> None:
        """Exports today up to now, one provisional part per type."""
        jobs = [_Job(Window(today, today, r), provisional=True) for r in self.options.types]
        self._run_jobs(jobs)

    # -- the manifest -------------------------------------------------------------------

    def _open_manifest(self) -> Manifest:
        out, connection = self.options.out, self.api.connection
        if not (out / MANIFEST_NAME).exists():
            if any(p.name != ".chatferry.lock" for p in out.iterdir()):
                raise ClientError(
                    f"{out} is not empty and holds no {MANIFEST_NAME}: back up into a new "
                    "or empty directory, or into an earlier backup of the same app"
                )
            manifest = Manifest.new(connection.server, connection.app_id)
            manifest.recipients = list(self.options.recipients)
            manifest.save(out)
            return manifest
        manifest = load_manifest(out)
        if manifest.app_id != connection.app_id:
            raise ClientError(
                f"{out} holds a backup of app {manifest.app_id!r} (from {manifest.server}), "
                f"not of {connection.app_id!r}: back up into another directory"
            )
        check_same_encryption(manifest, self.options)
        return manifest

    def _prepare_run(self) -> None:
        """The manifest's recipients, parsed; the temporary files a killed run left (of
        the manifest, of encrypted parts) are removed."""
        out = self.options.out
        stale = [*out.glob(f".{MANIFEST_NAME}.*.tmp")]
        for resource in RESOURCES:
            stale.extend((out / resource).glob(".*.age.*.tmp"))
        stale.extend(stale_temporaries(out))
        for path in stale:
            path.unlink(missing_ok=True)
        if self.manifest.encrypted:
            from chatferry.client.crypto import recipients_of

            self._recipients = recipients_of(self.manifest.recipients)

    def _save(self) -> None:
        """Saves the manifest (called under ``self._lock``)."""
        self._saver.commit(self._saver.stage())

    def _complete(self, since: date, until: date) -> None:
        with self._lock:
            self.manifest.since = _earliest(since, self.manifest.since)
            self.manifest.until = max(until, self.manifest.until or until)
            self._save()

    # -- what to export -----------------------------------------------------------------

    def _until(self) -> date:
        for records in (imports.list_imports(self.api), exports.list_exports(self.api)):
            if records:
                self._learn_offset(records[0])
        last = last_complete_day(self._offset)
        until = self.options.until or last
        if self._offset is None and until > last:
            # Checked again with the app's offset once the first export shows it.
            last = last_complete_day(EARLIEST_OFFSET)
        if until > last:
            raise not_over(until, last)
        return until

    def _extend_until(self, since: date, until: date) -> date:
        """Adds the days up to yesterday once a record showed the app's own UTC offset
        (an app without exports yet starts with the most cautious one)."""
        if self.options.until is not None or self._offset is None:
            return until
        last = last_complete_day(self._offset)
        if last > until:
            self._run_windows(self._missing(since, last))
        return max(last, until)

    def _missing(self, since: date, until: date) -> list[Window]:
        """The windows to export for the days of ``since..until`` no part covers yet."""
        return missing_windows(self.manifest.parts, self.options.types, since, until, self._cut)

    def _cut(self, resource: str, start: date, end: date) -> list[Window]:
        """Windows that fit the row limit, from the server's rows per day where it tells
        them (chatferry); else of the longest length, split when the server refuses one."""
        counts = day_counts(self.api, resource, start, end)
        if counts is None:
            return cut(resource, start, end, self._window_days)
        size = min(self._window_days, counts.max_days)
        return packed(resource, counts.days, counts.limit, size)

    def _discover(self, until: date) -> date:
        """Walks back from ``until`` window by window until a year without any row."""
        empty_days, end = 0, until
        oldest = until
        while empty_days < EMPTY_STOP_DAYS:
            spans = []
            for _ in range(self.options.concurrency):
                start = end - timedelta(days=self._window_days - 1)
                spans.append((start, end))
                end = start - timedelta(days=1)
            self._run_windows(self._missing(spans[-1][0], spans[0][1]))
            for start, stop in spans:
                rows = self._rows_between(start, stop)
                empty_days = empty_days + (stop - start).days + 1 if rows == 0 else 0
                oldest = start
        since = self._drop_empty_start(oldest)
        self.reporter.note(
            f"the backup starts on {since.isoformat()}, the oldest data: the server has no "
            f"row in the {EMPTY_STOP_DAYS} days before it (use --since to go further back)"
        )
        return since

    def _drop_empty_start(self, oldest: date) -> date:
        """Forgets the empty parts the walk back exported before the oldest data."""
        with self._lock:
            filled = [p.start_date for p in self.manifest.parts if p.rows > 0]
            if not filled:
                return oldest
            empty = [p for p in self.manifest.parts if p.end_date < min(filled)]
            self.manifest.parts = [p for p in self.manifest.parts if p not in empty]
            self._new_parts = [p for p in self._new_parts if p not in empty]
            self._save()
        for part in empty:
            (self.options.out / part.file).unlink(missing_ok=True)
        return min(p.start_date for p in self.manifest.parts)

    def _check_over(self, window: Window, record: Record) -> None:
        """Refuses a window whose last day is not over in the app's timezone (which the
        record shows): its export is deleted and forgotten, nothing of it is kept."""
        with self._lock:
            self._learn_offset(record)
            last = last_complete_day(self._offset or EARLIEST_OFFSET)
            if window.end <= last:
                return
            self.manifest.pending = [p for p in self.manifest.pending if p.window != window]
            self._save()
        self._delete_quietly(str(record.get("unique_id")))
        raise not_over(window.end, last)

    def _learn_offset(self, record: Record) -> None:
        offset = utc_offset(record)
        if offset is not None:  # the newest record wins (an app can change its timezone)
            self._offset = offset
            self.manifest.utc_offset = datetime.now(offset).isoformat()[-6:]

    def _rows_between(self, start: date, end: date) -> int:
        """The rows of the parts that reach into ``start..end`` (a window cut to the row
        limit may cross the walk's spans: it counts for both, so no span with rows is
        taken for empty)."""
        return sum(
            p.rows
            for p in self.manifest.parts
            if p.type in self.options.types and p.start_date <= end and start <= p.end_date
        )

    # -- running exports ----------------------------------------------------------------

    def _run_windows(self, windows: list[Window]) -> None:
        self._run_jobs([_Job(w) for w in windows])

    def _run_jobs(self, jobs: list[_Job]) -> None:
        """Runs the jobs a few at a time; a refused window comes back as smaller jobs."""
        if not jobs:
            return
        self._plan_more(len(jobs))
        with ThreadPoolExecutor(self.options.concurrency) as pool:
            running: dict[Future[list[_Job]], _Job] = {pool.submit(self._do, j): j for j in jobs}
            try:
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        running.pop(future)
                        follow = future.result()
                        self._plan_more(len(follow) - 1 if follow else 0)
                        running.update({pool.submit(self._do, j): j for j in follow})
            except BaseException:
                self._stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise

    def _plan_more(self, count: int) -> None:
        with self._lock:
            self._planned += count
            self._show_overall()

    def _show_overall(self) -> None:
        label = f"backup: {self._finished} of {self._planned} exports"
        self._overall.update(self._finished, total=self._planned, label=label)

    def _do(self, job: _Job) -> list[_Job]:
        """One window: export, wait, download, verify, record. Returns smaller windows
        instead when the server refuses this one."""
        if self._stop.is_set():
            return []
        window = job.window
        record = self._existing(job.export_id) if job.export_id else None
        if record is None:
            created = self._create(window)
            if isinstance(created, list):
                if job.provisional:
                    raise ClientError(
                        f"the server refused the export of {window.label()} so far: "
                        "the day in progress cannot be split; back up without --until now"
                    )
                return [_Job(w) for w in created]
            record = created
            # A .part left by an earlier export of this window holds other bytes.
            _part_file(self.options.out / _relative(window, False)).unlink(missing_ok=True)
            self._set_pending(window, str(record.get("unique_id")))
        if not job.provisional:
            self._check_over(window, record)
        record = self._wait(window, record)
        part = self._download(window, record)
        part.provisional = job.provisional
        self._record(part)
        if not self.options.keep_exports:
            self._delete_quietly(part.export_id)
        return []

    def _existing(self, export_id: str) -> Record | None:
        """A pending export of an earlier run, unless it is gone or ended badly."""
        try:
            record = exports.get_export(self.api, export_id)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return record if record.get("status") in ("started", "scheduled", "finished") else None

    def _create(self, window: Window) -> Record | list[Window]:
        try:
            return exports.create_export(self.api, window.resource, window.start, window.end)
        except ApiError as exc:
            if exc.status != 400:
                raise
            return self._smaller(window, exc)

    def _smaller(self, window: Window, exc: ApiError) -> list[Window]:
        """The windows to try instead of one the server refused with a 400."""
        max_days = exc.details.get("max_days")
        if exc.code == "export_range_limit" and isinstance(max_days, int) and max_days >= 0:
            with self._lock:
                self._window_days = min(self._window_days, max_days + 1)
            if window.days > self._window_days:
                return cut(window.resource, window.start, window.end, self._window_days)
            raise exc
        if exc.code == "export_row_limit" or not self.api.has_extensions():
            if window.days == 1:
                raise one_day_over_limit(window, exc)
            rows, limit = exc.details.get("rows"), exc.details.get("limit")
            pieces = 2
            if isinstance(rows, int) and isinstance(limit, int) and limit > 0:
                pieces = math.ceil(rows / limit)
            return split(window, pieces)
        raise exc

    def _wait(self, window: Window, record: Record) -> Record:
        task = self.reporter.task(f"export {window.label()}", total=100)

        def on_update(current: Record) -> None:
            if self._stop.is_set():
                raise _Stopped
            percentage = current.get("percentage")
            task.update(percentage if isinstance(percentage, int | float) else 0)

        try:
            return exports.wait_for_export(self.api, str(record.get("unique_id")), on_update)
        finally:
            task.done()

    def _download(self, window: Window, record: Record) -> Part:
        export_id = str(record.get("unique_id"))
        relative = _relative(window, self.manifest.encrypted)
        task = self.reporter.task(f"download {window.label()}", total=None)
        try:
            got = download_file(
                self.api,
                record,
                self.options.out / relative,
                progress=lambda done, total: self._advance(task, done, total),
                refresh=self._refresher(export_id),
                recipients=self._recipients,
                on_plaintext=lambda data: self._collect_urls(window.resource, data),
            )
        finally:
            task.done()
        return Part(
            type=window.resource,
            start_date=window.start,
            end_date=window.end,
            rows=got.rows,
            bytes=got.size,
            sha256=got.sha256,
            file=relative,
            export_id=export_id,
            export_seconds=seconds_between(record.get("created_at"), record.get("finished_at")),
            download_seconds=round(got.seconds, 3),
            sha256_from_server=got.sha256_checked,
            original_filename=str(record.get("original_filename") or ""),
        )

    def _collect_urls(self, resource: str, data: bytes) -> None:
        """The attachment URLs of a part's plaintext (an encrypted backup cannot read its
        parts back later without a key)."""
        mode = self.options.attachments.mode
        if mode == "none":
            return
        found = [u for row in orjson.loads(data) if isinstance(row, dict)
                 for u in row_urls(resource, row, mode)]  # fmt: skip
        with self._lock:
            self._urls.update(dict.fromkeys(found))

    def _advance(self, task: Task, done: int, total: int | None) -> None:
        if self._stop.is_set():
            raise _Stopped
        task.update(done, total)

    def _refresher(self, export_id: str) -> Callable[[], str]:
        def refresh() -> str:
            return str(exports.get_export(self.api, export_id).get("download_url") or "")

        return refresh

    def _set_pending(self, window: Window, export_id: str) -> None:
        with self._lock:
            self.manifest.pending = [p for p in self.manifest.pending if p.window != window]
            self.manifest.pending.append(Pending(window, export_id))
            ticket = self._saver.stage()
        self._saver.commit(ticket)  # on disk before the run relies on it

    def _record(self, part: Part) -> None:
        with self._lock:
            already = covered_days(self.manifest.parts, part.type)
            if already.isdisjoint(day_range(part.start_date, part.end_date)):
                self.manifest.parts.append(part)
                self._new_parts.append(part)
            self.manifest.pending = [p for p in self.manifest.pending if p.window != part.window]
            ticket = self._saver.stage()
            self._finished += 1
            self._show_overall()
        self._saver.commit(ticket)  # written with the saves that queued up meanwhile

    def _delete_quietly(self, export_id: str) -> None:
        """Deletes the server's copy (the verified file is in the backup)."""
        try:
            exports.delete_export(self.api, export_id)
        except ApiError as exc:
            if exc.status != 404:
                self.reporter.note(f"could not delete export {export_id}: {exc.message}")


def _parse_offset(text: str) -> timezone | None:
    """``+07:00`` as a timezone (``None`` for anything else)."""
    try:
        parsed = datetime.fromisoformat(f"2000-01-01T00:00:00{text}")
    except ValueError:
        return None
    offset = parsed.utcoffset()
    return timezone(offset) if text and offset is not None else None


def _relative(window: Window, encrypted: bool) -> str:
    """Where a window's file lives in the backup directory."""
    name = f"{window.resource}/{window.start.isoformat()}_{window.end.isoformat()}.json"
    return name + ".age" if encrypted else name


def check_same_encryption(manifest: Manifest, options: BackupOptions) -> None:
    """A later run extends a backup as it began: plain, or encrypted to the same keys."""
    out = options.out
    if options.recipients and not manifest.encrypted:
        raise ClientError(
            f"{out} holds a plain backup: it cannot be extended encrypted (its parts would "
            "stay readable); start the encrypted backup in a new directory, then delete this one"
        )
    if options.plain and manifest.encrypted:
        raise ClientError(
            f"{out} holds an encrypted backup: it cannot be extended plain; run without "
            "--plain (later runs encrypt to the backup's recipients), or back up plain into "
            "a new directory"
        )
    if options.recipients and set(options.recipients) != set(manifest.recipients):
        raise ClientError(
            f"{out} is encrypted to other recipients ({', '.join(manifest.recipients)}): a "
            "later run uses the backup's own, so leave out --encrypt-to and --recipients-file; "
            "to change the keys, start a new backup directory with the new recipients"
        )


def _part_file(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def _earliest(first: date | None, second: date | None) -> date | None:
    days = [d for d in (first, second) if d is not None]
    return min(days) if days else None


def run_backup(api: Api, options: BackupOptions, reporter: Reporter | None = None) -> BackupResult:
    """Runs a backup; stops on the first export that fails (JobFailed) or is refused."""
    try:
        return Backup(api, options, reporter).run()
    except _Stopped:
        raise JobFailed("the backup stopped") from None
