"""An export's download resumed from its ``.part`` file against a local file server
standing in for the download link: ``Range`` with ``If-Range``, and a file that changed
since (or a 206 for another range) fetched again from byte 0, never joined."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chatferry.client.config import Connection
from chatferry.client.download import download_file
from chatferry.client.http import Api
from support.file_server import FileServer, Route, file_server

OLD = json.dumps([{"n": n, "v": "old"} for n in range(2000)]).encode()
NEW = json.dumps([{"n": n, "v": "new!"} for n in range(1500)]).encode()
CUT = 10_000


@pytest.fixture
def files() -> Iterator[FileServer]:
    with file_server() as server:
        yield server


def _record(files: FileServer, body: bytes, rows: int) -> dict[str, Any]:
    digest = hashlib.sha256(body).hexdigest()
    return {"unique_id": "e-1", "status": "finished", "download_url": files.url("/e.json"),
            "size": len(body), "sha256": digest, "total_rows": rows}  # fmt: skip


def _download(files: FileServer, dest: Path, body: bytes, rows: int) -> None:
    api = Api(Connection(files.base_url, "app", "secret"))
    try:
        got = download_file(api, _record(files, body, rows), dest)
    finally:
        api.close()
    assert got.sha256 == hashlib.sha256(body).hexdigest() and dest.read_bytes() == body


def _part_left(dest: Path, data: bytes, validator: str) -> None:
    """A ``.part`` file and its validator, as an earlier run left them."""
    dest.with_name(dest.name + ".part").write_bytes(data)
    dest.with_name(dest.name + ".part.validator").write_text(validator)


def _left_from_a_cut(dest: Path, validator: str) -> None:
    _part_left(dest, OLD[:CUT], validator)


def test_an_unchanged_file_resumes_with_range_and_if_range(
    files: FileServer, tmp_path: Path
) -> None:
    files.routes["/e.json"] = Route(OLD, etag='"v1"')
    dest = tmp_path / "e.json"
    _left_from_a_cut(dest, '"v1"')
    _download(files, dest, OLD, 2000)
    (asked,) = files.hits("/e.json")
    assert asked["range"] == f"bytes={CUT}-" and asked["if-range"] == '"v1"'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.json"]


def test_a_file_changed_since_the_cut_is_downloaded_whole(
    files: FileServer, tmp_path: Path
) -> None:
    files.routes["/e.json"] = Route(NEW, etag='"v2"')
    dest = tmp_path / "e.json"
    _left_from_a_cut(dest, '"v1"')
    _download(files, dest, NEW, 1500)
    assert [h["if-range"] for h in files.hits("/e.json")] == ['"v1"']  # one GET: a 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.json"]


def test_a_cut_in_this_run_keeps_the_validator_and_resumes_with_it(
    files: FileServer, tmp_path: Path
) -> None:
    big = json.dumps([{"n": n, "v": "big"} for n in range(60_000)]).encode()
    assert len(big) > 1_300_000  # the client writes in chunks of 1 MiB
    modified = "Mon, 07 Dec 2026 01:00:00 GMT"
    files.routes["/e.json"] = Route(big, cut_first_after=1_300_000, last_modified=modified)
    _download(files, tmp_path / "e.json", big, 60_000)
    first, second = files.hits("/e.json")
    assert "range" not in first
    assert second["range"] == f"bytes={1 << 20}-" and second["if-range"] == modified


def test_a_206_for_another_range_starts_again_from_byte_0(
    files: FileServer, tmp_path: Path
) -> None:
    files.routes["/e.json"] = Route(OLD, etag='"v1"', range_from=CUT // 2)
    dest = tmp_path / "e.json"
    _left_from_a_cut(dest, '"v1"')
    _download(files, dest, OLD, 2000)
    assert ["range" in h for h in files.hits("/e.json")] == [True, False]


def test_a_part_longer_than_the_file_starts_again_from_byte_0(
    files: FileServer, tmp_path: Path
) -> None:
    files.routes["/e.json"] = Route(OLD, etag='"v1"')
    dest = tmp_path / "e.json"
    _part_left(dest, OLD + b"left by another file", '"v1"')
    _download(files, dest, OLD, 2000)  # a 416 (the .part is no prefix), then a whole GET
    assert ["range" in h for h in files.hits("/e.json")] == [True, False]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.json"]


def test_a_whole_part_left_by_a_killed_run_is_checked_and_kept(
    files: FileServer, tmp_path: Path
) -> None:
    files.routes["/e.json"] = Route(OLD, etag='"v1"')
    dest = tmp_path / "e.json"
    _part_left(dest, OLD, '"v1"')
    _download(files, dest, OLD, 2000)  # a 416 naming its size: nothing more to fetch
    assert len(files.hits("/e.json")) == 1


def test_a_whole_part_that_differs_from_the_record_is_fetched_again(
    files: FileServer, tmp_path: Path
) -> None:
    files.routes["/e.json"] = Route(OLD, etag='"v1"')
    dest = tmp_path / "e.json"
    _part_left(dest, bytes([OLD[0] ^ 0xFF]) + OLD[1:], '"v1"')
    _download(files, dest, OLD, 2000)  # its sha256 differs: one fresh download
    assert ["range" in h for h in files.hits("/e.json")] == [True, False]
