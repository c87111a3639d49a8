"""Waiting for something to happen, never sleeping for a guessed time.

``wait_for`` polls any condition; ``wait_final`` is THE way to wait for an export's or
an import's final status, in process (``TestClient``) or against a real server
(``ServerProcess.http``): both are ``httpx.Client``s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import httpx

API = "/api/v2.1/rest"
Kind = Literal["exports", "imports"]
FINAL_STATUSES: dict[str, tuple[str, ...]] = {
    "exports": ("finished", "failed", "cancelled"),
    "imports": ("finished", "failed"),
}

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.05) -> T:
    """Polls until ``predicate()`` returns something truthy, which it returns.

    The first polls come quickly (10 ms apart, then 1.5 times longer each time, up to
    ``interval``): most conditions hold within tens of milliseconds, and a fixed
    interval would add half of it to every wait.
    """
    deadline = time.monotonic() + timeout
    pause = min(0.01, interval)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(pause)
        pause = min(pause * 1.5, interval)


def read_record(
    http: httpx.Client, kind: Kind, unique_id: str, headers: Mapping[str, str]
) -> dict[str, Any]:
    """``GET /exports/{id}`` or ``GET /imports/{id}``: the record (``backup_history``)."""
    response = http.get(f"{API}/{kind}/{unique_id}", headers=dict(headers))
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()["results"]["backup_history"]
    return record


def wait_final(
    http: httpx.Client,
    kind: Kind,
    unique_id: str,
    headers: Mapping[str, str],
    timeout: float = 30.0,
    expect: str | None = None,
) -> dict[str, Any]:
    """Polls the export or import until its status is final; returns that record.

    With ``expect``, the final status must be that one.
    """

    def final() -> dict[str, Any] | None:
        record = read_record(http, kind, unique_id, headers)
        return record if record["status"] in FINAL_STATUSES[kind] else None

    record = wait_for(final, timeout=timeout)
    assert expect is None or record["status"] == expect, record
    return record
