"""The attachment downloads' HTTP client against a local file server: connections kept
alive and reused, a kept connection the server closed meanwhile replaced once, a body cut
short is an error (never a short file), https verified for the URL's host name; an
encrypted download, small or large."""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest
from pyrage import x25519

from chatferry.client.attachments.addresses import AddressPins
from chatferry.client.attachments.fetch import (
    SEAL_IN_MEMORY_BYTES,
    Download,
    Failed,
    FetchSettings,
)
from chatferry.client.attachments.pinned import PinnedClient, TransportError, pinned_client
from chatferry.client.attachments.sealed import SealedStore
from support.file_server import FileServer, Route, file_server
from support.tls import localhost_certificate

BODY = b"kept-alive bytes " * 100


@pytest.fixture
def files() -> Iterator[FileServer]:
    with file_server() as server:
        server.default = Route(BODY)
        yield server


def _get(client: PinnedClient, url: str) -> bytes:
    with client.stream("GET", url) as response:
        assert response.status_code == 200
        return b"".join(response.iter_raw())


def test_one_connection_serves_request_after_request(files: FileServer) -> None:
    with pinned_client(AddressPins(allow_private=True), 2, 5.0) as client:
        got = [_get(client, files.url(f"/{n}.bin")) for n in range(5)]
    assert got == [BODY] * 5
    assert files.connections == 1
    assert files.requests[0][1]["accept-encoding"] == "identity"
    assert files.requests[0][1]["user-agent"].startswith("chatferry-client/")


def test_a_kept_connection_the_server_closed_is_replaced_once(files: FileServer) -> None:
    files.routes["/last.bin"] = Route(BODY, drop_connection=True)
    with pinned_client(AddressPins(allow_private=True), 2, 5.0) as client:
        assert _get(client, files.url("/last.bin")) == BODY
        assert _get(client, files.url("/next.bin")) == BODY
    assert [path for path, _ in files.requests] == ["/last.bin", "/next.bin"]
    assert files.connections == 2


def test_a_body_left_unread_closes_its_connection(files: FileServer) -> None:
    with pinned_client(AddressPins(allow_private=True), 2, 5.0) as client:
        with client.stream("GET", files.url("/a.bin")) as response:
            assert response.status_code == 200  # the body is not read
        assert _get(client, files.url("/b.bin")) == BODY
        assert _get(client, files.url("/c.bin")) == BODY
    assert files.connections == 2


def test_a_body_cut_short_is_an_error_not_a_short_file(files: FileServer) -> None:
    files.routes["/cut.bin"] = Route(BODY, cut_first_after=100)
    with (
        pinned_client(AddressPins(allow_private=True), 2, 5.0) as client,
        client.stream("GET", files.url("/cut.bin")) as response,
        pytest.raises(TransportError, match=f"{len(BODY) - 100} bytes short"),
    ):
        b"".join(response.iter_raw())


def test_https_is_verified_for_the_urls_host_name_at_the_pinned_address(tmp_path: Path) -> None:
    """A certificate for ``localhost``: trusted, https://localhost:PORT is fetched (SNI and
    Host name localhost); the same server by its bare address, or with the client's
    default CAs, fails verification and nothing is stored."""
    certificate = localhost_certificate(tmp_path)
    trusted = certificate.trusted()
    pins = AddressPins(allow_private=True)
    with file_server(certificate.server()) as files:
        files.default = Route(BODY)
        port = files.base_url.rsplit(":", 1)[1]

        def fetch(url: str, tls: ssl.SSLContext | None) -> str:
            client = pinned_client(pins, 2, 5.0, tls)
            return Download(client, tmp_path, FetchSettings(1 << 20, retries=0)).fetch(url).sha256

        assert fetch(f"https://localhost:{port}/a.bin", trusted) == hashlib.sha256(BODY).hexdigest()
        assert files.requests[0][1]["host"] == f"localhost:{port}"
        with pytest.raises(Failed, match=r"connection failed .*certificate"):
            fetch(f"https://127.0.0.1:{port}/b.bin", trusted)
        with pytest.raises(Failed, match=r"connection failed .*certificate verify failed"):
            fetch(f"https://localhost:{port}/c.bin", None)
    assert [path for path, _ in files.requests] == ["/a.bin"]
    stored = [p.name for p in (tmp_path / "attachments").iterdir() if p.is_file()]
    assert stored == [hashlib.sha256(BODY).hexdigest()]


@pytest.mark.parametrize("size", [50_000, SEAL_IN_MEMORY_BYTES + 1], ids=["in-memory", "streamed"])
def test_an_encrypted_download_holds_the_bytes_and_names_its_age_file(
    files: FileServer, tmp_path: Path, size: int
) -> None:
    """A body up to SEAL_IN_MEMORY_BYTES is encrypted in one call, a larger one as it
    streams: either way the age file opens to the body, its size and sha256 are the ones
    recorded, and no plaintext byte is on disk."""
    body = os.urandom(size)
    files.routes["/f.bin"] = Route(body)
    identity = x25519.Identity.generate()
    sealed = SealedStore(tmp_path, [identity.to_public()])
    client = pinned_client(AddressPins(allow_private=True), 2, 5.0)
    got = Download(client, tmp_path, FetchSettings(1 << 22), sealed=sealed).fetch(
        files.url("/f.bin")
    )
    stored = tmp_path / got.file
    assert (got.sha256, got.bytes) == (hashlib.sha256(body).hexdigest(), size)
    assert pyrage.decrypt(stored.read_bytes(), [identity]) == body
    assert (got.encrypted_bytes, got.encrypted_sha256) == (
        stored.stat().st_size, hashlib.sha256(stored.read_bytes()).hexdigest(),
    )  # fmt: skip
    on_disk = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert on_disk == [stored] and stored.stat().st_mode & 0o777 == 0o600
