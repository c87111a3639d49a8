"""deploy/nginx.conf, as shipped, in front of a real ``chatferry serve`` on loopback.

nginx runs with the file's marked lines rendered for the test (ports, log and pid paths
in the test's directory, temp paths there too); everything else is the shipped config.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from chatferry.runtime import Runtime
from support.apps import NewApp
from support.exports import export_and_wait
from support.http import EXPORTS, IMPORTS, assert_error
from support.rows import add_users
from support.servers import ServerProcess, StartServer, free_port
from support.waiting import wait_for

CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
IDLE_SOCKETS = 300

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    # chatferry alone takes 100 connections: 300 idle sockets straight to it would
    # shut everyone else out.
    pytest.mark.parametrize("extra_env", [{"CHATFERRY_HTTP_MAX_CONNECTIONS": "100"}]),
    pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed"),
]


def render(config: str, tmp: Path, listen: int, upstream: int) -> str:
    """The shipped file with its EDIT lines set for this test."""
    user = "user root;" if os.geteuid() == 0 else ""  # workers write the tmp dir's temp files
    lines = {
        "EDIT-USER": user,
        "EDIT-PID": f"pid {tmp}/nginx.pid;",
        "EDIT-ERROR-LOG": f"error_log {tmp}/error.log warn;",
        "EDIT-ACCESS-LOG": f"access_log {tmp}/access.log chatferry;",
        "EDIT-UPSTREAM": f"server 127.0.0.1:{upstream};",
        "EDIT-LISTEN": f"listen 127.0.0.1:{listen};",
    }
    for marker, line in lines.items():
        config, count = re.subn(rf"^(\s*)\S.*# {marker}\b.*$", rf"\g<1>{line}", config, flags=re.M)
        assert count == 1, marker
    temp = "".join(
        f"    {kind}_temp_path {tmp}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return config.replace("http {\n", "http {\n" + temp, 1)


@pytest.fixture
def proxied(start_server: StartServer, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """chatferry serve, and nginx in front of it: (the server, nginx's base URL)."""
    server = start_server()
    upstream = int(server.base_url.rsplit(":", 1)[1])
    port = free_port()
    where = tmp_path / "nginx"
    where.mkdir()
    conf = where / "nginx.conf"
    conf.write_text(render(CONFIG.read_text(), where, port, upstream))
    args = [NGINX, "-c", str(conf), "-p", str(where), "-e", str(where / "error.log")]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    nginx = subprocess.Popen([*args, "-g", "daemon off;"])
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base, nginx), timeout=15)
        yield server, base
    finally:
        nginx.terminate()
        nginx.wait(10)
        print("----- nginx error.log -----\n" + (where / "error.log").read_text())


def _answers(base: str, nginx: subprocess.Popen[bytes]) -> bool:
    assert nginx.poll() is None, "nginx exited"
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def idle_sockets(stack: ExitStack, port: int, count: int) -> None:
    """``count`` connections from 127.0.0.2 that never send a byte."""
    for _ in range(count):
        sock = stack.enter_context(socket.socket())
        sock.bind(("127.0.0.2", 0))
        sock.connect(("127.0.0.1", port))


def test_idle_sockets_from_one_address_leave_others_answered(
    proxied: tuple[ServerProcess, str], new_app: NewApp
) -> None:
    server, base = proxied
    creds = new_app("proxied")
    with ExitStack() as stack:
        # Straight to chatferry, the same sockets would take every slot (the attack).
        idle_sockets(stack, int(server.base_url.rsplit(":", 1)[1]), IDLE_SOCKETS)
        assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 503
    wait_for(lambda: httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200)

    with ExitStack() as stack, httpx.Client(base_url=base, timeout=5) as http:
        idle_sockets(stack, int(base.rsplit(":", 1)[1]), IDLE_SOCKETS)
        for _ in range(3):
            started = time.monotonic()
            assert http.get("/healthz").status_code == 200
            listed = http.get(EXPORTS, headers=creds.headers)
            assert listed.status_code == 200, listed.text
            assert time.monotonic() - started < 2.0


