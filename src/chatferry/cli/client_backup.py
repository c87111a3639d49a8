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
    from chatferry.client.http import Api
    from chatferry.client.manifest import Manifest
    from chatferry.client.restore import RestoreSummary, Upload

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


def backup(
    out: Annotated[Path, typer.Option("--out", help="Backup directory (new, or an earlier one).")],
    since: SinceOption = None,
    until: UntilOption = None,
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
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Back up a whole app into the --out directory; run it again to add the days since.

    Without --since a new backup starts at the app's oldest data (it walks back until a
    year without any row). --until defaults to yesterday, the last whole day. With
    --encrypt-to or --recipients-file every file of the backup is written encrypted with
    age; later runs encrypt to the same recipients.
    """
    from chatferry.client.backup import BackupOptions, run_backup

    recipients = _recipients(encrypt_to or [], recipients_file or [], plain)
    options = BackupOptions(
        out, parse_types(types), _day(since), _day(until), concurrency, window_days,
        keep_exports, recipients, plain,
    )  # fmt: skip
    with connect(server, app_id, secret, patient=True) as api, RichReporter() as reporter:
        result = run_backup(api, options, reporter)
    if as_json:
        print_json({"new_parts": len(result.new_parts), "manifest": result.manifest.as_json()})
    else:
        show_manifest(result.manifest, len(result.new_parts), out)


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
    else:
        note("checked offline; this server has no dry run, so nothing was sent")


def _show_restore(summary: RestoreSummary) -> None:
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


def restore(
    directory: DirArgument,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and plan only; import nothing.")
    ] = False,
    ignore_timezone: IgnoreTimezoneOption = False,
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

    An encrypted backup needs --identity (exit 4, nothing imported, without a key that
    opens it)."""
    from chatferry.client.manifest import require_backup
    from chatferry.client.restore import Restore, dry_run_restore, require_key

    require_backup(directory)
    keys = _identities(identity)
    require_key(directory, keys)  # before anything is sent
    with connect(server, app_id, secret, patient=True) as api, RichReporter() as reporter:
        _check_timezone(api, directory, ignore_timezone)
        try:
            if dry_run:
                summary, uploads = dry_run_restore(api, directory, reporter, upload_limit, keys)
            else:
                summary = Restore(api, directory, reporter, upload_limit, keys).run()
        except JobFailed as failed:
            print_json(failed.record) if as_json else show_problems(failed.record)
            raise
    if as_json:
        print_json(summary.as_json())
    elif dry_run:
        _show_plan(summary, uploads)
    else:
        _show_restore(summary)


def verify(
    directory: DirArgument, identity: IdentityOption = None, as_json: JsonOption = False
) -> None:
    """Check a backup offline: checksums, row counts, JSON, references; exit 4 on problems.

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
        report = verify_backup(directory, reporter, keys)
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
