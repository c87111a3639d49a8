"""The Payload of each message type, as the spec documents it. Pure.

Each check takes the payload object and returns the messages of its problems ("" list
when it is fine); ``read_payload`` applies the one of the comment's type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatferry.imports.rules.common import MAX_NESTING, kind, shown
from chatferry.imports.rules.fields import RowReader, is_http_url, nested_deeper_than

PayloadCheck = Callable[[dict[str, Any]], list[str]]


def _need_str(payload: dict[str, Any], name: str, optional: bool = False) -> list[str]:
    value = payload.get(name)
    if value is None and optional:
        return []
    if not isinstance(value, str):
        return [f"Payload.{name} must be a string, got {kind(value)}"]
    return []


def _need_url(payload: dict[str, Any], name: str, optional: bool = False) -> list[str]:
    problems = _need_str(payload, name, optional)
    value = payload.get(name)
    if not problems and isinstance(value, str) and not is_http_url(value):
        problems.append(f"Payload.{name} {shown(value)} is not an absolute http(s) URL")
    return problems


def _need_number(payload: dict[str, Any], name: str, low: float, high: float) -> list[str]:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [f"Payload.{name} must be a number, got {kind(value)}"]
    if not low <= value <= high:
        return [f"Payload.{name} {value} is out of range ({low} to {high})"]
    return []


def check_reply(p: dict[str, Any]) -> list[str]:
    problems = _need_str(p, "text")
    rid = p.get("replied_comment_id")
    if isinstance(rid, bool) or not isinstance(rid, int) or rid < 1:
        problems.append(
            "Payload.replied_comment_id must be an integer of at least 1 (write 1: the "
            f"real id of the parent is filled in on import), got {shown(rid)}"
        )
    return problems


def check_file_attachment(p: dict[str, Any]) -> list[str]:
    return _need_url(p, "url") + _need_str(p, "caption", optional=True)


def check_custom(p: dict[str, Any]) -> list[str]:
    problems = _need_str(p, "type")
    if "content" not in p:
        problems.append("Payload.content is required for a custom message")
    return problems


def check_location(p: dict[str, Any]) -> list[str]:
    return (
        _need_str(p, "name")
        + _need_str(p, "address")
        + _need_number(p, "latitude", -90, 90)
        + _need_number(p, "longitude", -180, 180)
        + _need_url(p, "map_url", optional=True)
    )


def check_contact(p: dict[str, Any]) -> list[str]:
    problems = _need_str(p, "name") + _need_str(p, "value") + _need_str(p, "type")
    if isinstance(p.get("type"), str) and p["type"] not in ("phone", "email"):
        problems.append(f'Payload.type {shown(p["type"])} is not valid: use "phone" or "email"')
    return problems


def _check_button_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        return [f"{where} must be an array of buttons, got {kind(value)}"]
    problems: list[str] = []
    for n, button in enumerate(value):
        if not isinstance(button, dict):
            problems.append(f"{where}[{n}] must be an object, got {kind(button)}")
            continue
        if not isinstance(button.get("label"), str):
            problems.append(f"{where}[{n}].label must be a string")
        if button.get("type") not in ("link", "postback"):
            problems.append(f'{where}[{n}].type must be "link" or "postback"')
    return problems


def check_buttons(p: dict[str, Any]) -> list[str]:
    problems = _need_str(p, "text")
    if not p.get("buttons"):
        return [*problems, "Payload.buttons must be a non-empty array of buttons"]
    return problems + _check_button_list(p.get("buttons"), "Payload.buttons")


def _check_card_at(card: Any, where: str) -> list[str]:
    if not isinstance(card, dict):
        return [f"{where} must be an object, got {kind(card)}"]
    problems = [
        m.replace("Payload.", f"{where}.", 1)
        for m in _need_str(card, "title") + _need_str(card, "description")
    ]
    if card.get("image") not in (None, ""):
        problems += [m.replace("Payload.", f"{where}.", 1) for m in _need_url(card, "image")]
    if card.get("buttons") is not None:
        problems += _check_button_list(card["buttons"], f"{where}.buttons")
    return problems


def check_card(p: dict[str, Any]) -> list[str]:
    return _check_card_at(p, "Payload")


def check_carousel(p: dict[str, Any]) -> list[str]:
    cards = p.get("cards")
    if not isinstance(cards, list) or not cards:
        return ["Payload.cards must be a non-empty array of cards"]
    return [m for n, card in enumerate(cards) for m in _check_card_at(card, f"Payload.cards[{n}]")]


def check_account_linking(p: dict[str, Any]) -> list[str]:
    problems = _need_url(p, "url") + _need_url(p, "redirect_url", optional=True)
    if p.get("params") is not None and not isinstance(p["params"], dict):
        problems.append("Payload.params must be an object")
    return problems


def check_anything(_p: dict[str, Any]) -> list[str]:
    return []


PAYLOAD_CHECKS: dict[str, PayloadCheck] = {
    "reply": check_reply,
    "file_attachment": check_file_attachment,
    "custom": check_custom,
    "location": check_location,
    "contact_person": check_contact,
    "buttons": check_buttons,
    "card": check_card,
    "carousel": check_carousel,
    "account_linking": check_account_linking,
    "button_postback_response": check_anything,
}


def plain_payload(comment_type: str, value: object) -> bool:
    """True when ``read_payload`` takes ``value`` for the type without a problem."""
    if value is None:
        return comment_type == "text"
    if type(value) is not dict or nested_deeper_than(value, MAX_NESTING):
        return False
    check = PAYLOAD_CHECKS.get(comment_type)
    return check is None or not check(value)


def read_payload(read: RowReader, comment_type: str) -> dict[str, Any] | None:
    """The row's Payload checked against its message type (None when absent)."""
    value = read.raw.get("Payload")
    if comment_type == "text" and value is None:
        return None
    if value is None:
        read.add("Payload", f"Payload is required for a {comment_type} message")
        return None
    if not isinstance(value, dict):
        read.add("Payload", f"Payload must be a JSON object or null, got {kind(value)}")
        return None
    if nested_deeper_than(value, MAX_NESTING):
        read.add("Payload", f"Payload nests objects and arrays more than {MAX_NESTING} deep")
        return None
    check = PAYLOAD_CHECKS.get(comment_type)
    for message in check(value) if check is not None else []:
        read.add("Payload", message)
    return value
