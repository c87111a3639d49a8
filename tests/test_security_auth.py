"""Cheap, rate-limited sign-in (issue 7): wrong secrets cost microseconds and turn into
429s with Retry-After, while the right secret keeps working from the same address.
(The latency and memory under a flood are measured in bench/auth_flood_bench.py.)"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from support.apps import Credentials, NewApp
from support.http import EXPORTS, assert_error
from support.servers import StartServer


def wrong(creds: Credentials) -> dict[str, str]:
    return {**creds.headers, "QISCUS-SDK-SECRET": "not-the-secret"}


def assert_rate_limited(response: httpx.Response) -> None:
    assert_error(response, 429, "too many failed sign-ins", "retry after")
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= 60


NO_DELAY = {"CHATFERRY_RATE_LIMIT_REFUSAL_DELAY_SECONDS": "0"}


@pytest.mark.parametrize(
    "extra_env", [{"CHATFERRY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE": "5", **NO_DELAY}]
)
def test_failed_sign_ins_turn_into_429_while_the_right_secret_works(
    client: TestClient, new_app: NewApp
) -> None:
    creds = new_app()
    statuses = [client.get(EXPORTS, headers=wrong(creds)).status_code for _ in range(5)]
    assert statuses == [401] * 5
    for _ in range(3):
        assert_rate_limited(client.get(EXPORTS, headers=wrong(creds)))
    # Same address, same app: the right secret is never refused for others' failures.
    assert client.get(EXPORTS, headers=creds.headers).status_code == 200
    # Another app from the same address: its failures are over the address's budget too.
    other = new_app("other")
    assert_rate_limited(client.get(EXPORTS, headers=wrong(other)))
    assert client.get(EXPORTS, headers=other.headers).status_code == 200


@pytest.mark.parametrize(
    "extra_env", [{"CHATFERRY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE": "3", **NO_DELAY}]
)
def test_unknown_apps_and_missing_headers_count_as_failures(client: TestClient) -> None:
    probes = [
        {"QISCUS-SDK-APP-ID": "nobody", "QISCUS-SDK-SECRET": "x"},
        {"QISCUS-SDK-APP-ID": "nobody-else", "QISCUS-SDK-SECRET": "y"},
        {},
    ]
    assert [client.get(EXPORTS, headers=h).status_code for h in probes] == [401] * 3
    assert_rate_limited(client.get(EXPORTS, headers={"QISCUS-SDK-APP-ID": "x" * 10_000}))


@pytest.mark.parametrize(
    "extra_env",
    [
        {
            "CHATFERRY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE": "1",
            "CHATFERRY_RATE_LIMIT_REFUSAL_DELAY_SECONDS": "3",
        }
    ],
)
def test_a_429_for_failed_sign_ins_comes_late_and_the_right_secret_does_not(
    client: TestClient, new_app: NewApp
) -> None:
    creds = new_app()
    assert client.get(EXPORTS, headers=wrong(creds)).status_code == 401
    started = time.monotonic()
    assert_rate_limited(client.get(EXPORTS, headers=wrong(creds)))
    assert time.monotonic() - started >= 1.5  # 3 s, give or take half
    started = time.monotonic()
    assert client.get(EXPORTS, headers=creds.headers).status_code == 200
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("extra_env", [{"CHATFERRY_RATE_LIMIT_AUTH_FAILURES_PER_MINUTE": "0"}])
def test_a_rate_of_zero_turns_the_sign_in_limit_off(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    assert {client.get(EXPORTS, headers=wrong(creds)).status_code for _ in range(50)} == {401}


@pytest.mark.parametrize("extra_env", [{"CHATFERRY_RATE_LIMIT_APP_REQUESTS_PER_SECOND": "2"}])
def test_an_app_over_its_request_rate_gets_429_and_others_do_not(
    client: TestClient, new_app: NewApp
) -> None:
    busy, calm = new_app("busy"), new_app("calm")
    statuses = [client.get(EXPORTS, headers=busy.headers).status_code for _ in range(10)]
    assert statuses[:4] == [200] * 4 and 429 in statuses  # a burst of twice the rate
    limited = client.get(EXPORTS, headers=busy.headers)
    assert_error(limited, 429, "too many requests for this app")
    assert int(limited.headers["retry-after"]) >= 1
    assert client.get(EXPORTS, headers=calm.headers).status_code == 200


def test_eighty_clients_with_wrong_secrets_get_401_or_429_and_never_stall_the_right_one(
    start_server: StartServer, new_app: NewApp
) -> None:
    creds = new_app()
    server = start_server()
    stop = threading.Event()
    answers: Counter[int] = Counter()
    lock = threading.Lock()

    def attacker() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            while not stop.is_set():
                status = http.get(EXPORTS, headers=wrong(creds)).status_code
                with lock:
                    answers[status] += 1

    valid: list[int] = []
    with ThreadPoolExecutor(80) as pool:
        for _ in range(80):
            pool.submit(attacker)
        try:
            for _ in range(20):
                valid.append(server.http.get(EXPORTS, headers=creds.headers).status_code)
        finally:
            stop.set()
    assert valid == [200] * 20
    assert set(answers) <= {401, 429}, answers
    assert answers[429] > answers[401] > 0  # the budget ran out: the rest were refused early
    assert "unhandled error" not in server.log_path.read_text()
