"""Bounded metrics (issue 21): made-up methods and paths do not grow /metrics or the
server's memory; OPTIONS is answered with Allow; the serve warning about CHATFERRY_BASE_URL."""

from __future__ import annotations

import random
import socket
import string
import threading
from pathlib import Path
from typing import BinaryIO

import pytest

from chatferry.api.listen import base_url_warning, is_loopback
from chatferry.obs.metrics import method_label
from support.servers import ServerProcess, StartServer

ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

REQUESTS = 20_000
SENDERS = 4
BATCH = 50
PATHS = ("/healthz", "/api/v2.1/rest/exports", "/api/v2.1/rest/exports/x", "/metrics")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def random_request(rng: random.Random) -> tuple[str, str]:
    method = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 12)))
    if rng.random() < 0.5:
        return method, rng.choice(PATHS)
    return method, "/" + "/".join(rng.choices(string.ascii_lowercase + string.digits, k=12))


def flood(server: ServerProcess, count: int, seed: int) -> None:
    """``count`` requests with made-up methods and paths, from SENDERS connections, each
    sending its requests pipelined in batches (a cheap client: the server is measured)."""
    host, port = server.base_url.removeprefix("http://").split(":")

    def send(part: int) -> None:
        rng = random.Random(seed * 100 + part)
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            reader = sock.makefile("rb")
            for _ in range(count // SENDERS // BATCH):
                batch = [random_request(rng) for _ in range(BATCH)]
                sock.sendall(b"".join(
                    f"{m} {p} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() for m, p in batch
                ))  # fmt: skip
                for _ in batch:
                    assert read_status(reader) in (404, 405)

    threads = [threading.Thread(target=send, args=(part,)) for part in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def read_status(reader: BinaryIO) -> int:
    """Reads one response (its headers and Content-Length body); returns its status."""
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    reader.read(length)
    return status


@ON_SQLITE
def test_made_up_methods_and_paths_keep_metrics_and_memory_flat(
    start_server: StartServer,
) -> None:
    server = start_server({"CHATFERRY_LOG_LEVEL": "WARNING"}, "--no-worker")
    flood(server, 2_000, seed=1)  # every label value the flood can make, and warm caches
    size_before = len(server.http.get("/metrics").content)
    rss_before = rss_kb(server.process.pid)
    flood(server, REQUESTS, seed=2)
    metrics = server.http.get("/metrics").text
    growth_kb = (rss_kb(server.process.pid) - rss_before) / 1024
    print(f"/metrics {size_before} -> {len(metrics)} bytes; RSS +{growth_kb:.1f} MB")
    assert len(metrics) - size_before < 3_000  # the counters' values, not new series
    assert growth_kb < 8 * 1024
    assert 'method="other",route="unmatched"' in metrics
    methods = {line.split('method="')[1].split('"')[0] for line in metrics.splitlines()
               if 'method="' in line}  # fmt: skip
    assert methods <= {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"}


def test_method_labels_come_from_a_fixed_set() -> None:
    assert method_label("GET") == "GET"
    assert method_label("PROPFIND") == "other"
    assert method_label("get") == "other"


@ON_SQLITE
def test_options_answers_with_every_method_of_the_path(start_server: StartServer) -> None:
    server = start_server({}, "--no-worker")
    expected = {
        "/api/v2.1/rest/exports": "GET, OPTIONS, POST",
        "/api/v2.1/rest/exports/some-id": "DELETE, GET, OPTIONS",
        "/api/v2.1/rest/exports/some-id/file": "GET, HEAD, OPTIONS",
        "/api/v2.1/rest/imports": "GET, OPTIONS, POST",
        "/api/v2.1/rest/export_schedules/some-id": "DELETE, GET, OPTIONS, PATCH",
        "/healthz": "GET, OPTIONS",
    }
    for path, allow in expected.items():
        response = server.http.options(path)
        assert response.status_code == 204, (path, response.text)
        assert response.headers["allow"] == allow, path
        assert response.headers["x-content-type-options"] == "nosniff"
    assert server.http.options("/no-such-route").status_code == 404
    metrics = server.http.get("/metrics").text
    assert 'method="OPTIONS",route="/api/v2.1/rest/exports/{unique_id}",status="204"' in metrics


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("backup.example.com", False),
    ],
)
def test_serve_warns_beyond_loopback_without_a_base_url(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    warning = base_url_warning(host, None)
    assert (warning is None) is loopback
    if warning:
        assert host in warning and "CHATFERRY_BASE_URL" in warning and "Host" in warning
    assert base_url_warning(host, "https://backup.example.com") is None


@ON_SQLITE
def test_serve_on_loopback_logs_no_base_url_warning(start_server: StartServer) -> None:
    server = start_server({}, "--no-worker")
    assert server.http.get("/healthz").status_code == 200
    log = server.log_path.read_text()
    assert "serve checked the database and storage" in log
    assert "CHATFERRY_BASE_URL" not in log


def test_serve_logs_the_warning_it_decides_on(caplog: pytest.LogCaptureFixture) -> None:
    from chatferry.cli.server import _warn_without_base_url

    with caplog.at_level("WARNING", logger="chatferry.cli"):
        _warn_without_base_url("127.0.0.1", None)
        _warn_without_base_url("0.0.0.0", "https://backup.example.com")
        assert caplog.records == []
        _warn_without_base_url("0.0.0.0", None)
    [record] = caplog.records
    assert record.levelname == "WARNING"
    assert record.getMessage() == base_url_warning("0.0.0.0", None)
