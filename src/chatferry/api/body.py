"""JSON request bodies: read whatever the Content-Type, validated into the typed models.

The spec's clients send JSON bodies, not always with ``Content-Type: application/json``
(the spec's own DELETE example sends curl's default form type), so the body is parsed as
JSON regardless. It is capped while it streams in (FastAPI's own ``max_body_size`` answers
413 in plain text, outside our error envelope, so the cap is ours). Every problem is a
4xx in our envelope whose message says what to send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from chatferry.errors import BadRequest, PayloadTooLarge, show

MAX_JSON_BODY = 64 * 1024

Model = TypeVar("Model", bound=BaseModel)


def parse_json(raw: bytes, example: str) -> Any:
    """The body as JSON; BadRequest naming what is wrong and what to send instead."""
    if not raw.strip():
        raise BadRequest(f"the request body is empty: send a JSON object like {example}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None


def _problem(error: Any, model: type[BaseModel]) -> str:
    """One pydantic error as a sentence (our validators' messages pass unchanged)."""
    field = ".".join(str(part) for part in error.get("loc", ())) or "body"
    kind = error.get("type")
    if kind == "value_error" and error.get("ctx", {}).get("error") is not None:
        return str(error["ctx"]["error"])
    if kind == "extra_forbidden":
        known = ", ".join(model.model_fields)
        return f"{show(field)} is not a field of this request: use {known}"
    if kind == "missing":
        return f"{field} is required"
    return f"{field}: {error.get('msg', 'is not valid')}"


def validate_body(model: type[Model], data: Any, example: str) -> Model:
    """``data`` as ``model``; BadRequest listing every problem."""
    if not isinstance(data, dict):
        raise BadRequest(f"the request body must be a JSON object like {example}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest("; ".join(_problem(e, model) for e in exc.errors())) from None


async def read_capped(request: Request, limit: int = MAX_JSON_BODY) -> bytes:
    """The whole body, refused with 413 as soon as it grows over ``limit``."""
    too_large = PayloadTooLarge(f"the request body is over {limit // 1024} KB")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def json_body(model: type[Model], example: str) -> Callable[[Request], Awaitable[Model]]:
    """A dependency that reads the body as ``model`` (document it with ``request_doc``)."""

    async def read(request: Request) -> Model:
        data = parse_json(await read_capped(request), example)
        return validate_body(model, data, example)

    return read


def request_doc(model: type[BaseModel], examples: dict[str, Any]) -> dict[str, Any]:
    """The ``openapi_extra`` that documents a JSON body read by ``json_body``."""
    schema_ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": schema_ref,
                    "examples": {name: {"value": value} for name, value in examples.items()},
                }
            },
        }
    }
