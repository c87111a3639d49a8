"""Downloads an export's file: resumable with ``Range``, verified before it is kept.

The bytes go to ``<dest>.part``; a broken connection resumes from where it stopped (also
on the next run of the command, from the ``.part`` file), sending ``If-Range`` with the
ETag or Last-Modified kept in ``<dest>.part.validator`` (a file changed since is fetched
whole again: see chatferry.client.ranges); an expired link is refreshed by
fetching the record again. The file gets its final name only after its size, sha256 and
row count match the record (the checks the record allows: a vendor's record has no sha256;
when the sha256 matches, the bytes are the server's own and are not parsed again to count
their rows, the record's count is taken).

Given recipients, the body is encrypted as it streams in (``<dest>`` is then an age file):
its plaintext never reaches the disk, and is checked the same way (size, sha256 and rows of
the plaintext) before the encrypted file gets its name. Such a download cannot resume from
a byte offset (the encrypted temporary file is not a prefix it could continue): a broken
connection downloads the file again from its start.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from chatferry.client.errors import ClientError
from chatferry.client.files import open_private, private_dir
from chatferry.client.http import Api, network_error
from chatferry.client.ranges import range_start, range_validator, resume_headers
from chatferry.client.records import Record

if TYPE_CHECKING:
    import httpx

    from chatferry.client.crypto import Recipient

MAX_STALLS = 6
CHUNK = 1024 * 1024
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Expected:
    """What the record says about its file (``None``: the server does not say)."""

    size: int | None
    sha256: str | None
    rows: int | None


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    rows: int
    seconds: float
    sha256_checked: bool


class _LinkRefused(Exception):
    """The link answered 403/404/410: it expired or the file is gone."""


class _Mismatch(ClientError):
    """The file differs from its record (size, sha256 or rows)."""


def expected_of(record: Record) -> Expected:
    def whole(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    sha = record.get("sha256")
    valid_sha = isinstance(sha, str) and len(sha) == 64
    return Expected(
        size=whole(record.get("size")) or None,
        sha256=sha.lower() if valid_sha and isinstance(sha, str) else None,
        rows=whole(record.get("total_rows")),
    )


def shown(url: str) -> str:
    """A link without its query string: signatures never reach a message or a log."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def file_digest(path: Path) -> tuple[int, str]:
    """The file's size and sha256 (hex)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def count_rows(data: bytes, name: str) -> int:
    """The number of objects in a JSON array; ClientError if it is not one."""
    try:
        rows = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _Mismatch(f"{name} is not valid JSON ({exc})") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise _Mismatch(f"{name} is not a JSON array of objects")
    return len(rows)


def _content_range_total(response: httpx.Response) -> int | None:
    value = response.headers.get("content-range", "")
    total = value.rsplit("/", 1)[-1]
    return int(total) if total.isdigit() else None


class _PartDigest:
    """The sha256 of a ``.part`` file, taken as its bytes are written; read again from the
    file only when a write starts anywhere but where the hashing stopped (a ``.part`` left
    by an earlier run, a fresh start from byte 0). The file is then not read back whole
    after the download to be checked (55.9 MB took 50 ms). Each chunk is hashed on a
    thread of its own while the next one is received (hashlib lets go of the GIL): at
    most two chunks are in memory."""

    def __init__(self, part: Path) -> None:
        self.part = part
        self._digest = hashlib.sha256()
        self.size = 0
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="sha256")
        self._hashing: Future[None] | None = None

    def __enter__(self) -> _PartDigest:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._hasher.shutdown(wait=True)

    def start_at(self, offset: int) -> None:
        """Hashing continues at ``offset``: the bytes before it are the file's."""
        if offset == self.size:
            return
        self._settle()
        self._digest, self.size = hashlib.sha256(), 0
        if offset:
            with self.part.open("rb") as handle:
                while self.size < offset and (chunk := handle.read(min(CHUNK, offset - self.size))):
                    self.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._settle()
        self._hashing = self._hasher.submit(self._digest.update, chunk)
        self.size += len(chunk)

    def hexdigest(self) -> str:
        self._settle()
        return self._digest.hexdigest()

    def _settle(self) -> None:
        """Waits for the chunk being hashed."""
        if self._hashing is not None:
            self._hashing.result()
            self._hashing = None


