"""Which URLs a webhook may point to: no requests into the operator's network.

Only ``https://`` (plain ``http://`` with ``CHATFERRY_WEBHOOKS_ALLOW_HTTP=true``), and a
host whose address is public: loopback, private, link-local, CGNAT (100.64.0.0/10),
multicast, reserved and unspecified addresses are refused (unless
``CHATFERRY_WEBHOOKS_ALLOW_PRIVATE=true``) when the endpoint is registered, and again at
each delivery for the address the sender then connects to (a name may resolve
elsewhere later: DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from chatferry.errors import BadRequest, show
from chatferry.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
MAX_URL_LENGTH = 2000


class AddressRefused(BadRequest):
    """The URL's host is (or resolves to) an address webhooks may not reach."""


@dataclass(frozen=True)
class Policy:
    allow_http: bool = False
    allow_private: bool = False

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(settings.webhooks_allow_http, settings.webhooks_allow_private)


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int


def parse_url(url: str, policy: Policy) -> Target:
    """The URL's scheme, host and port; BadRequest for anything webhooks do not take."""
    parts = urlsplit(url)
    allowed = ("https", "http") if policy.allow_http else ("https",)
    if len(url) > MAX_URL_LENGTH or parts.scheme not in allowed or not parts.hostname:
        hint = "" if policy.allow_http else " (plain http:// needs CHATFERRY_WEBHOOKS_ALLOW_HTTP)"
        raise BadRequest(
            f"url must be an https:// URL with a host name, like "
            f"'https://example.com/hooks'{hint}; got {show(url)}"
        )
    if parts.username or parts.password:
        raise BadRequest("url must not carry a user name or password: put a token in its path")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BadRequest(
            f"url has a port that is not a number from 1 to 65535: {show(url)}"
        ) from None
    return Target(parts.scheme, parts.hostname, port)


def refusal(address: IPAddress) -> str | None:
    """Why webhooks may not reach this address, or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    for reason, hit in (
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a CGNAT", address in _CGNAT),
        ("a private", address.is_private),
        ("a reserved", address.is_reserved or address.is_unspecified),
        ("a non-public", not address.is_global),
    ):
        if hit:
            return f"{reason} address ({address})"
    return None


def check_address(host: str, address: IPAddress, policy: Policy) -> None:
    why = None if policy.allow_private else refusal(address)
    if why is not None:
        raise AddressRefused(
            f"the webhook host {host} resolves to {why}: webhooks reach public addresses "
            "only (the operator may allow private ones with CHATFERRY_WEBHOOKS_ALLOW_PRIVATE)"
        )


def addresses_of(infos: list[tuple[object, ...]]) -> list[IPAddress]:
    """The addresses of getaddrinfo's answer, in its order, without repeats."""
    found: list[IPAddress] = []
    for info in infos:
        sockaddr = info[4]
        assert isinstance(sockaddr, tuple)
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def resolve(target: Target) -> list[IPAddress]:
    """The host's addresses (blocking); BadRequest if it has none."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise BadRequest(
            f"the webhook host {target.host} could not be resolved: check the URL's host name"
        ) from None
    return addresses_of(list(infos))


def check_registration(url: str, policy: Policy) -> None:
    """At registration: the URL's form, and every address its host resolves to."""
    target = parse_url(url, policy)
    for address in resolve(target):
        check_address(target.host, address, policy)