def test_x_forwarded_headers_reach_chatferry(
    proxied: tuple[ServerProcess, str], new_app: NewApp
) -> None:
    server, base = proxied
    creds = new_app("forwarded")
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=base, transport=transport, timeout=5) as http:
        assert http.get(f"{EXPORTS}?forwarded-check=1", headers=creds.headers).status_code == 200
    # uvicorn trusts the proxy on 127.0.0.1: the access line shows the real client.
    wait_for(lambda: "127.0.0.2" in server.log_path.read_text())


def test_an_upload_over_the_limit_gets_chatferrys_own_413(
    proxied: tuple[ServerProcess, str], new_app: NewApp
) -> None:
    _, base = proxied
    creds = new_app("uploads")
    body = b"[" + b" " * (5 * 1024 * 1024) + b"]"
    with httpx.Client(base_url=base, timeout=30) as http:
        files = {"file": ("big.json", body, "application/json")}
        refused = http.post(IMPORTS, data={"type": "users"}, files=files, headers=creds.headers)
        assert_error(refused, 413, "CHATFERRY_IMPORT_MAX_BYTES", "split it")
        assert refused.json()["error"]["code"] == "import_too_large"
        # Far beyond any import limit, nginx itself refuses, in the same envelope.
        huge = {"file": ("huge.json", body * 2, "application/json")}
        assert_error(http.post(IMPORTS, files=huge, headers=creds.headers), 413, "split")


def test_a_download_streams_with_range(
    proxied: tuple[ServerProcess, str], new_app: NewApp, runtime: Runtime
) -> None:
    _, base = proxied
    creds = new_app("downloads")
    now = datetime.now(UTC)
    add_users(runtime, creds.app_id, [now - timedelta(minutes=m) for m in range(1, 40)])
    with httpx.Client(base_url=base, timeout=10) as http:
        record = export_and_wait(http, creds.headers, type="users")
        # Links are built from the Host nginx passes on: they lead through nginx.
        assert record["download_url"].startswith(f"{base}/")
        whole = http.get(record["download_url"])
        assert whole.status_code == 200 and len(whole.content) == record["size"]
        part = http.get(record["download_url"], headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206, part.text
        assert part.headers["content-range"] == f"bytes 100-1099/{record['size']}"
        assert part.content == whole.content[100:1100]


def test_a_request_flood_from_one_address_gets_429_in_the_envelope(
    proxied: tuple[ServerProcess, str],
) -> None:
    _, base = proxied
    refused: list[httpx.Response] = []

    def flood() -> None:
        """Requests from 127.0.0.2 until nginx refuses one (its rate is 50/s, burst 200)."""
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=base, transport=transport, timeout=5) as client:
            while not refused and time.monotonic() < deadline:
                answer = client.get("/healthz")
                assert answer.status_code in (200, 429), answer.text
                if answer.status_code == 429:
                    refused.append(answer)

    with ThreadPoolExecutor(8) as pool:
        for done in [pool.submit(flood) for _ in range(8)]:
            done.result()
    assert refused, "nginx never refused the flood"
    assert_error(refused[0], 429, "too many requests")
    assert refused[0].headers["retry-after"] == "1"
    # Another address has its own budget.
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200


def test_metrics_only_for_the_monitoring_address_and_no_signatures_logged(
    proxied: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    _, base = proxied
    assert httpx.get(f"{base}/metrics", timeout=5).status_code == 200
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=base, transport=transport, timeout=5) as other:
        assert_error(other.get("/metrics"), 403, "not served to your address")
        other.get("/healthz?signature=secret-value")
    log = (tmp_path / "nginx" / "access.log").read_text()
    assert "/healthz" in log and "secret-value" not in log
