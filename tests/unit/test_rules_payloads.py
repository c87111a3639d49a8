"""Each message type's Payload, without a database: a valid payload, then one key changed."""

from __future__ import annotations

from typing import Any

import pytest
from rules_support import NOW, deep

from chatferry.imports.rules.comments import parse_comment
from chatferry.imports.rules.payloads import plain_payload

VALID_PAYLOADS: dict[str, dict[str, Any]] = {
    "text": {"anything": 1},
    "reply": {"text": "Maaf mau tanya..", "replied_comment_id": 1},
    "file_attachment": {"url": "https://f.example.com/a.png", "caption": "pic"},
    "custom": {"type": "promo", "content": {"x": 1}},
    "location": {
        "name": "Monas",
        "address": "Jakarta",
        "latitude": -6.17,
        "longitude": 106.82,
        "map_url": "https://maps.example.com/?q=monas",
    },
    "contact_person": {"name": "Budi", "value": "+62812", "type": "phone"},
    "buttons": {
        "text": "pick",
        "buttons": [{"label": "A", "type": "postback"}, {"label": "B", "type": "link"}],
    },
    "card": {
        "title": "T",
        "description": "D",
        "image": "https://i.example.com/x.png",
        "buttons": [{"label": "Go", "type": "link"}],
    },
    "carousel": {"cards": [{"title": "T", "description": "D"}, {"title": "U", "description": ""}]},
    "account_linking": {
        "url": "https://login.example.com",
        "redirect_url": "https://app.example.com/done",
        "params": {"a": 1},
    },
    "button_postback_response": {},
}


def _problems(kind: str, payload: Any) -> list[str]:
    raw = {
        "UniqueId": "c",
        "RoomUniqueId": "r",
        "CreatorEmail": "a@x.com",
        "Type": kind,
        "Payload": payload,
        "ParentCommentUniqueId": "p" if kind == "reply" else "",
    }
    problems = parse_comment(0, raw, NOW).problems
    assert {p.field for p in problems} <= {"Payload"}
    assert plain_payload(kind, payload) == (not problems)  # the column pass agrees
    return [p.message for p in problems]


@pytest.mark.parametrize("kind", sorted(VALID_PAYLOADS))
def test_valid_payloads(kind: str) -> None:
    assert _problems(kind, VALID_PAYLOADS[kind]) == []


@pytest.mark.parametrize("kind", sorted(set(VALID_PAYLOADS) - {"text"}))
def test_every_type_but_text_needs_a_payload(kind: str) -> None:
    assert _problems(kind, None) == [f"Payload is required for a {kind} message"]


def test_a_payload_nested_deeper_than_the_limit_is_refused_for_every_type() -> None:
    for kind in VALID_PAYLOADS:
        payload = {**VALID_PAYLOADS[kind], "extra": deep(101)}
        assert _problems(kind, payload) == [
            "Payload nests objects and arrays more than 100 deep"
        ], kind
        assert _problems(kind, {**VALID_PAYLOADS[kind], "extra": deep(99)}) == [], kind


