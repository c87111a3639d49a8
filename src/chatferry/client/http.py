"""HTTP to the API: the envelope, one-sentence errors, retries of what is safe to retry.

The app credentials go only to the API's host, never to a download link (which may point
at object storage): downloads use a second client without them. Error messages name the
server and the path, never a header or a link's signature.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from chatferry.client.config import API_PATH, Connection
from chatferry.client.errors import ApiError, ClientError

if TYPE_CHECKING:
    import httpx

RETRY_STATUSES = (502, 503, 504)
QUICK_RETRIES = 1  # one-shot commands: a dead server is reported within a second
PATIENT_RETRIES = 6  # backup and restore ride over a server restart (about 20 s)
MAX_RETRY_AFTER = 60.0
MAX_BACKOFF = 8.0
# chatferry servers say on every answer that they have the extensions (meta, limit,
# wait, validate_only); a vendor's server does not, and is asked once (has_extensions).
EXTENSIONS_HEADER = "x-chatferry-extensions"
# Backup and restore wait out an app's quota (a 429 with code "quota_exceeded": exports
# or imports an hour, jobs at once) for up to this long in all, then go on.
QUOTA_PATIENCE = 3 * 3600.0


_TLS_LOCK = threading.Lock()


@cache
def _load_tls_context() -> ssl.SSLContext:
    import httpx

    return httpx.create_ssl_context()


def tls_context() -> ssl.SSLContext:
    """What httpx verifies with by default (certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR),
    built once a process: loading the CA bundle took 20 ms, once per client."""
    with _TLS_LOCK:
        return _load_tls_context()


def prewarm_tls() -> None:
    """Loads the CA bundle on a thread of its own (OpenSSL lets go of the GIL meanwhile)
    while the first requests go out, so the download client finds it ready. Not a daemon:
    a process that ends (an error, in 50 ms) while a daemon thread is still inside OpenSSL
    could crash in the interpreter's shutdown (exit -11 or -6 seen, 6 times in 64); the
    process waits the few ms the load has left instead."""
    threading.Thread(target=tls_context, name="tls-context").start()


def _api_tls(server: str) -> ssl.SSLContext:
    """The API client's TLS context: the verifying one for an https server; for an http
    server, which this client only ever talks to (it follows no redirects), a context
    that trusts no CA at all, so that it costs nothing and could never connect unverified."""
    if server.lower().startswith("https:"):
        return tls_context()
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _retry_after(response: httpx.Response, attempt: int) -> float:
    value = response.headers.get("retry-after", "")
    seconds = float(value) if value.replace(".", "", 1).isdigit() else 2.0**attempt
    return min(seconds, MAX_RETRY_AFTER)


def quota_wait(response: httpx.Response) -> float | None:
    """The seconds a quota refusal (429, code "quota_exceeded") asks to wait, else None."""
    if response.status_code != 429:
        return None
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict) or error.get("code") != "quota_exceeded":
        return None
    value = response.headers.get("retry-after", "")
    return float(value) if value.replace(".", "", 1).isdigit() else 60.0


def api_error(response: httpx.Response, method: str, path: str) -> ApiError:
    """The server's error envelope as an ApiError (a plain sentence for anything else)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]:
        details = {k: v for k, v in error.items() if k != "message"}
        return ApiError(response.status_code, error["message"], details)
    if response.status_code == 401:
        return ApiError(401, "the server refused the app id or secret (HTTP 401)")
    return ApiError(
        response.status_code,
        f"the server answered HTTP {response.status_code} {response.reason_phrase} to "
        f"{method} {API_PATH}{path} without the API's error message: check that --server "
        "points at the API",
    )


def network_error(exc: Exception, server: str, what: str) -> ClientError:
    """A transport failure as a sentence: what failed and what to check."""
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return ClientError(
            f"the server at {server} did not answer in time ({what}): check that it is "
            "running and reachable, then run the command again"
        )
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return ClientError(
        f"cannot reach the server at {server} ({what}: {reason}): check --server or "
        "CHATFERRY_SERVER, your network, and that the server is running"
    )


