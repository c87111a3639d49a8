"""Which addresses a download may connect to, and a connection that keeps to them.

A host is resolved once per run; its addresses are checked (loopback, private,
link-local, CGNAT 100.64/10, multicast, reserved and unspecified addresses are refused
unless private URLs are allowed) and the first is pinned. Every connection, redirects
included, connects to the pinned address and nothing else (see
:mod:`chatferry.client.attachments.pinned`), so the address checked is the address
connected to: a DNS answer that changes between the check and the connection (DNS
rebinding) cannot reach another host.
"""

from __future__ import annotations

import ipaddress
import socket
import threading

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedAddress(Exception):
    """A host resolves to an address the backup may not fetch from."""

    def __init__(self, host: str, address: str, why: str) -> None:
        super().__init__(f"refused address ({address}): {host} is {why}")
        self.reason = f"refused address ({address}): {host} is {why}"


class UnresolvedHost(Exception):
    def __init__(self, host: str, detail: str) -> None:
        super().__init__(f"cannot resolve {host} ({detail})")
        self.reason = f"cannot resolve {host} ({detail})"


def why_refused(address: IPAddress) -> str | None:
    """Why a fetch may not connect to ``address``, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "an unspecified address"),
        (address in ipaddress.ip_network("100.64.0.0/10"), "a CGNAT (shared) address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((why for refused, why in checks if refused), None)


class AddressPins:
    """Host name -> the one checked address connections to it use, for one run."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._pins: dict[str, str] = {}
        self._lock = threading.Lock()

    def address(self, host: str, port: int) -> str:
        """The address to connect to for ``host``; RefusedAddress if it is not allowed."""
        with self._lock:
            pinned = self._pins.get(host)
        if pinned is None:
            pinned = self._check(host, _resolve(host, port))
            with self._lock:
                pinned = self._pins.setdefault(host, pinned)
        return pinned

    def _check(self, host: str, addresses: list[str]) -> str:
        if not self.allow_private:
            for text in addresses:
                why = why_refused(ipaddress.ip_address(text))
                if why:
                    raise RefusedAddress(host, text, f"{why} (--allow-private-urls allows it)")
        return addresses[0]


def _resolve(host: str, port: int) -> list[str]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvedHost(host, str(exc)) from None
    addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in found))
    if not addresses:
        raise UnresolvedHost(host, "no address")
    return addresses
