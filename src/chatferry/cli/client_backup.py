"""``chatferry backup``, ``restore``, ``verify`` and ``keygen``: a whole app, in and out,
plain or encrypted with age."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chatferry.cli.client_common import (
    AppIdOption,
    JsonOption,
    RichReporter,
    SecretOption,
    ServerOption,
    connect,
    human_size,
    note,
    print_json,
    show_rows,
)
from chatferry.cli.client_imports import show_problems
from chatferry.client.errors import BackupProblems, ClientError, JobFailed

if TYPE_CHECKING:
    from chatferry.client.attachments.run import AttachmentOptions
    from chatferry.client.backup import BackupResult
    from chatferry.client.crypto import Identity
    from chatferry.client.http import Api
    from chatferry.client.manifest import Manifest
    from chatferry.client.progress import Reporter
    from chatferry.client.restore import RestoreSummary, Rewrite, Upload
    from chatferry.client.scope import Scope

DirArgument = Annotated[
    Path, typer.Argument(help="The backup directory.", file_okay=False, show_default=False)
]
SinceOption = Annotated[
    datetime | None,
    typer.Option(
        formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="First day (default: the oldest data)."
    ),
]
UntilOption = Annotated[
    datetime | None,
    typer.Option(formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="Last day (default: yesterday)."),
]
RESOURCES = ("users", "rooms", "comments")
ENCRYPTION = "Encryption"
IdentityOption = Annotated[
    Path | None,
    typer.Option(
        "--identity",
        envvar="CHATFERRY_IDENTITY_FILE",
        help="An age identity file (chatferry keygen, age-keygen) or SSH private key that "
        "opens an encrypted backup (or CHATFERRY_IDENTITY_FILE).",
        show_default=False,
        rich_help_panel=ENCRYPTION,
    ),
]


EncryptToOption = Annotated[
    list[str] | None,
    typer.Option(
        "--encrypt-to",
        metavar="RECIPIENT",
        help="Encrypt the new backup to this age (age1...) or SSH public key; repeatable.",
        show_default=False,
        rich_help_panel=ENCRYPTION,
    ),
]
RecipientsFileOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--recipients-file",
        metavar="FILE",
        help="A file of recipients, one a line (age's format); repeatable.",
        show_default=False,
        rich_help_panel=ENCRYPTION,
    ),
]
PlainOption = Annotated[
    bool,
    typer.Option(
        "--plain",
        help="Refuse to go on if the backup is encrypted (later runs of an encrypted "
        "backup encrypt to its recipients without being asked).",
        rich_help_panel=ENCRYPTION,
    ),
]


BackupUntilOption = Annotated[
    str | None,
    typer.Option(
        "--until",
        metavar="YYYY-MM-DD|now",
        help="Last day (default: yesterday); 'now' adds today so far as a provisional part.",
    ),
]
ATTACHMENTS = "Attachments"
NoAttachmentsOption = Annotated[
    bool,
    typer.Option("--no-attachments", help="Fetch no attachment.", rich_help_panel=ATTACHMENTS),
]
AttachmentsOption = Annotated[
    str,
    typer.Option(
        "--attachments",
        metavar="files|all",
        help="files: file_attachment urls and avatars; all: every http(s) URL in payloads too.",
        rich_help_panel=ATTACHMENTS,
    ),
]
AttachmentConcurrencyOption = Annotated[
    int,
    typer.Option(min=1, max=64, help="Attachments fetched at once.", rich_help_panel=ATTACHMENTS),
]
MaxAttachmentBytesOption = Annotated[
    int, typer.Option(min=1, help="Largest attachment kept.", rich_help_panel=ATTACHMENTS)
]
AttachmentTimeoutOption = Annotated[
    float,
    typer.Option(
        min=0.1, help="Seconds without data before a try fails.", rich_help_panel=ATTACHMENTS
    ),
]
AllowPrivateOption = Annotated[
    bool,
    typer.Option(
        "--allow-private-urls",
        help="Fetch from loopback, private, link-local and other non-public addresses too.",
        rich_help_panel=ATTACHMENTS,
    ),
]


SampleOption = Annotated[
    float | None,
    typer.Option(
        "--sample",
        min=0.01,
        max=100,
        metavar="PERCENT",
        help="Check a random PERCENT of the attachments (every part is still checked).",
    ),
]


def parse_until(value: str | None) -> tuple[date | None, bool]:
    """``--until``: a day, or ``now`` (today so far as a provisional part)."""
    if value is None:
        return None, False
    if value.strip().lower() == "now":
        return None, True
    try:
        return date.fromisoformat(value.strip()), False
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a day: use YYYY-MM-DD or now", param_hint="--until"
        ) from None


def attachment_options(
    skip: bool, mode: str, concurrency: int, max_bytes: int, timeout: float, allow: bool
) -> AttachmentOptions:
    from chatferry.client.attachments.run import AttachmentOptions

    if mode not in ("files", "all"):
        raise typer.BadParameter(f"{mode!r}: use files or all", param_hint="--attachments")
    return AttachmentOptions(
        mode="none" if skip else mode,
        concurrency=concurrency,
        max_bytes=max_bytes,
        allow_private=allow,
        timeout=timeout,
    )


def parse_types(value: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [n for n in names if n not in RESOURCES]
    if unknown or not names:
        raise typer.BadParameter(
            f"{', '.join(unknown) or 'nothing'}: use users, rooms, comments", param_hint="--types"
        )
    return tuple(r for r in RESOURCES if r in names)


def _day(value: datetime | None) -> date | None:
    return value.date() if value else None


def show_manifest(manifest: Manifest, new_parts: int, out: Path) -> None:
    rows = []
    for resource in RESOURCES:
        parts = manifest.parts_of(resource)
        if parts:
            days = f"{parts[0].start_date}..{parts[-1].end_date}"
            total = sum(p.rows for p in parts)
            size = human_size(sum(p.bytes for p in parts))
            rows.append([resource, days, len(parts), total, size])
    show_rows(("type", "days", "parts", "rows", "size"), rows, title=f"backup in {out}")
    note(f"{new_parts} new part(s); run it again later to add the days after {manifest.until}")
    provisional = [p for p in manifest.parts if p.provisional]
    if provisional:
        note(
            f"{provisional[0].start_date} so far is in provisional part(s): "
            "the next run replaces them"
        )


def show_backup(result: BackupResult, out: Path, as_json: bool) -> None:
    if as_json:
        failed = [{"url": u, "error": e} for u, e in result.attachment_failures]
        print_json({"new_parts": len(result.new_parts), "manifest": result.manifest.as_json(),
                    "attachment_failures": failed})  # fmt: skip
    else:
        show_manifest(result.manifest, len(result.new_parts), out)
    show_attachments(result, as_json)


def show_attachments(result: BackupResult, as_json: bool) -> None:
    """The attachment summary; exit 5 when some could not be fetched."""
    from chatferry.client.errors import AttachmentsMissing

    index = result.attachment_index
    stored = {e["sha256"] for e in index.values() if "sha256" in e}
    failed = result.attachment_failures
    if not as_json:
        if failed:
            show_rows(("url", "why it could not be fetched"), [list(f) for f in failed[:100]])
        note(f"attachments: {len(stored)} file(s) stored for {len(index) - len(failed)} URL(s)")
    if failed and result.manifest.encrypted:
        raise AttachmentsMissing(
            f"{len(failed)} attachment(s) could not be fetched (listed above and in the "
            "backup's encrypted index); every row is in the backup; a later run retries them "
            "only when given the backup's --identity (it cannot read its index without it)"
        )
    if failed:
        raise AttachmentsMissing(
            f"{len(failed)} attachment(s) could not be fetched (listed above and in "
            "manifest.json); every row is in the backup; run the backup again to retry them"
        )


def backup(
    out: Annotated[Path, typer.Option("--out", help="Backup directory (new, or an earlier one).")],
    since: SinceOption = None,
    until: BackupUntilOption = None,
    types: Annotated[
        str, typer.Option(help="Comma-separated types to back up.")
    ] = "users,rooms,comments",
    concurrency: Annotated[int, typer.Option(min=1, max=16, help="Exports at once.")] = 3,
    window_days: Annotated[
        int, typer.Option(min=1, help="Longest export in days (the server's range limit).")
    ] = 30,
    keep_exports: Annotated[
        bool,
        typer.Option("--keep-exports", help="Keep the server's exports after downloading."),
    ] = False,
    encrypt_to: EncryptToOption = None,
    recipients_file: RecipientsFileOption = None,
    plain: PlainOption = False,
    no_attachments: NoAttachmentsOption = False,
    attachments: AttachmentsOption = "files",
    attachment_concurrency: AttachmentConcurrencyOption = 8,
    max_attachment_bytes: MaxAttachmentBytesOption = 1 << 30,
    attachment_timeout: AttachmentTimeoutOption = 30.0,
    allow_private_urls: AllowPrivateOption = False,
    identity: IdentityOption = None,
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Back up a whole app and the files its rows point to into --out; run it again to add
    the days since (and retry attachments that failed).

    Without --since a new backup starts at the app's oldest data (it walks back until a
    year without any row). --until defaults to yesterday, the last whole day. With
    --encrypt-to or --recipients-file every file is written encrypted with age; later runs
    encrypt to the same recipients (and retry failed attachments only given --identity).
    Exit 5: every row is in, some attachments are not."""
    from chatferry.client.backup import BackupOptions, run_backup

    recipients = _recipients(encrypt_to or [], recipients_file or [], plain)
    keys, (last, until_now) = tuple(_identities(identity) or ()), parse_until(until)
    options = BackupOptions(
        out, parse_types(types), _day(since), last, concurrency, window_days, keep_exports,
        recipients=recipients, plain=plain, until_now=until_now, identities=keys,
        attachments=attachment_options(no_attachments, attachments, attachment_concurrency,
            max_attachment_bytes, attachment_timeout, allow_private_urls))  # fmt: skip
    with connect(server, app_id, secret, patient=True) as api, RichReporter() as reporter:
        result = run_backup(api, options, reporter)
    show_backup(result, out, as_json)


