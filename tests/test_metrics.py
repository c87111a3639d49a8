"""Prometheus metrics: exact with several worker threads (in process), and scraped from
a real `chatferry serve --no-worker` and a `chatferry worker --metrics-port`."""

from __future__ import annotations

import contextlib
import signal
import socket
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from chatferry.obs.metrics import REGISTRY
from chatferry.runtime import Runtime
from client_helpers import assert_one_line_error
from support.apps import Credentials, NewApp
from support.exports import create_export, wait_finished
from support.http import EXPORTS
from support.imports import run_import, upload, user
from support.rows import add_users
from support.servers import StartServer, StartWorker, free_port, run_cli
from support.waiting import wait_final, wait_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# Three threads, and exports slow enough (3 batches of 5 users, 0.2 s after each) that
# all three run at once.
THREADED = {
    "CHATFERRY_WORKER_CONCURRENCY": "3",
    "CHATFERRY_EXPORT_BATCH_SIZE": "5",
    "CHATFERRY_EXPORT_BATCH_DELAY_SECONDS": "0.2",
}


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition (which must parse)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(http: httpx.Client, url: str = "/metrics") -> Samples:
    response = http.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def local(name: str, **labels: str) -> float:
    """A sample of this process's registry (0 before it was first counted)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def counted(name: str, before: dict[str, float], **labels: str) -> float:
    """How much the sample grew since ``before`` was taken by ``snapshot``."""
    return local(name, **labels) - before.get(_key(name, labels), 0.0)


def grew_by(expected: float, name: str, before: dict[str, float], **labels: str) -> None:
    """The sample grows by exactly ``expected``. A worker counts a job just after it
    recorded the outcome (and the edge counts a request just after answering it), so a
    test that saw the outcome first waits for the count; nothing runs after, so it stays."""
    with contextlib.suppress(AssertionError):  # the assert below says what it was
        wait_for(lambda: counted(name, before, **labels) == expected, timeout=10)
    assert counted(name, before, **labels) == expected, (name, labels)


def _key(name: str, labels: dict[str, str]) -> str:
    return name + repr(sorted(labels.items()))


def snapshot() -> dict[str, float]:
    return {
        _key(sample.name, sample.labels): sample.value
        for family in REGISTRY.collect()
        for sample in family.samples
    }


def apps_with_users(runtime: Runtime, new_app: NewApp, counts: list[int]) -> list[Credentials]:
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    apps = [new_app(f"App {n}") for n in counts]
    for creds, n in zip(apps, counts, strict=True):
        add_users(runtime, creds.app_id, [hour_ago] * n)
    return apps


def three_running(client: TestClient) -> Samples | None:
    samples = scrape(client)
    return samples if value(samples, "chatferry_jobs_running", kind="export") == 3 else None


@pytest.mark.parametrize("extra_env", [THREADED], ids=["three-threads"])
def test_metrics_count_every_job_run_on_three_threads(
    client: TestClient, runtime: Runtime, new_app: NewApp
) -> None:
    apps = apps_with_users(runtime, new_app, [13, 14, 15])
    before = snapshot()
    exports = [
        (creds, create_export(client, creds.headers, type="users")["unique_id"])
        for creds in apps
        for _ in range(3)
    ]
    # The queue's gauges show all three threads busy, and the other exports waiting.
    busy = wait_for(lambda: three_running(client), timeout=30, interval=0.02)
    assert value(busy, "chatferry_jobs_waiting", kind="export") <= 6
    records = [wait_finished(client, creds.headers, uid, timeout=60) for creds, uid in exports]
    imports = [
        run_import(client, creds, "users", [user(f"m{i}@example.com"), user(f"n{i}@example.com")])
        for i, creds in enumerate(apps)
    ]
    assert [r["status"] for r in imports] == ["finished"] * 3

    outcome = "chatferry_job_outcomes_total"
    grew_by(9, outcome, before, kind="export", outcome="finished")
    grew_by(3, outcome, before, kind="import", outcome="finished")
    duration = "chatferry_job_duration_seconds_count"
    grew_by(9, duration, before, kind="export", outcome="finished")
    grew_by(3, duration, before, kind="import", outcome="finished")
    # Each export took at least its three pauses: the histogram's sum says so too.
    seconds = "chatferry_job_duration_seconds_sum"
    assert counted(seconds, before, kind="export", outcome="finished") >= 9 * 0.6
    rows, size = "chatferry_rows_total", "chatferry_bytes_total"
    assert sum(r["total_rows"] for r in records) == 3 * (13 + 14 + 15)
    grew_by(3 * (13 + 14 + 15), rows, before, direction="exported", resource="users")
    grew_by(sum(r["size"] for r in records), size, before, direction="exported", resource="users")
    grew_by(6, rows, before, direction="imported", resource="users")
    grew_by(sum(r["size"] for r in imports), size, before, direction="imported", resource="users")
    idle = scrape(client)
    for gauge in ("chatferry_jobs_running", "chatferry_jobs_waiting"):
        assert value(idle, gauge, kind="export") == value(idle, gauge, kind="import") == 0


def test_http_requests_are_counted_by_route_template_and_status(
    client: TestClient, new_app: NewApp
) -> None:
    creds = new_app()
    before = snapshot()
    created = create_export(client, creds.headers, type="users")
    wait_finished(client, creds.headers, created["unique_id"])
    unknown = client.get(f"{EXPORTS}/{'0' * 8}-0000-4000-8000-{'0' * 12}", headers=creds.headers)
    assert unknown.status_code == 404
    assert client.get(EXPORTS, headers={"QISCUS-SDK-APP-ID": creds.app_id}).status_code == 401
    assert client.get("/no/such/path").status_code == 404

    requests, latency = "chatferry_http_requests_total", "chatferry_http_request_duration_seconds"
    one = "/api/v2.1/rest/exports/{unique_id}"
    grew_by(1, requests, before, route=EXPORTS, method="POST", status="200")
    grew_by(1, requests, before, route=one, method="GET", status="404")
    grew_by(1, requests, before, route=EXPORTS, method="GET", status="401")
    grew_by(1, requests, before, route="unmatched", method="GET", status="404")
    grew_by(1, f"{latency}_count", before, route=EXPORTS, method="POST")
    assert counted(requests, before, route=one, method="GET", status="200") >= 1  # the waits
    # No series is keyed by an id: a route is always its template.
    ids = [k for k in snapshot() if created["unique_id"] in k]
    assert ids == []


def test_a_scheduled_export_waits_in_the_queue_gauge_until_deleted(
    client: TestClient, new_app: NewApp
) -> None:
    creds = new_app()
    run_at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()
    later = create_export(client, creds.headers, type="users", run_at=run_at)
    assert value(scrape(client), "chatferry_jobs_waiting", kind="export") == 1
    assert client.delete(f"{EXPORTS}/{later['unique_id']}", headers=creds.headers).is_success
    assert value(scrape(client), "chatferry_jobs_waiting", kind="export") == 0


def both_counted(url: str, export_bytes: int) -> Samples | None:
    samples = scrape(httpx.Client(), url)
    exported = value(samples, "chatferry_bytes_total", direction="exported", resource="users")
    imported = value(samples, "chatferry_bytes_total", direction="imported", resource="users")
    return samples if exported == export_bytes and imported > 0 else None


@pytest.mark.slow
def test_serve_and_each_worker_are_scraped_on_their_own_port(
    runtime: Runtime, new_app: NewApp, start_server: StartServer, start_worker: StartWorker
) -> None:
    creds = apps_with_users(runtime, new_app, [7])[0]
    server = start_server(None, "--no-worker")
    port = free_port()
    worker = start_worker(None, "--metrics-port", str(port))
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    assert f"metrics served url={metrics_url}" in worker.log_path.read_text()

    http = server.http
    uid = create_export(http, creds.headers, type="users")["unique_id"]
    export = wait_finished(http, creds.headers, uid)
    sent = upload(http, creds, "users", [user("z@example.com")])
    imported = sent.json()["results"]["backup_history"]["unique_id"]
    wait_final(http, "imports", imported, creds.headers, timeout=60, expect="finished")

    api = scrape(http)
    # The worker counts a job just after recording it (bytes last): wait for both jobs.
    jobs = wait_for(lambda: both_counted(metrics_url, export["size"]), timeout=10)
    # serve (no worker) counts the requests; the worker counts the jobs, rows and bytes.
    requests, outcomes = "chatferry_http_requests_total", "chatferry_job_outcomes_total"
    assert value(api, requests, route=EXPORTS, method="POST", status="200") == 1
    assert value(api, outcomes, kind="export", outcome="finished") == 0
    assert value(jobs, outcomes, kind="export", outcome="finished") == 1
    assert value(jobs, outcomes, kind="import", outcome="finished") == 1
    rows, size = "chatferry_rows_total", "chatferry_bytes_total"
    assert value(jobs, rows, direction="exported", resource="users") == 7
    assert value(jobs, size, direction="exported", resource="users") == export["size"]
    assert value(jobs, rows, direction="imported", resource="users") == 1
    duration = "chatferry_job_duration_seconds_count"
    assert value(jobs, duration, kind="export", outcome="finished") == 1
    # The queue's gauges are the deployment's: the same from every process.
    for scraped in (api, jobs):
        for kind in ("export", "import"):
            assert value(scraped, "chatferry_jobs_waiting", kind=kind) == 0
            assert ("chatferry_jobs_running", frozenset({("kind", kind)})) in scraped

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(metrics_url, timeout=2)


@pytest.mark.slow
def test_a_metrics_port_in_use_is_one_line(settings_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(settings_env, "worker", "--metrics-port", str(port))
    line = assert_one_line_error(done, 1, f"cannot serve metrics on 127.0.0.1:{port}")
    assert "choose another --metrics-port" in line
    bad = run_cli(settings_env, "worker", "--metrics-port", "70000")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
