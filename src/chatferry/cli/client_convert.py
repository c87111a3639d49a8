"""``chatferry convert mattermost|slack EXPORT --out DIR``: an export as a backup directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from chatferry.cli.client_common import JsonOption, note, print_json, show_rows

if TYPE_CHECKING:
    from chatferry.convert.builder import Options
    from chatferry.convert.report import ConversionReport

convert_cli = typer.Typer(
    help="Convert a Mattermost or Slack export into a backup directory (offline); then "
    "'chatferry verify DIR' and 'chatferry restore DIR' bring it into an app.",
    no_args_is_help=True,
)
OutOption = Annotated[
    Path,
    typer.Option(
        "--out", file_okay=False, help="Backup directory (new, or an earlier conversion of it)."
    ),
]
KeepOption = Annotated[
    bool,
    typer.Option(
        "--keep-system-messages", help="Keep join/leave and other system messages as text."
    ),
]
DomainOption = Annotated[
    str,
    typer.Option(
        "--email-domain",
        help="Domain of the placeholder emails of users the export gives none.",
    ),
]
SecretOption = Annotated[
    str,
    typer.Option(
        "--token-secret",
        envvar="CHATFERRY_CONVERT_TOKEN_SECRET",
        show_default=False,
        help="Derive users' AuthenticationTokens with this secret (an HMAC), so nobody can "
        "compute them from the source's user ids; keep it to convert again.",
    ),
]
DEFAULT_DOMAIN = "users.invalid"


def _run(kind: str, export: Path, out: Path, options: Options, as_json: bool) -> None:
    from chatferry.convert.run import convert

    os.umask(0o077)  # a backup directory: 0700 directories and 0600 files, as backup's
    report = convert(kind, export, out, options)
    if as_json:
        print_json(report.as_json())
        return
    show_summary(report, out)


def _options(keep: bool, domain: str, secret: str) -> Options:
    from chatferry.convert.builder import Options
    from chatferry.convert.people import is_email

    if not is_email(f"user@{domain}"):
        raise typer.BadParameter(
            f"{domain!r} is not a domain name: use e.g. users.invalid or example.com",
            param_hint="--email-domain",
        )

    return Options(keep_system_messages=keep, email_domain=domain, token_secret=secret)


def show_summary(report: ConversionReport, out: Path) -> None:
    rows = [
        [resource, report.written[resource], report.new_rows[resource],
         report.left_out_count(resource)]
        for resource in report.written
    ]  # fmt: skip
    show_rows(("type", "rows", "new", "left out"), rows, title=f"conversion into {out}")
    kinds = [
        [section, name, kind.count, kind.reason]
        for section, group in _sections(report)
        for name, kind in sorted(group.items())
    ]
    if kinds:
        show_rows(("what", "kind", "count", "why"), kinds)
    if report.placeholder_emails:
        note(f"{len(report.placeholder_emails)} user(s) got a placeholder email (listed in "
             "conversion-report.json)")  # fmt: skip
    note(f"{report.attachments} attachment(s) stored; details in {out}/conversion-report.json; "
         f"next: chatferry verify {out}")  # fmt: skip


def _sections(report: ConversionReport) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    sections: list[tuple[str, dict]] = [  # type: ignore[type-arg]
        (f"left out: {resource}", kinds) for resource, kinds in report.left_out.items()
    ]
    return [
        *sections,
        ("not supported", report.not_supported),
        ("changed", report.changed),
        ("broken", report.broken),
    ]


@convert_cli.command()
def mattermost(
    export: Annotated[
        Path,
        typer.Argument(
            help="The bulk export: its .jsonl, or the directory or .zip "
            "holding it and its data/ folder.",
            show_default=False,
        ),
    ],
    out: OutOption,
    keep_system_messages: KeepOption = False,
    email_domain: DomainOption = DEFAULT_DOMAIN,
    token_secret: SecretOption = "",
    as_json: JsonOption = False,
) -> None:
    """Convert a Mattermost bulk export (mmctl export / bulk export JSONL)."""
    _run(
        "mattermost",
        export,
        out,
        _options(keep_system_messages, email_domain, token_secret),
        as_json,
    )


@convert_cli.command()
def slack(
    export: Annotated[
        Path,
        typer.Argument(
            help="The Slack export's .zip or its unpacked directory.", show_default=False
        ),
    ],
    out: OutOption,
    keep_system_messages: KeepOption = False,
    email_domain: DomainOption = DEFAULT_DOMAIN,
    token_secret: SecretOption = "",
    as_json: JsonOption = False,
) -> None:
    """Convert a Slack workspace export (users.json, channels.json, a folder per channel)."""
    _run("slack", export, out, _options(keep_system_messages, email_domain, token_secret), as_json)