BAD: list[tuple[str, str, Any, str]] = [
    ("reply", "text", None, "Payload.text must be a string, got null"),
    (
        "reply",
        "replied_comment_id",
        0,
        "integer of at least 1 (write 1: the real id of the parent is filled in on import), got 0",
    ),
    ("reply", "replied_comment_id", True, "integer of at least 1"),
    ("reply", "replied_comment_id", "1", "got '1'"),
    ("reply", "replied_comment_id", 1.5, "got 1.5"),
    ("reply", "replied_comment_id", deep(50), "got (an array)"),
    ("reply", "replied_comment_id", "9" * 5000, "got '" + "9" * 60 + "\u2026'"),
    ("file_attachment", "url", "nope", "Payload.url 'nope' is not an absolute http(s) URL"),
    ("file_attachment", "url", None, "Payload.url must be a string, got null"),
    ("file_attachment", "caption", 3, "Payload.caption must be a string, got a number"),
    ("custom", "type", None, "Payload.type must be a string, got null"),
    ("custom", "content", ..., "Payload.content is required for a custom message"),
    ("location", "latitude", 91, "Payload.latitude 91 is out of range (-90 to 90)"),
    ("location", "longitude", -180.5, "Payload.longitude -180.5 is out of range (-180 to 180)"),
    ("location", "latitude", "1", "Payload.latitude must be a number, got a string"),
    ("location", "latitude", True, "Payload.latitude must be a number, got a boolean"),
    ("location", "name", 1, "Payload.name must be a string, got a number"),
    ("location", "address", None, "Payload.address must be a string"),
    ("location", "map_url", "maps", "Payload.map_url 'maps' is not an absolute http(s) URL"),
    ("contact_person", "type", "fax", 'Payload.type \'fax\' is not valid: use "phone" or "email"'),
    ("contact_person", "value", None, "Payload.value must be a string"),
    ("buttons", "buttons", [], "Payload.buttons must be a non-empty array of buttons"),
    ("buttons", "buttons", {"a": 1}, "Payload.buttons must be an array of buttons, got an object"),
    ("buttons", "buttons", [1], "Payload.buttons[0] must be an object, got a number"),
    ("buttons", "buttons", [{"type": "link"}], "Payload.buttons[0].label must be a string"),
    (
        "buttons",
        "buttons",
        [{"label": "x", "type": "x"}],
        'Payload.buttons[0].type must be "link" or "postback"',
    ),
    ("buttons", "text", None, "Payload.text must be a string"),
    ("card", "description", None, "Payload.description must be a string"),
    ("card", "title", deep(50), "Payload.title must be a string, got an array"),
    ("card", "title", deep(1000), "Payload nests objects and arrays more than 100 deep"),
    ("card", "image", "img.png", "Payload.image 'img.png' is not an absolute http(s) URL"),
    ("card", "buttons", "no", "Payload.buttons must be an array of buttons, got a string"),
    ("carousel", "cards", [], "Payload.cards must be a non-empty array of cards"),
    (
        "carousel",
        "cards",
        [{"title": 1, "description": "D"}],
        "Payload.cards[0].title must be a string, got a number",
    ),
    ("carousel", "cards", ["x"], "Payload.cards[0] must be an object, got a string"),
    (
        "carousel",
        "cards",
        [{"title": "T", "description": "D", "image": "x"}],
        "Payload.cards[0].image 'x' is not an absolute http(s) URL",
    ),
    ("account_linking", "url", ..., "Payload.url must be a string, got null"),
    ("account_linking", "redirect_url", "x", "Payload.redirect_url 'x' is not an absolute"),
    ("account_linking", "params", [1], "Payload.params must be an object"),
]


@pytest.mark.parametrize(("kind", "key", "value", "message"), BAD)
def test_one_bad_payload_key(kind: str, key: str, value: Any, message: str) -> None:
    payload = dict(VALID_PAYLOADS[kind])
    if value is ...:
        payload.pop(key)
    else:
        payload[key] = value
    problems = _problems(kind, payload)
    assert len(problems) == 1, problems
    assert message in problems[0]
    assert len(problems[0]) < 250


def test_every_problem_of_a_payload_is_listed() -> None:
    payload = {"name": 1, "address": 2, "latitude": 100, "longitude": "x", "map_url": "m"}
    assert _problems("location", payload) == [
        "Payload.name must be a string, got a number",
        "Payload.address must be a string, got a number",
        "Payload.latitude 100 is out of range (-90 to 90)",
        "Payload.longitude must be a number, got a string",
        "Payload.map_url 'm' is not an absolute http(s) URL",
    ]


def test_a_shown_value_that_says_payload_is_not_rewritten() -> None:
    card = {"title": "T", "description": "D", "image": "Payload.x"}
    assert _problems("carousel", {"cards": [card]}) == [
        "Payload.cards[0].image 'Payload.x' is not an absolute http(s) URL"
    ]