def _recipients(given: list[str], files: list[Path], plain: bool) -> tuple[str, ...]:
    if not (given or files):
        return ()
    if plain:
        raise typer.BadParameter("--plain with recipients: choose one", param_hint="--plain")
    from chatferry.client.crypto import recipient_texts

    return tuple(recipient_texts(given, files))


def _identities(identity: Path | None) -> list[Any] | None:
    if identity is None:
        return None
    from chatferry.client.crypto import load_identities

    return list(load_identities(identity))


def _show_plan(summary: RestoreSummary, uploads: list[Upload]) -> None:
    rows = []
    for resource in RESOURCES:
        mine = [u for u in uploads if u.type == resource]
        size = human_size(sum(u.bytes for u in mine))
        rows.append([resource, summary.rows[resource], len(mine), size])
    show_rows(("type", "rows", "uploads", "size"), rows, title="restore plan (dry run)")
    if summary.checked_on_server:
        note(
            f"the server accepted the {len(summary.checked_on_server)} users upload(s) in a dry "
            "run; rooms and comments are checked offline now, and on the server right before "
            "each is imported"
        )
    elif not summary.server_dry_run:
        note("checked offline; this server has no dry run, so nothing was sent")
    else:
        note("checked offline; the target holds some of these users, so no upload was dry-run")