class Api:
    """One server and app: ``call`` returns a response's ``results``."""

    def __init__(
        self,
        connection: Connection,
        timeout: float = 60.0,
        retries: int = QUICK_RETRIES,
        quota_patience: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        import httpx

        self.connection = connection
        self.retries = retries
        self.quota_patience = quota_patience  # seconds of quota refusals to wait out
        self._on_wait = on_wait
        self.server = connection.server
        self._timeout = httpx.Timeout(timeout, connect=10.0)
        self._http = httpx.Client(
            base_url=connection.server + API_PATH,
            headers={
                "QISCUS-SDK-APP-ID": connection.app_id,
                "QISCUS-SDK-SECRET": connection.secret,
                "User-Agent": user_agent(),
            },
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
            verify=_api_tls(connection.server),
        )
        prewarm_tls()
        self._files: httpx.Client | None = None
        self._files_lock = threading.Lock()  # threads downloading at once build one client
        self._extensions: bool | None = None

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        if self._files is not None:
            self._files.close()

    @property
    def files(self) -> httpx.Client:
        """A client for download links: no app credentials, follows redirects."""
        import httpx

        with self._files_lock:
            if self._files is None:
                self._files = httpx.Client(
                    timeout=self._timeout,
                    follow_redirects=True,
                    headers={"User-Agent": user_agent()},
                    verify=tls_context(),
                )
            return self._files

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Sends the request and returns ``results``; raises ApiError or ClientError."""
        response = self._send(method, path, **kwargs)
        if response.status_code >= 400:
            raise api_error(response, method, path)
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, dict):
            raise ClientError(
                f"the server's answer to {method} {API_PATH}{path} is not the API's JSON "
                f"(HTTP {response.status_code}): check that --server points at the API"
            )
        if isinstance(results.get("meta"), dict):
            self._extensions = True
        return results

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, retried on 429 and (when safe) on 502-504 and connection failures."""
        import httpx

        safe = method in ("GET", "HEAD", "DELETE", "PATCH")
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._request_within_quota(method, path, **kwargs)
            except httpx.TransportError as exc:
                # A POST that never connected did nothing; one that did may have.
                retryable = safe or isinstance(exc, httpx.ConnectError)
                if last or not retryable:
                    raise network_error(exc, self.server, f"{method} {API_PATH}{path}") from exc
                time.sleep(min(0.5 * 2**attempt, MAX_BACKOFF))
                continue
            if not last and (
                response.status_code == 429 or (safe and response.status_code in RETRY_STATUSES)
            ):
                time.sleep(_retry_after(response, attempt))
                continue
            return response
        raise AssertionError("unreachable")

    def _request_within_quota(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, sent again after the wait a quota refusal asks for while the
        patience lasts (the refused request did nothing: the server keeps nothing of it)."""
        while True:
            response = self._http.request(method, path, **kwargs)
            if response.headers.get(EXTENSIONS_HEADER) == "1":
                self._extensions = True
            wait = quota_wait(response)
            if wait is None or wait > self.quota_patience:
                return response
            self.quota_patience -= wait
            if self._on_wait is not None:
                message = api_error(response, method, path).message
                self._on_wait(f"waiting {wait:.0f} s for the app's quota: {message}")
            time.sleep(wait)

    def saw_list(self, results: dict[str, Any]) -> None:
        """Learns from a list answer whether the server is chatferry (``meta`` present)."""
        if self._extensions is None:
            self._extensions = isinstance(results.get("meta"), dict)

    def has_extensions(self) -> bool:
        """True when the server is chatferry (its list answers carry ``meta``).

        Extensions are used only then: against a vendor's server, ``validate_only`` would
        import a file for real and ``limit`` may not be understood.
        """
        if self._extensions is None:
            results = self.call("GET", "/exports", params={"page": 1})
            self._extensions = isinstance(results.get("meta"), dict)
        return self._extensions


def user_agent() -> str:
    from chatferry import __version__

    return f"chatferry-client/{__version__}"
