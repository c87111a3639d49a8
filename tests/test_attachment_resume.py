"""The attachment fetcher in process against a local file server: a resumed download
sends ``If-Range`` and starts again when the file changed since the cut; and the overall
and per-host limits on requests in flight hold and are reached."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatferry.client.attachments import store
from chatferry.client.attachments.addresses import AddressPins
from chatferry.client.attachments.fetch import KEEP_VALIDATOR_BYTES, Download, FetchSettings
from chatferry.client.attachments.pinned import pinned_client
from chatferry.client.attachments.run import PER_HOST, AttachmentOptions, Entry, Fetcher
from support.file_server import FileServer, Route, file_server

OLD, NEW = os.urandom(60_000), os.urandom(50_000)
CUT = 20_000
MODIFIED = "Mon, 07 Dec 2026 01:00:00 GMT"


@pytest.fixture
def files() -> Iterator[FileServer]:
    with file_server() as server:
        yield server


def _fetch(files: FileServer, directory: Path, path: str) -> str:
    client = pinned_client(AddressPins(allow_private=True), 2, 5.0)
    settings = FetchSettings(4 << 20, retries=2, backoff_seconds=0.01)
    with client:
        return Download(client, directory, settings).fetch(files.url(path)).sha256


def _stored(directory: Path) -> list[bytes]:
    found = (directory / "attachments").iterdir()
    return [p.read_bytes() for p in found if p.is_file()]


def _partials(directory: Path) -> list[str]:
    return [p.name for p in (directory / "attachments" / ".partial").iterdir()]


@pytest.mark.parametrize(
    ("validator", "sent"), [({"etag": '"v1"'}, '"v1"'), ({"last_modified": MODIFIED}, MODIFIED)]
)
def test_a_file_unchanged_since_the_cut_is_resumed_with_range_and_if_range(
    files: FileServer, tmp_path: Path, validator: dict[str, str], sent: str
) -> None:
    files.routes["/f.bin"] = Route(OLD, cut_first_after=CUT, **validator)
    assert _fetch(files, tmp_path, "/f.bin") == hashlib.sha256(OLD).hexdigest()
    first, second = files.hits("/f.bin")
    assert "range" not in first and "if-range" not in first
    assert second["range"] == f"bytes={CUT}-" and second["if-range"] == sent
    assert _stored(tmp_path) == [OLD] and _partials(tmp_path) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [({"etag": '"v1"'}, {"etag": '"v2"'}),
     ({"last_modified": MODIFIED}, {"last_modified": "Mon, 07 Dec 2026 02:00:00 GMT"})],
)  # fmt: skip
def test_a_file_changed_since_the_cut_is_stored_whole_under_the_new_bytes_hash(
    files: FileServer, tmp_path: Path, old: dict[str, str], new: dict[str, str]
) -> None:
    changed = Route(NEW, **new)
    files.routes["/f.bin"] = Route(OLD, cut_first_after=CUT, after_cut=changed, **old)
    assert _fetch(files, tmp_path, "/f.bin") == hashlib.sha256(NEW).hexdigest()
    second = files.hits("/f.bin")[1]
    assert second["range"] == f"bytes={CUT}-" and second["if-range"] == old.popitem()[1]
    assert _stored(tmp_path) == [NEW] and _partials(tmp_path) == []


def test_a_partial_file_from_an_earlier_run_resumes_only_if_unchanged(
    files: FileServer, tmp_path: Path
) -> None:
    files.routes["/f.bin"] = Route(NEW, etag='"v2"')
    key = store.partial_key(files.url("/f.bin"))
    store.partial_path(tmp_path, key).write_bytes(OLD[:CUT])
    store.keep_validator(tmp_path, key, '"v1"')
    assert _fetch(files, tmp_path, "/f.bin") == hashlib.sha256(NEW).hexdigest()
    assert [h["if-range"] for h in files.hits("/f.bin")] == ['"v1"']
    assert _stored(tmp_path) == [NEW] and _partials(tmp_path) == []


def test_a_partial_file_an_earlier_run_left_without_a_validator_is_started_over(
    files: FileServer, tmp_path: Path
) -> None:
    files.routes["/f.bin"] = Route(NEW)
    store.partial_path(tmp_path, store.partial_key(files.url("/f.bin"))).write_bytes(OLD[:CUT])
    assert _fetch(files, tmp_path, "/f.bin") == hashlib.sha256(NEW).hexdigest()
    assert ["range" in h for h in files.hits("/f.bin")] == [False]
    assert _stored(tmp_path) == [NEW] and _partials(tmp_path) == []


def test_a_large_download_keeps_its_validator_beside_the_partial_file_until_done(
    files: FileServer, tmp_path: Path
) -> None:
    big = os.urandom(KEEP_VALIDATOR_BYTES + 1000)
    resumed = Route(big, etag='"big"', delay=1.0)  # time to look at the partial file
    files.routes["/f.bin"] = Route(big, cut_first_after=CUT, etag='"big"', after_cut=resumed)
    fetching = threading.Thread(target=_fetch, args=(files, tmp_path, "/f.bin"))
    fetching.start()
    deadline = time.monotonic() + 10
    while len(files.hits("/f.bin")) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    key = store.partial_key(files.url("/f.bin"))
    assert store.validator(tmp_path, key) == '"big"'  # a later run could resume it
    fetching.join()
    assert files.hits("/f.bin")[1]["if-range"] == '"big"'
    assert _stored(tmp_path) == [big] and _partials(tmp_path) == []


def test_a_206_for_another_range_starts_again_from_byte_0(
    files: FileServer, tmp_path: Path
) -> None:
    files.routes["/f.bin"] = Route(OLD, cut_first_after=CUT, range_from=CUT // 2, etag='"v1"')
    assert _fetch(files, tmp_path, "/f.bin") == hashlib.sha256(OLD).hexdigest()
    assert ["range" in h for h in files.hits("/f.bin")] == [False, True, False]
    assert _stored(tmp_path) == [OLD]


def test_a_weak_etag_is_not_sent_as_if_range(files: FileServer, tmp_path: Path) -> None:
    files.routes["/f.bin"] = Route(OLD, cut_first_after=CUT, etag='W/"v1"')
    assert _fetch(files, tmp_path, "/f.bin") == hashlib.sha256(OLD).hexdigest()
    second = files.hits("/f.bin")[1]
    assert second["range"] == f"bytes={CUT}-" and "if-range" not in second


# ---------------------------------------------------------------- limits in flight


def _second_host() -> str:
    """Another name of 127.0.0.1: ``localhost`` where it resolves there first."""
    first = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)[0][4][0]
    return "localhost" if first == "127.0.0.1" else "127.1"


def _fetch_all(files: FileServer, tmp_path: Path, concurrency: int, hosts: list[str]) -> None:
    files.default = Route(b"slow file", delay=0.25)
    port = files.base_url.rsplit(":", 1)[1]
    urls = [f"http://{host}:{port}/{n}.bin" for n in range(8) for host in hosts]
    entries: dict[str, Entry] = {}
    options = AttachmentOptions(concurrency=concurrency, allow_private=True)
    Fetcher(tmp_path, options, entries.__setitem__).run(urls)
    assert all("sha256" in entries[url] for url in urls), entries


@pytest.mark.parametrize(
    ("concurrency", "host_count", "per_host", "overall"),
    [(8, 1, PER_HOST, PER_HOST), (8, 2, PER_HOST, 8), (3, 1, 3, 3)],
    ids=["per-host-limit", "both-limits", "overall-limit"],
)
def test_requests_in_flight_stay_within_the_limits_and_reach_them(
    files: FileServer, tmp_path: Path, concurrency: int, host_count: int, per_host: int,
    overall: int,
) -> None:  # fmt: skip
    hosts = ["127.0.0.1", _second_host()][:host_count]
    _fetch_all(files, tmp_path, concurrency, hosts)
    assert sorted(files.peaks) == sorted(hosts)
    assert max(files.peaks.values()) == per_host, files.peaks
    assert files.peak_total == overall, (files.peaks, files.peak_total)