def _show_restore(summary: RestoreSummary) -> None:
    if summary.rehosted is not None:
        note(
            f"attachments re-hosted: {summary.rehosted['uploaded']} uploaded, "
            f"{summary.rehosted['already_there']} there already"
        )
    rows = [[r, summary.rows[r]] for r in RESOURCES]
    show_rows(("type", "rows restored"), rows, title=f"restore into {summary.app_id}")
    note(
        f"{summary.imported_now} upload(s) imported now, {summary.already_imported} earlier; "
        f"{summary.seconds:.1f} s"
    )


IgnoreTimezoneOption = Annotated[
    bool,
    typer.Option(
        "--ignore-timezone",
        help="Restore even into an app whose time zone differs from the backup's.",
    ),
]
ScopeSinceOption = Annotated[
    datetime | None,
    typer.Option(formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="First day of comments."),
]
ScopeUntilOption = Annotated[
    datetime | None,
    typer.Option(formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="Last day of comments."),
]
RehostOption = Annotated[
    str | None,
    typer.Option(
        "--rehost-attachments",
        metavar="STORAGE_URL",
        help="Upload the attachments to file:///dir or s3://bucket/prefix and point rows at them.",
    ),
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--attachments-base-url",
        metavar="URL",
        help="Where the re-hosted attachments are served from: URLs become URL/<sha256>.",
    ),
]
DryRunOption = Annotated[
    bool,
    typer.Option("--dry-run", help="Check, plan and compare with the target; import nothing."),
]
RestoreTypesOption = Annotated[str | None, typer.Option(help="Comma-separated types to restore.")]
RoomsOption = Annotated[
    str | None,
    typer.Option(
        metavar="ID[,ID...]", help="Restore just these rooms' comments (and what they need)."
    ),
]


