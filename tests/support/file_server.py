"""A stand-in for a CDN: an HTTP file server on 127.0.0.1 in a thread of the test.

Each path answers from a :class:`Route`: the bytes, and how to misbehave (a status first,
a delay, a cut after some bytes, another version of the file after the cut). Every request
is logged (path and headers), so a test can assert what a client asked for, or that it
asked for nothing; the requests in their delay are counted per Host (and their peaks kept).
A Range is answered 206 unless ``If-Range`` names another version than the route's (its
ETag, else its Last-Modified): then 200 and the whole file, as HTTP says.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    first_statuses: list[int] = field(default_factory=list)  # answered once each, in order
    retry_after: str = ""
    delay: float = 0.0
    cut_first_after: int | None = None  # the first answer stops after this many bytes
    redirect_to: str = ""
    etag: str = ""
    last_modified: str = ""
    after_cut: Route | None = None  # the path answers from this route once cut
    range_from: int | None = None  # a 206 starts here, whatever the Range asked
    # The connection is closed after the answer without a word (as a server closes a
    # kept-alive connection that sat idle): the client's next request on it fails.
    drop_connection: bool = False

    @property
    def validator(self) -> str:
        return self.etag or self.last_modified


@dataclass
class FileServer:
    routes: dict[str, Route] = field(default_factory=dict)
    default: Route | None = None  # answers every path not in routes
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    base_url: str = ""
    in_flight: dict[str, int] = field(default_factory=dict)  # Host name -> requests now
    peaks: dict[str, int] = field(default_factory=dict)  # Host name -> most at once
    peak_total: int = 0
    connections: int = 0  # TCP connections accepted
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def hits(self, path: str) -> list[dict[str, str]]:
        return [headers for seen, headers in self.requests if seen == path]

    @contextmanager
    def counted(self, host: str) -> Iterator[None]:
        """Counts a request in flight for ``host`` (its delay, before any byte is sent:
        a client cannot start its next request before the count is down again)."""
        with self._lock:
            self.in_flight[host] = self.in_flight.get(host, 0) + 1
            self.peaks[host] = max(self.peaks.get(host, 0), self.in_flight[host])
            self.peak_total = max(self.peak_total, sum(self.in_flight.values()))
        try:
            yield
        finally:
            with self._lock:
                self.in_flight[host] -= 1


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return None

        def setup(self) -> None:
            with server._lock:
                server.connections += 1
            super().setup()

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.requests.append((self.path, headers))
            route = server.routes.get(self.path, server.default)
            if route is None:
                self._plain(404)
            elif route.first_statuses:
                self._plain(route.first_statuses.pop(0), route.retry_after)
            elif route.redirect_to:
                self.send_response(302)
                self.send_header("Location", route.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                with server.counted(headers.get("host", "").rsplit(":", 1)[0]):
                    time.sleep(route.delay)
                self._body(route, headers)

        def _plain(self, status: int, retry_after: str = "") -> None:
            self.send_response(status)
            if retry_after:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _body(self, route: Route, headers: dict[str, str]) -> None:
            start = _range_start(route, headers)
            if start and start >= len(route.body):  # RFC 9110: a range past the end
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(route.body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = route.body[start:]
            self.send_response(206 if start else route.status)
            if start:
                self.send_header(
                    "Content-Range", f"bytes {start}-{len(route.body) - 1}/{len(route.body)}"
                )
            if route.etag:
                self.send_header("ETag", route.etag)
            if route.last_modified:
                self.send_header("Last-Modified", route.last_modified)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if route.cut_first_after is not None:
                cut, route.cut_first_after = route.cut_first_after, None
                if route.after_cut is not None:
                    server.routes[self.path] = route.after_cut
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)
            self.close_connection = route.drop_connection

    return Handler


def _range_start(route: Route, headers: dict[str, str]) -> int:
    """Where the answer starts: the Range asked (0: the whole file, also when ``If-Range``
    names another version), or the route's ``range_from``."""
    wanted = headers.get("range", "")
    if not wanted.startswith("bytes="):
        return 0
    if headers.get("if-range", route.validator) != route.validator:
        return 0
    start = int(wanted[6:].split("-")[0])
    return start if route.range_from is None else route.range_from


@contextmanager
def file_server(tls: ssl.SSLContext | None = None) -> Iterator[FileServer]:
    """The server on 127.0.0.1 (``tls``: over https, with that context's certificate)."""
    state = FileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    state.base_url = f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
