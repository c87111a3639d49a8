"""The attachment fetcher in process against a local file server: which addresses it may
connect to, that it connects to the address it checked, and redirects checked hop by hop."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from chatferry.client.attachments.addresses import AddressPins, why_refused
from chatferry.client.attachments.fetch import Download, Failed, FetchSettings, retry_after
from chatferry.client.attachments.pinned import pinned_client
from support.file_server import FileServer, Route, file_server

BODY = b"pinned bytes"


@pytest.fixture
def files() -> Iterator[FileServer]:
    with file_server() as server:
        server.routes["/a.bin"] = Route(BODY)
        yield server


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
     "224.0.0.1", "240.0.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert why_refused(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert why_refused(ipaddress.ip_address(address)) is None


def _download(pins: AddressPins, directory: Path) -> Download:
    return Download(pinned_client(pins, 2, 2.0), directory, FetchSettings(1000, retries=0))


def test_the_connection_goes_to_the_checked_address_with_the_host_name_kept(
    files: FileServer, tmp_path: Path
) -> None:
    pins = AddressPins(allow_private=False)
    pins._pins["cdn.invalid"] = "127.0.0.1"  # as if cdn.invalid had resolved to it, checked
    port = files.base_url.rsplit(":", 1)[1]
    got = _download(pins, tmp_path).fetch(f"http://cdn.invalid:{port}/a.bin")
    assert got.sha256 == hashlib.sha256(BODY).hexdigest()
    assert files.requests[0][1]["host"] == f"cdn.invalid:{port}"


def test_a_redirect_to_a_refused_address_is_not_followed(files: FileServer, tmp_path: Path) -> None:
    files.routes["/jump"] = Route(redirect_to=files.url("/a.bin"))
    pins = AddressPins(allow_private=False)
    pins._pins["cdn.invalid"] = "127.0.0.1"
    port = files.base_url.rsplit(":", 1)[1]
    with pytest.raises(Failed, match=r"refused address \(127\.0\.0\.1\)"):
        _download(pins, tmp_path).fetch(f"http://cdn.invalid:{port}/jump")
    assert [path for path, _ in files.requests] == ["/jump"]


def test_a_name_that_resolves_to_loopback_is_refused_before_connecting(
    files: FileServer, tmp_path: Path
) -> None:
    port = files.base_url.rsplit(":", 1)[1]
    with pytest.raises(
        Failed, match=r"refused address \((127\.0\.0\.1|::1)\): localhost is a loop"
    ):
        _download(AddressPins(allow_private=False), tmp_path).fetch(
            f"http://localhost:{port}/a.bin"
        )
    assert files.requests == []


def test_retry_after_takes_seconds_or_a_date_and_is_bounded() -> None:
    assert retry_after("2") == 2.0
    assert retry_after("100000") == 60.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after(later) or 0) <= 30
    assert retry_after("soon") is None and retry_after(None) is None