def _check_timezone(api: Api, directory: Path, ignore: bool) -> None:
    """Refuses (before anything is sent) a target app in another time zone."""
    from chatferry.client.manifest import load_manifest
    from chatferry.client.timezones import compare, mismatch_error, server_timezone

    check = compare(load_manifest(directory), server_timezone(api))
    if check.same is False and not ignore:
        raise mismatch_error(check, api.connection.app_id, directory)
    if check.same is False:
        note(f"restoring a backup of {check.source} into an app in {check.target}")
    elif check.same is None:
        note("the time zones of the backup and of the app could not both be read: not compared")


def parse_scope(
    rooms: str | None, since: datetime | None, until: datetime | None, types: str | None
) -> Scope:
    from chatferry.client.scope import Scope

    chosen = frozenset(r.strip() for r in rooms.split(",") if r.strip()) if rooms else None
    if rooms is not None and not chosen:
        raise typer.BadParameter("name at least one room id", param_hint="--rooms")
    return Scope(chosen, _day(since), _day(until), parse_types(types) if types else RESOURCES)


def _show_diff(diff: dict[str, Any]) -> None:
    rows = [[t, c["new"], c["present"], c["conflict"]] for t, c in diff["counts"].items()]
    show_rows(("type", "new", "already present", "in conflict"), rows, title="against the target")
    if diff["conflicts"]:
        show_rows(
            ("type", "key", "fields that differ"),
            [[c["type"], c["key"], ", ".join(c["fields"])] for c in diff["conflicts"]],
            title="first conflicts (same key, other content: left out)",
        )