def _receive(
    response: httpx.Response,
    part: Path,
    offset: int,
    progress: Progress | None,
    digest: _PartDigest,
) -> int:
    """Appends (206) or writes (200) the body to ``part``; returns the bytes on disk."""
    if response.status_code == 200:
        offset = 0
        _keep_validator(part, range_validator(response))
    length = response.headers.get("content-length", "")
    total = offset + int(length) if length.isdigit() else None
    digest.start_at(offset)
    with open_private(part, "r+b" if offset else "wb") as handle:
        handle.seek(offset)
        handle.truncate()
        for chunk in response.iter_bytes(CHUNK):
            handle.write(chunk)
            digest.update(chunk)
            offset += len(chunk)
            if progress is not None:
                progress(offset, total)
        handle.flush()
        os.fsync(handle.fileno())
    return offset


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def _keep_validator(part: Path, validator: str | None) -> None:
    """Notes (or forgets, with None) what ``If-Range`` sends when ``part`` is resumed."""
    path = _validator_path(part)
    path.unlink(missing_ok=True)
    if validator is not None:
        with open_private(path) as handle:
            handle.write(validator.encode())


def _fetch_once(
    api: Api, url: str, part: Path, progress: Progress | None, digest: _PartDigest
) -> None:
    """One GET of the link, resuming after the bytes already in ``part`` (from byte 0 when
    the server answers a 206 for another range than the one asked)."""
    offset = part.stat().st_size if part.exists() else 0
    validator = _validator_path(part)
    kept = validator.read_text() if offset and validator.is_file() else None
    headers = {"Accept-Encoding": "identity", **resume_headers(offset, kept)}
    with api.files.stream("GET", url, headers=headers) as response:
        if offset and response.status_code == 206 and range_start(response) != offset:
            part.unlink()
            return _fetch_once(api, url, part, progress, digest)
        if response.status_code == 416 and offset:
            if _content_range_total(response) != offset:
                part.unlink()  # not a prefix of this file: start again from byte 0
                return _fetch_once(api, url, part, progress, digest)
            return
        if response.status_code in (403, 404, 410):
            raise _LinkRefused(response.status_code)
        if response.status_code not in (200, 206):
            raise ClientError(
                f"the download link {shown(url)} answered HTTP {response.status_code}"
            )
        _receive(response, part, offset, progress, digest)


def _fetch(
    api: Api,
    url: str,
    part: Path,
    progress: Progress | None,
    refresh: Callable[[], str] | None,
    digest: _PartDigest,
) -> None:
    """Fetches until the body arrived whole; resumes after breaks, refreshes dead links."""
    import httpx

    stalls, refreshed = 0, False
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            _fetch_once(api, url, part, progress, digest)
            return
        except httpx.TransportError as exc:
            after = part.stat().st_size if part.exists() else 0
            stalls = 0 if after > before else stalls + 1
            if stalls >= MAX_STALLS:
                raise network_error(exc, shown(url), "download") from exc
            time.sleep(min(0.2 * 2**stalls, 5.0))
        except _LinkRefused as refused:
            if refresh is None or refreshed:
                raise _gone(url, refused) from None
            url, refreshed = refresh(), True


def _check(data: bytes, expected: Expected, label: str, name: str) -> tuple[int, str, int]:
    """The file's size, sha256 and rows; _Mismatch when they differ from the record."""
    size, sha256 = len(data), hashlib.sha256(data).hexdigest()
    return size, sha256, _check_digest(size, sha256, lambda: data, expected, label, name)


def _check_digest(
    size: int, sha256: str, data: Callable[[], bytes], expected: Expected, label: str, name: str
) -> int:
    """The file's rows once its size and sha256 match the record (``data`` is read only
    to count rows the record cannot vouch for); _Mismatch when anything differs."""
    if expected.size is not None and size != expected.size:
        raise _Mismatch(f"{label}: the file has {size} bytes, the record says {expected.size}")
    if expected.sha256 is not None and sha256 != expected.sha256:
        raise _Mismatch(f"{label}: the file's sha256 differs from the record's")
    if expected.sha256 is not None and expected.rows is not None:
        return expected.rows  # the server's own bytes: its count stands
    rows = count_rows(data(), name)
    if expected.rows is not None and rows != expected.rows:
        raise _Mismatch(f"{label}: the file has {rows} rows, the record says {expected.rows}")
    return rows


def _fetch_sealed_once(
    api: Api,
    url: str,
    dest: Path,
    recipients: Sequence[Recipient],
    progress: Progress | None,
    check: Callable[[bytes], int],
) -> tuple[int, str, int]:
    """One GET of the whole body, encrypted into ``dest`` as it arrives. The plaintext is
    checked (in memory, as a plain download's check reads its file) before ``dest`` gets
    its name; returns the encrypted file's size and sha256 and the plaintext's rows."""
    from chatferry.client.crypto import encrypting_writer

    plain = io.BytesIO()
    with api.files.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
        if response.status_code in (403, 404, 410):
            raise _LinkRefused(response.status_code)
        if response.status_code != 200:
            raise ClientError(
                f"the download link {shown(url)} answered HTTP {response.status_code}"
            )
        length = response.headers.get("content-length", "")
        total = int(length) if length.isdigit() else None
        with encrypting_writer(dest, recipients) as writer:
            for chunk in response.iter_bytes(CHUNK):
                plain.write(chunk)
                writer.write(chunk)
                if progress is not None:
                    progress(plain.tell(), total)
            rows = check(plain.getvalue())
    return writer.size, writer.sha256, rows


