"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records every
request and answers as the test scripts it (a status, or a long sleep)."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support.waiting import wait_for


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived


@dataclass
class Receiver:
    """``answers``: the statuses of the next requests, in order (then ``default``);
    a request to a path starting with /slow sleeps ``slow_seconds`` first."""

    port: int = 0
    answers: list[int] = field(default_factory=list)
    default: int = 200
    slow_seconds: float = 30.0
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
        wait_for(lambda: len(self.on(path)) >= count, timeout)
        return self.on(path)

    def answer(self) -> int:
        with self.lock:
            return self.answers.pop(0) if self.answers else self.default


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            got = Received(
                self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
            )
            with receiver.lock:
                receiver.received.append(got)
            if self.path.startswith("/slow"):
                receiver.release.wait(receiver.slow_seconds)
            status = receiver.answer()
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


@contextmanager
def serve_receiver(receiver: Receiver, tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """Runs ``receiver`` on 127.0.0.1 (on its port, or a free one) until the block ends;
    over TLS with ``tls`` (a server context)."""
    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), _handler(receiver))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    server.block_on_close = False
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="test-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()  # a sleeping answer ends now
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver(Receiver()) as running:
        yield running
