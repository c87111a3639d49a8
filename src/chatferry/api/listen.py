"""Where ``serve`` listens, and what that asks of the configuration."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches: ``localhost``, 127.0.0.0/8, ::1."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any address


def base_url_warning(host: str, base_url: str | None) -> str | None:
    """The start-up warning when the API listens beyond this machine without
    CHATFERRY_BASE_URL (download links would then be built from each client's Host
    header, which a client chooses), else None."""
    if base_url or is_loopback(host):
        return None
    return (
        f"serve listens on {host}, beyond this machine, without CHATFERRY_BASE_URL: download "
        "links are built from each request's Host header, which any client may set; set "
        "CHATFERRY_BASE_URL to the address clients use (e.g. https://backup.example.com)"
    )
