"""Reads an import upload: a multipart body streamed through a byte cap.

The body is fed chunk by chunk to Starlette's multipart parser (python-multipart's
streaming parser underneath), which spools the file part to a temporary file. The cap
counts the bytes received and stops reading as soon as the body is over the app's
import limit plus a little room for the multipart framing, so an oversized upload is
refused after reading little more than the limit, and memory never holds more than a
chunk of it. A declared Content-Length over the cap is refused before reading anything.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import IO

from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from chatferry.apps.service import AppContext
from chatferry.errors import BadRequest, PayloadTooLarge, show
from chatferry.resources import Resource, parse_resource

# Room for the multipart boundaries, part headers and the small form fields.
FRAMING_ALLOWANCE = 64 * 1024
MAX_FIELD_BYTES = 16 * 1024
_READ_CHUNK = 1024 * 1024
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


@dataclass
class ParsedUpload:
    resource: Resource
    dry_run: bool
    filename: str
    size: int
    file: IO[bytes]


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"


def too_large_message(app: AppContext, figure: str) -> str:
    limit = app.import_max_bytes
    return (
        f"the file is too large: {figure}, over the import limit of {_megabytes(limit)} "
        f"({limit} bytes) for this app; split it into several files of at most "
        f"{_megabytes(limit)}, or ask the operator to raise the limit "
        f"(CHATFERRY_IMPORT_MAX_BYTES, or 'chatferry apps update {app.app_id} "
        "--import-max-bytes N')"
    )


def too_large(app: AppContext, figure: str) -> PayloadTooLarge:
    """The 413 refusal, with the limit as an extension key for clients that split files."""
    details = {"code": "import_too_large", "limit_bytes": app.import_max_bytes}
    return PayloadTooLarge(too_large_message(app, figure), details)


async def _capped(
    stream: AsyncIterator[bytes], cap: int, app: AppContext
) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > cap:
            raise too_large(app, f"the upload is over {cap} bytes")
        yield chunk


def _text_field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a plain form field, not a file")
    return value.strip()


def _resource(form: FormData) -> Resource:
    value = _text_field(form, "type")
    if not value:
        raise BadRequest(
            'the form field type is required: one of "users", "rooms", "comments" '
            "(the kind of rows in the file)"
        )
    return parse_resource(value)


def _dry_run(form: FormData) -> bool:
    value = (_text_field(form, "validate_only") or "").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadRequest(f"validate_only must be true or false, got {show(value)}")


def _clean_filename(name: str | None) -> str:
    """The file's own name: no directories, no control characters (NUL included)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    printable = "".join(ch for ch in base if ch.isprintable()).strip()
    return printable[:255] or "import.json"


async def read_upload(
    headers: Headers, stream: AsyncIterator[bytes], app: AppContext
) -> ParsedUpload:
    """The form's type, validate_only and file; the caller closes ``file``."""
    content_type = headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise BadRequest(
            "the request must be multipart/form-data with the fields type and file "
            "(e.g. curl -F type=users -F file=@users.json), got "
            f"{show(content_type) if content_type else 'no Content-Type'}"
        )
    cap = app.import_max_bytes + FRAMING_ALLOWANCE
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise too_large(app, f"the upload is {declared} bytes")
    parser = MultiPartParser(
        headers,
        _capped(stream, cap, app),
        max_files=1,
        max_fields=20,
        max_part_size=MAX_FIELD_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"the multipart body could not be read: {exc.message}") from None
    try:
        resource = _resource(form)
        dry_run = _dry_run(form)
        upload = form.get("file")
        if upload is None:
            raise BadRequest("the form field file is required: the JSON file to import")
        if not isinstance(upload, UploadFile):
            raise BadRequest(
                "file must be a file part (curl -F file=@rows.json), not a plain text field"
            )
        size = upload.size if upload.size is not None else 0
        if size > app.import_max_bytes:
            raise too_large(app, f"the file is {size} bytes")
        upload.file.seek(0)
        return ParsedUpload(resource, dry_run, _clean_filename(upload.filename), size, upload.file)
    except BaseException:
        await form.close()
        raise


def file_chunks(file: IO[bytes]) -> Iterator[bytes]:
    """The spooled file in chunks (at least one, so an empty file is stored too)."""
    file.seek(0)
    first = True
    while True:
        chunk = file.read(_READ_CHUNK)
        if not chunk and not first:
            return
        first = False
        yield chunk
        if not chunk:
            return