def restore(
    directory: DirArgument,
    dry_run: DryRunOption = False,
    ignore_timezone: IgnoreTimezoneOption = False,
    rooms: RoomsOption = None,
    since: ScopeSinceOption = None,
    until: ScopeUntilOption = None,
    types: RestoreTypesOption = None,
    rehost_attachments: RehostOption = None,
    attachments_base_url: BaseUrlOption = None,
    upload_limit: Annotated[
        int, typer.Option(min=1024, help="Largest upload in bytes (lowered on a 413).")
    ] = 4_000_000,
    identity: IdentityOption = None,
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore a backup into an app: users, rooms, comments; run it again to resume.

    --rooms/--since/--until/--types restore a part: those rooms' comments in those days,
    with the users and rooms they need that the target lacks. --dry-run shows per type
    how many rows are new, already present or in conflict. An encrypted backup needs
    --identity (exit 4, nothing imported, without a key that opens it).
    """
    from chatferry.client.manifest import require_backup
    from chatferry.client.restore import require_key

    require_backup(directory)
    scope = parse_scope(rooms, since, until, types)
    rehost = _rehost(rehost_attachments, attachments_base_url)
    keys = _identities(identity)
    require_key(directory, keys)  # before anything is sent
    with connect(server, app_id, secret, patient=True) as api, RichReporter() as reporter:
        _check_timezone(api, directory, ignore_timezone)
        try:
            summary, uploads = _restore(
                api, directory, scope, dry_run, reporter, upload_limit, rehost, keys
            )
        except JobFailed as failed:
            print_json(failed.record) if as_json else show_problems(failed.record)
            raise
    _show_summary(summary, uploads, dry_run, as_json)


def _show_summary(
    summary: RestoreSummary, uploads: list[Upload], dry_run: bool, as_json: bool
) -> None:
    if as_json:
        print_json(summary.as_json())
        return
    if summary.diff is not None:
        _show_diff(summary.diff)
    if dry_run:
        _show_plan(summary, uploads)
    else:
        _show_restore(summary)


def _rehost(storage_url: str | None, base_url: str | None) -> tuple[str, str] | None:
    if (storage_url is None) != (base_url is None):
        raise typer.BadParameter(
            "give --rehost-attachments and --attachments-base-url together",
            param_hint="--rehost-attachments",
        )
    return (storage_url, base_url) if storage_url and base_url else None


def _rehosting(
    directory: Path, rehost: tuple[str, str], reporter: Reporter, keys: list[Identity] | None
) -> tuple[Rewrite, dict[str, int]]:
    """Uploads the attachments of a verified backup; the row rewriter that points at them."""
    from chatferry.client.attachments.rehost import (
        attachment_index,
        upload_attachments,
        url_rewriter,
    )
    from chatferry.client.restore import check_backup

    manifest = check_backup(directory, reporter, keys, attachments=True)
    index = attachment_index(directory, manifest, keys)
    done = upload_attachments(directory, index, rehost[0], reporter, keys)
    counts = {"uploaded": done.uploaded, "already_there": done.already}
    return url_rewriter(index, rehost[1]), counts


def _restore(
    api: Api,
    directory: Path,
    scope: Scope,
    dry_run: bool,
    reporter: Reporter,
    limit: int,
    rehost: tuple[str, str] | None = None,
    keys: list[Identity] | None = None,
) -> tuple[RestoreSummary, list[Upload]]:
    from chatferry.client.restore import Restore, RestoreSummary, dry_run_restore
    from chatferry.client.scoped import dry_run_diff, scoped_restore

    if not dry_run:
        rewrite, rehosted = (
            _rehosting(directory, rehost, reporter, keys) if rehost else (None, None)
        )
        if scope.whole:
            summary = Restore(api, directory, reporter, limit, keys, rewrite=rewrite).run()
        else:
            summary = scoped_restore(api, directory, scope, reporter, limit, rewrite, keys)
        summary.rehosted = rehosted
        return summary, []
    diff = dry_run_diff(api, directory, scope, reporter, keys)
    if scope.whole:
        users = diff.counts["users"]
        empty = users["present"] + users["conflict"] == 0
        summary, uploads = dry_run_restore(api, directory, reporter, limit, keys, on_server=empty)
        summary.server_dry_run = api.has_extensions()
    else:
        summary, uploads = RestoreSummary(api.connection.server, api.connection.app_id, True), []
    summary.diff = diff.as_json()
    if not scope.whole:
        summary.rows = {t: c["new"] for t, c in diff.counts.items()}
    return summary, uploads


def verify(
    directory: DirArgument,
    identity: IdentityOption = None,
    sample: SampleOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a backup offline: checksums, row counts, JSON, references, attachment hashes;
    exit 4 on problems.

    An encrypted backup without --identity: the encrypted files' sizes and checksums only.
    """
    from chatferry.client.files import open_to_others
    from chatferry.client.verify import verify_backup

    if not directory.is_dir():
        raise ClientError(f"there is no backup in {directory}: the directory does not exist")
    keys = _identities(identity)
    warning = open_to_others(directory)
    if warning:
        note(warning)
    with RichReporter() as reporter:
        report = verify_backup(directory, reporter, keys, sample)
    if as_json:
        print_json(report.as_json())
    elif report.problems:
        show_rows(("where", "problem"), [[p["where"], p["problem"]] for p in report.problems])
    if not report.ok:
        raise BackupProblems(
            f"{report.problem_count} problem(s) in the backup in {directory}", report.problems
        )
    if not as_json:
        counts = ", ".join(f"{report.rows[r]} {r}" for r in RESOURCES)
        if report.contents_checked:
            note(f"ok: {report.parts} parts, {counts}; checksums and references match")
        else:
            note(
                f"ok: {report.parts} encrypted parts ({counts}, as the manifest says); their "
                "sizes and checksums match; give --identity to check rows and references too"
            )
        note(
            f"attachments: {report.attachments_checked} of {report.attachments} file(s) "
            f"checked, {report.attachments_failed} URL(s) could not be fetched at backup time"
        )


def keygen(
    out: Annotated[
        Path, typer.Option("--out", help="The identity file to write (a new one).", dir_okay=False)
    ],
) -> None:
    """Write a new age identity (secret key, mode 0600) and print its public recipient.

    Keep the identity apart from the backups it opens; without it they cannot be read.
    """
    from chatferry.client.crypto import keygen as write_identity

    recipient = write_identity(out)
    note(f"wrote the identity to {out}: keep it apart from the backups, and never lose it")
    typer.echo(recipient)
