"""The client's TLS contexts: the CA bundle loaded once a process and shared; an http
server's API client never able to connect to anything over TLS unverified."""

from __future__ import annotations

import ssl
import subprocess
import sys

from chatferry.client.config import Connection
from chatferry.client.http import Api, _api_tls, tls_context


def test_the_verifying_context_is_built_once_and_trusts_the_ca_bundle() -> None:
    context = tls_context()
    assert context is tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0


def test_an_https_server_is_verified_with_the_shared_context() -> None:
    assert _api_tls("https://backup.example.com") is tls_context()
    assert _api_tls("HTTPS://backup.example.com") is tls_context()


def test_an_http_servers_client_trusts_no_ca_and_still_verifies() -> None:
    context = _api_tls("http://127.0.0.1:8000")
    assert context is not tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0


def test_downloads_use_the_shared_verifying_context() -> None:
    with Api(Connection("http://127.0.0.1:9", "app", "secret")) as api:
        pool = api.files._transport._pool  # type: ignore[attr-defined]
        assert pool._ssl_context is tls_context()


# As in the client: httpx is imported (the API client is built) before the prewarm starts.
EXIT_WHILE_LOADING = """
import sys, time
import httpx
from chatferry.client.http import prewarm_tls
prewarm_tls()
time.sleep(float(sys.argv[1]))
raise SystemExit(1)
"""


def test_a_process_that_ends_while_the_ca_bundle_loads_exits_cleanly() -> None:
    """A client that fails at once (its error printed) ends while the CA bundle may still
    be loading: its exit code is its own, never a crash of the interpreter's shutdown
    (a daemon loading thread gave -11 or -6 in about 1 run of 10)."""
    codes = [_exit_code_after(delay / 1000) for delay in range(24) for _ in range(2)]
    assert codes == [1] * len(codes)


def _exit_code_after(seconds: float) -> int:
    command = [sys.executable, "-c", EXIT_WHILE_LOADING, str(seconds)]
    return subprocess.run(command, capture_output=True, check=False).returncode