def _fetch_sealed(
    api: Api,
    url: str,
    dest: Path,
    recipients: Sequence[Recipient],
    progress: Progress | None,
    refresh: Callable[[], str] | None,
    check: Callable[[bytes], int],
) -> tuple[int, str, int]:
    """Downloads and encrypts until a whole body arrived: a break starts it again."""
    import httpx

    breaks, refreshed = 0, False
    while True:
        try:
            return _fetch_sealed_once(api, url, dest, recipients, progress, check)
        except httpx.TransportError as exc:
            breaks += 1
            if breaks >= MAX_STALLS:
                raise network_error(exc, shown(url), "download") from exc
            time.sleep(min(0.2 * 2**breaks, 5.0))
        except _LinkRefused as refused:
            if refresh is None or refreshed:
                raise _gone(url, refused) from None
            url, refreshed = refresh(), True


def _gone(url: str, refused: _LinkRefused) -> ClientError:
    return ClientError(
        f"the download link {shown(url)} answered HTTP {refused.args[0]}: the "
        "link expired or the file is no longer stored; fetch the export again"
    )


def _download_sealed(
    api: Api,
    url: str,
    dest: Path,
    recipients: Sequence[Recipient],
    expected: Expected,
    label: str,
    progress: Progress | None = None,
    refresh: Callable[[], str] | None = None,
    on_plaintext: Callable[[bytes], None] | None = None,
) -> tuple[int, str, int]:
    """An encrypted download: one fresh try after a body that differs from the record.
    ``on_plaintext`` sees the checked plaintext (in memory) before the file gets its name."""

    def check(data: bytes) -> int:
        rows = _check(data, expected, label, dest.name)[2]
        if on_plaintext is not None:
            on_plaintext(data)
        return rows

    for attempt in (1, 2):
        try:
            return _fetch_sealed(api, url, dest, recipients, progress, refresh, check)
        except _Mismatch:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def download_file(
    api: Api,
    record: Record,
    dest: Path,
    progress: Progress | None = None,
    refresh: Callable[[], str] | None = None,
    recipients: Sequence[Recipient] = (),
    on_plaintext: Callable[[bytes], None] | None = None,
) -> Downloaded:
    """Downloads the finished export ``record`` to ``dest``, verified; resumes a ``.part``.
    With ``recipients``, ``dest`` is written encrypted to them (and its size and sha256 are
    the encrypted file's), and ``on_plaintext`` gets the checked plaintext in memory."""
    url = record.get("download_url")
    label = f"export {record.get('unique_id')}"
    if not isinstance(url, str) or not url:
        raise ClientError(f"{label} has no download link (status {record.get('status')})")
    expected = expected_of(record)
    private_dir(dest.parent)
    started = time.monotonic()
    if recipients:
        size, sha256, rows = _download_sealed(
            api, url, dest, recipients, expected, label, progress, refresh, on_plaintext
        )
    else:
        size, sha256, rows = _download_plain(api, url, dest, expected, label, progress, refresh)
    seconds = time.monotonic() - started
    return Downloaded(dest, size, sha256, rows, seconds, expected.sha256 is not None)


def _download_plain(
    api: Api,
    url: str,
    dest: Path,
    expected: Expected,
    label: str,
    progress: Progress | None = None,
    refresh: Callable[[], str] | None = None,
) -> tuple[int, str, int]:
    part = dest.with_name(dest.name + ".part")
    with _PartDigest(part) as digest:
        for attempt in (1, 2):
            _fetch(api, url, part, progress, refresh, digest)
            digest.start_at(part.stat().st_size)  # a 416 for a whole .part: nothing hashed
            size, sha256 = digest.size, digest.hexdigest()
            try:
                rows = _check_digest(size, sha256, part.read_bytes, expected, label, part.name)
                checked = size, sha256, rows
                break
            except _Mismatch:
                part.unlink(missing_ok=True)  # a corrupt file: one fresh download, then give up
                if attempt == 2:
                    raise
    os.replace(part, dest)
    _keep_validator(part, None)
    return checked
