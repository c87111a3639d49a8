"""The HTTP edge of a real ``chatferry serve`` (issue 7): stalled connections closed,
clients that leave logged in one line, no signature in the access log, safe headers,
HEAD and Range errors on the download."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.apps import Credentials, NewApp
from support.exports import export_and_wait
from support.http import EXPORTS, IMPORTS, assert_error
from support.servers import ServerProcess, StartServer
from support.waiting import wait_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

FAST_DEADLINES = {
    "CHATFERRY_HTTP_HEADER_TIMEOUT_SECONDS": "1",
    "CHATFERRY_HTTP_BODY_TIMEOUT_SECONDS": "1.5",
}


def _address(server: ServerProcess) -> tuple[str, int]:
    url = httpx.URL(server.base_url)
    assert url.host == "127.0.0.1" and url.port
    return url.host, url.port


def _connect(server: ServerProcess, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(_address(server), timeout=10)
    sock.sendall(first_bytes)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (reads end, or reset)."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture
def stalled() -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


def test_stalled_connections_are_closed_and_others_still_served(
    start_server: StartServer, new_app: NewApp, stalled: list[socket.socket]
) -> None:
    creds = new_app()
    server = start_server(FAST_DEADLINES)
    # Half a request line, and a request whose body never arrives in full.
    stalled += [_connect(server, b"GET /api/v2.1/re") for _ in range(40)]
    body_start = (
        f"POST {EXPORTS} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
        f"QISCUS-SDK-APP-ID: {creds.app_id}\r\nQISCUS-SDK-SECRET: {creds.secret}\r\n\r\n"
        '{"type": '
    ).encode()
    stalled += [_connect(server, body_start) for _ in range(10)]
    assert server.http.get(EXPORTS, headers=creds.headers).status_code == 200
    started = time.monotonic()
    for sock in stalled:
        sock.settimeout(max(0.1, 10 - (time.monotonic() - started)))
        assert _closed_by_server(sock)
    assert time.monotonic() - started < 8
    log = server.log_path.read_text()
    assert log.count("closed a stalled connection") >= 50
    assert "stage=headers" in log and "stage=body" in log
    assert server.http.get(EXPORTS, headers=creds.headers).status_code == 200


def _multipart_head(creds: Credentials, declared: int) -> bytes:
    boundary = "edge-boundary"
    return (
        f"POST {IMPORTS} HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"QISCUS-SDK-APP-ID: {creds.app_id}\r\nQISCUS-SDK-SECRET: {creds.secret}\r\n\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\nusers\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="u.json"\r\n'
        "Content-Type: application/json\r\n\r\n["
    ).encode()


def test_a_client_leaving_mid_upload_is_one_log_line(
    start_server: StartServer, new_app: NewApp
) -> None:
    creds = new_app()
    server = start_server()
    sock = _connect(server, _multipart_head(creds, 2_000_000))
    sock.sendall(b'{"Email": "a@x.com"},' * 20_000)  # 420 KB of the promised 2 MB
    sock.close()

    def logged() -> str | None:
        text = server.log_path.read_text()
        return text if "client disconnected" in text else None

    log = wait_for(logged, timeout=10)
    assert log.count("client disconnected") == 1
    assert "Traceback" not in log and "unhandled error" not in log
    # Nothing was recorded, and the server goes on.
    listed = server.http.get(IMPORTS, headers=creds.headers).json()["results"]
    assert listed["backup_histories"] == []


@pytest.fixture
def finished(start_server: StartServer, new_app: NewApp) -> tuple[ServerProcess, dict[str, Any]]:
    creds = new_app()
    server = start_server()
    return server, export_and_wait(server.http, creds.headers, type="users")


def test_the_access_log_never_holds_a_signature(
    finished: tuple[ServerProcess, dict[str, Any]],
) -> None:
    server, record = finished
    signature = record["download_url"].split("signature=")[1]
    assert server.http.get(record["download_url"]).status_code == 200
    assert server.http.get(record["download_url"].replace(signature, "0" * 64)).status_code == 403
    log = wait_for(lambda: (t := server.log_path.read_text()).count("/file?") >= 2 and t)
    assert signature not in log
    assert re.findall(r"signature=([^&\s\"]*)", log) == ["[redacted]", "[redacted]"]


def _assert_safe_headers(response: httpx.Response) -> None:
    assert response.headers.get("cache-control") == "no-store", response.headers
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert "server" not in response.headers


def test_every_answer_has_safe_headers_and_no_server_banner(
    finished: tuple[ServerProcess, dict[str, Any]], new_app: NewApp
) -> None:
    server, record = finished
    creds = new_app()
    answers = [
        server.http.get(EXPORTS, headers=creds.headers),
        server.http.get(EXPORTS),  # 401
        server.http.get(f"{EXPORTS}/nope", headers=creds.headers),  # 404
        server.http.post(EXPORTS, content=b"{", headers=creds.headers),  # 400
        server.http.get("/nowhere"),
        server.http.get(record["download_url"]),
        server.http.head(record["download_url"]),
        server.http.get(record["download_url"], headers={"Range": "bytes=0-3"}),
        server.http.get(record["download_url"], headers={"Range": "bytes=9999999-"}),
        server.http.get("/healthz"),
        server.http.get("/openapi.json"),
    ]
    for response in answers:
        _assert_safe_headers(response)
        assert response.headers.get("x-chatferry-extensions") == "1"  # what the client reads


def test_head_on_the_download_gives_the_headers_without_the_body(
    finished: tuple[ServerProcess, dict[str, Any]],
) -> None:
    server, record = finished
    full = server.http.get(record["download_url"])
    head = server.http.head(record["download_url"])
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(full.content) == record["size"]
    for name in ("content-type", "content-disposition", "accept-ranges", "etag"):
        assert head.headers[name] == full.headers[name], name
    forged = record["download_url"].replace("signature=", "signature=0")
    assert server.http.head(forged).status_code == 403


@pytest.mark.parametrize(
    "value", [b"bytes=abc", b"items=0-1", b"bytes=", b"bytes=-", b"bytes=\xc3\xa9-"]
)
def test_a_malformed_range_is_a_400_in_the_envelope(
    finished: tuple[ServerProcess, dict[str, Any]], value: bytes
) -> None:
    server, record = finished
    response = server.http.get(record["download_url"], headers={"Range": value})
    assert_error(response, 400, "Range")


def test_a_range_outside_the_file_is_a_416_in_the_envelope(
    finished: tuple[ServerProcess, dict[str, Any]],
) -> None:
    server, record = finished
    size = record["size"]
    response = server.http.get(record["download_url"], headers={"Range": f"bytes={size}-"})
    assert_error(response, 416, "past the end")
    assert response.headers["content-range"] == f"bytes */{size}"
    assert response.json()["error"]["size"] == size
