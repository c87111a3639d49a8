"""One try of a delivery: a POST to the endpoint, to an address checked first.

The host is resolved here and the connection goes to that address (the URL's host
kept in ``Host`` and as the TLS server name, so certificates are checked against it):
the address checked is the address connected to. No redirect is followed, at most
64 KB of the answer is read, and the whole try is bounded by one timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from chatferry.errors import BadRequest
from chatferry.webhooks.addresses import IPAddress, Policy, check_address, parse_url

MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "chatferry-webhooks"


@dataclass(frozen=True)
class Outcome:
    status_code: int | None = None  # the receiver's answer, if it answered
    error: str = ""  # why the try failed, for the tenant ("" when delivered)

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def _address(host: str, port: int) -> IPAddress:
    """The address to connect to: the host's first, checked (a literal IP as is)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"{host} has no address")
    return ipaddress.ip_address(str(infos[0][4][0]).split("%", 1)[0])


def _pinned_url(url: str, address: IPAddress, port: int) -> str:
    parts = urlsplit(url)
    host = f"[{address}]" if address.version == 6 else str(address)
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path or "/", parts.query, ""))


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    policy: Policy,
    timeout: float,
) -> Outcome:
    """POSTs ``body``; the outcome says whether it was delivered, else why not."""
    try:
        async with asyncio.timeout(timeout):
            return await _post(client, url, body, headers, policy)
    except TimeoutError:
        return Outcome(error=f"no answer within {timeout:g} s")
    except BadRequest as refused:
        return Outcome(error=refused.message)
    except (httpx.HTTPError, OSError) as exc:
        return Outcome(error=f"could not connect: {type(exc).__name__}: {exc}".rstrip(": "))


async def _post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], policy: Policy
) -> Outcome:
    target = parse_url(url, policy)
    address = await _address(target.host, target.port)
    check_address(target.host, address, policy)
    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
    request = client.build_request(
        "POST",
        _pinned_url(url, address, target.port),
        content=body,
        headers={**headers, "host": netloc, "user-agent": USER_AGENT},
        extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
    )
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        read = 0
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read >= MAX_ANSWER_BYTES:
                break
    finally:
        await response.aclose()
    if 200 <= response.status_code < 300:
        return Outcome(response.status_code)
    return Outcome(response.status_code, f"the receiver answered HTTP {response.status_code}")
