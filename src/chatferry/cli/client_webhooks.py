"""``chatferry webhooks ...``: endpoints told when exports and imports end."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from chatferry.cli.client_common import (
    AppIdOption,
    JsonOption,
    SecretOption,
    ServerOption,
    connect,
    note,
    print_json,
    show_record,
    show_rows,
)
from chatferry.cli.client_records import add_record_command, client_function

webhooks_cli = typer.Typer(
    help="Webhooks: add, list, get, test, retry, delete (chatferry servers).",
    no_args_is_help=True,
)
IdArgument = Annotated[str, typer.Argument(help="The webhook's id.", show_default=False)]
EVENTS = "export.finished, export.failed, export.cancelled, import.finished, import.failed, ping"


def _emit(title: str, record: dict[str, Any], as_json: bool) -> None:
    print_json(record) if as_json else show_record(title, record)


def _show_deliveries(deliveries: list[dict[str, Any]]) -> None:
    columns = ("id", "event", "status", "attempts", "last_status", "next_try", "last_error")
    keys = ("id", "event", "status", "attempts", "last_status_code", "next_attempt_at")
    rows = [[d.get(k) for k in keys] + [d.get("last_error")] for d in deliveries]
    show_rows(columns, rows, title="recent deliveries")


@webhooks_cli.command("add")
def webhooks_add(
    url: Annotated[str, typer.Option(help="The https:// URL to POST to.")],
    event: Annotated[
        list[str], typer.Option("--event", help=f"An event to send (repeat): {EVENTS}.")
    ],
    description: Annotated[str, typer.Option(help="A note for people.")] = "",
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a webhook; its signing secret is shown this once: keep it."""
    from chatferry.client.webhooks import add_webhook

    with connect(server, app_id, secret) as api:
        record = add_webhook(api, url, event, description)
    _emit("webhook added", record, as_json)
    if not as_json:
        note("Keep the secret: it is not shown again. Verify deliveries with it.")


@webhooks_cli.command("list")
def webhooks_list(
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the app's webhooks."""
    from chatferry.client.webhooks import list_webhooks

    with connect(server, app_id, secret) as api:
        records = list_webhooks(api)
    if as_json:
        print_json(records)
        return
    rows = [[r.get("id"), r.get("url"), ",".join(r.get("events") or []), r.get("description")]
            for r in records]  # fmt: skip
    show_rows(("id", "url", "events", "description"), rows, title="webhooks")


@webhooks_cli.command("retry")
def webhooks_retry(
    webhook_id: IdArgument,
    delivery_id: Annotated[str, typer.Argument(help="The delivery's id.", show_default=False)],
    server: ServerOption = None,
    app_id: AppIdOption = None,
    secret: SecretOption = None,
    as_json: JsonOption = False,
) -> None:
    """Try a delivery again now (same webhook-id)."""
    from chatferry.client.webhooks import retry_delivery

    with connect(server, app_id, secret) as api:
        record = retry_delivery(api, webhook_id, delivery_id)
    _emit("delivery queued", record, as_json)


def _show_with_deliveries(title: str, record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(record)
        return
    deliveries = record.pop("deliveries", [])
    show_record(title, record)
    _show_deliveries(deliveries)


def _add_id_commands() -> None:
    """get, test and delete: one call about one webhook, made by the shared factory."""
    commands = (
        ("get", "get_webhook", "webhook", "Show a webhook and its recent deliveries.",
         _show_with_deliveries),
        ("test", "test_webhook", "ping queued",
         "Send a ping now; 'webhooks get' shows how it went.", _emit),
        ("delete", "delete_webhook", "webhook deleted",
         "Delete a webhook (nothing more is sent to it).", _emit),
    )  # fmt: skip
    for name, function, title, doc, show in commands:
        add_record_command(
            webhooks_cli, name, "webhook", client_function("webhooks", function), title, doc,
            show=show, id_key="id",
        )  # fmt: skip


_add_id_commands()
