"""The signed download links of finished exports."""

from __future__ import annotations

import hashlib
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from fastapi.testclient import TestClient

from chatferry.runtime import Runtime
from support.apps import NewApp
from support.exports import create_export, export_and_wait, get_record, stored_files
from support.http import EXPORTS, assert_error, relative
from support.rows import add_users
from support.servers import StartServer


@pytest.fixture
def finished(client: TestClient, runtime: Runtime, new_app: NewApp) -> tuple[Any, dict[str, Any]]:
    """An app in Asia/Jakarta with a finished users export of five rows."""
    creds = new_app("downloads", "Asia/Jakarta")
    now = datetime.now(UTC)
    add_users(runtime, creds.app_id, [now - timedelta(minutes=m) for m in range(1, 6)])
    return creds, export_and_wait(client, creds.headers, type="users")


def link_parts(url: str) -> tuple[str, str, str]:
    """(unique_id, expires, signature) of a download link."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    unique_id = parts.path.split("/")[-2]
    return unique_id, query["expires"][0], query["signature"][0]


def filename_of(content_disposition: str) -> str:
    """The file name from Content-Disposition, in its plain or RFC 5987 form."""
    kind, _, params = content_disposition.partition(";")
    assert kind.strip() == "attachment", content_disposition
    params = params.strip()
    if params.startswith("filename*="):
        charset, _, value = params.removeprefix("filename*=").partition("''")
        assert charset.lower() == "utf-8"
        return unquote(value)
    assert params.startswith('filename="') and params.endswith('"'), content_disposition
    return params[len('filename="') : -1]


def test_the_link_is_absolute_and_streams_the_file_as_an_attachment(
    client: TestClient, finished: tuple[Any, dict[str, Any]], runtime: Runtime
) -> None:
    creds, record = finished
    url = record["download_url"]
    unique_id = record["unique_id"]
    assert url.startswith(f"http://testserver/api/v2.1/rest/exports/{unique_id}/file?")
    _, expires, signature = link_parts(url)
    assert int(expires) > time.time() + 6 * 24 * 3600  # the default lifetime is 7 days
    assert len(signature) == 64

    # No app headers: the signature is the credential.
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert filename_of(response.headers["content-disposition"]) == record["original_filename"]
    assert record["original_filename"].endswith("+07:00_exported_users.json")
    body = response.content
    assert int(response.headers["content-length"]) == len(body) == record["size"]
    assert hashlib.sha256(body).hexdigest() == record["sha256"]
    [path] = stored_files(runtime)
    assert path.read_bytes() == body

    # The list hands out working links too.
    listed = client.get(EXPORTS, headers=creds.headers).json()["results"]["backup_histories"]
    assert listed[0]["download_url"].startswith("http://testserver/")
    assert client.get(listed[0]["download_url"]).content == body


def test_range_requests_return_the_requested_bytes(
    client: TestClient, finished: tuple[Any, dict[str, Any]]
) -> None:
    _, record = finished
    url = record["download_url"]
    whole = client.get(url).content
    size = len(whole)
    assert client.get(url).headers.get("accept-ranges") == "bytes"

    for header, expected, first, last in [
        ("bytes=0-9", whole[:10], 0, 9),
        ("bytes=10-", whole[10:], 10, size - 1),
        ("bytes=-7", whole[-7:], size - 7, size - 1),
        (f"bytes=5-{size + 100}", whole[5:], 5, size - 1),
    ]:
        response = client.get(url, headers={"Range": header})
        assert response.status_code == 206, (header, response.text)
        assert response.content == expected, header
        assert response.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert int(response.headers["content-length"]) == len(expected)

    response = client.get(url, headers={"Range": f"bytes={size}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"


def test_if_range_resumes_the_same_file_and_sends_another_whole(
    client: TestClient, finished: tuple[Any, dict[str, Any]]
) -> None:
    """What a resuming client relies on: the validator it kept names this file (206),
    another one gets the whole file (200)."""
    _, record = finished
    url = record["download_url"]
    first = client.get(url)
    whole, etag = first.content, first.headers["etag"]
    assert not etag.startswith("W/") and first.headers["last-modified"]
    same = client.get(url, headers={"Range": "bytes=10-", "If-Range": etag})
    assert same.status_code == 206 and same.content == whole[10:]
    other = client.get(url, headers={"Range": "bytes=10-", "If-Range": '"another-file"'})
    assert other.status_code == 200 and other.content == whole


def test_a_tampered_link_is_refused_with_403(
    client: TestClient, finished: tuple[Any, dict[str, Any]], runtime: Runtime
) -> None:
    creds, record = finished
    unique_id, expires, signature = link_parts(record["download_url"])
    other = export_and_wait(client, creds.headers, type="users")
    _, other_expires, other_signature = link_parts(other["download_url"])
    base = f"{EXPORTS}/{unique_id}/file"
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    cases = {
        "flipped signature": f"{base}?expires={expires}&signature={flipped}",
        "no signature": f"{base}?expires={expires}",
        "empty signature": f"{base}?expires={expires}&signature=",
        "no query": base,
        "later expiry": f"{base}?expires={int(expires) + 3600}&signature={signature}",
        "another export's signature": f"{base}?expires={other_expires}&signature={other_signature}",
        "expires not a number": f"{base}?expires=soon&signature={signature}",
        "expires negative": f"{base}?expires=-1&signature={signature}",
        "expires unicode digit": f"{base}?expires=%C2%B2&signature={signature}",
        "expires 5000 digits": f"{base}?expires={'9' * 5000}&signature={signature}",
        "upper-case signature": f"{base}?expires={expires}&signature={signature.upper()}",
    }
    problems = []
    for name, path in cases.items():
        response = client.get(path)
        try:
            assert_error(response, 403, "link")
        except AssertionError as exc:
            problems.append(f"{name}: {exc}")
    assert not problems, "\n".join(problems)
    # The genuine link still works.
    assert client.get(relative(record["download_url"])).status_code == 200


def test_an_expired_link_is_refused_with_403(
    client: TestClient, finished: tuple[Any, dict[str, Any]], runtime: Runtime
) -> None:
    _, record = finished
    unique_id = record["unique_id"]
    past = int(time.time()) - 5
    signature = runtime.signer.signature(unique_id, past)
    response = client.get(f"{EXPORTS}/{unique_id}/file?expires={past}&signature={signature}")
    assert_error(response, 403, "expired")

    future = int(time.time()) + 60
    signature = runtime.signer.signature(unique_id, future)
    response = client.get(f"{EXPORTS}/{unique_id}/file?expires={future}&signature={signature}")
    assert response.status_code == 200


@pytest.mark.parametrize("extra_env", [{"CHATFERRY_DOWNLOAD_URL_TTL_SECONDS": "1"}], ids=["ttl1"])
def test_the_link_lifetime_setting_is_honoured(client: TestClient, new_app: NewApp) -> None:
    creds = new_app()
    record = export_and_wait(client, creds.headers, type="rooms")
    _, expires, _ = link_parts(record["download_url"])
    assert 0 <= int(expires) - time.time() <= 1.5
    while time.time() <= int(expires) + 0.05:
        time.sleep(0.1)
    assert_error(client.get(record["download_url"]), 403, "expired")
    # Fetching the record again gives a fresh link.
    fresh = get_record(client, creds.headers, record["unique_id"])["download_url"]
    assert client.get(fresh).status_code == 200


def test_a_valid_signature_for_a_missing_export_gets_404(
    client: TestClient, finished: tuple[Any, dict[str, Any]], runtime: Runtime
) -> None:
    creds, record = finished
    expires = int(time.time()) + 600

    def signed(unique_id: str) -> str:
        signature = runtime.signer.signature(unique_id, expires)
        return f"{EXPORTS}/{unique_id}/file?expires={expires}&signature={signature}"

    assert_error(client.get(signed("a9f1c2d4-0000-4000-8000-000000000000")), 404)

    # Deleted: the old link and a freshly signed one both 404.
    old_link = record["download_url"]
    assert client.delete(f"{EXPORTS}/{record['unique_id']}", headers=creds.headers).is_success
    assert_error(client.get(old_link), 404)
    assert_error(client.get(signed(record["unique_id"])), 404)

    # Not finished yet: nothing to download.
    pending = create_export(client, creds.headers, type="users", end_date="2017-01-01")
    with_signature = client.get(signed(pending["unique_id"]))
    assert with_signature.status_code in (200, 404)  # the job may already have finished
    if with_signature.status_code == 404:
        assert_error(with_signature, 404)


def test_a_file_missing_from_storage_gets_404_not_500(
    client: TestClient, finished: tuple[Any, dict[str, Any]], runtime: Runtime
) -> None:
    _, record = finished
    [path] = stored_files(runtime)
    path.unlink()
    assert_error(client.get(record["download_url"]), 404, "create the export again")


@pytest.mark.parametrize(
    ("extra_env", "prefix"),
    [
        (
            {"CHATFERRY_BASE_URL": "https://backup.example.com/chat"},
            "https://backup.example.com/chat/api/v2.1/rest/exports/",
        ),
        (
            {"CHATFERRY_BASE_URL": "https://files.example.org:8443/"},
            "https://files.example.org:8443/api/v2.1/rest/exports/",
        ),
    ],
    ids=["with-path", "trailing-slash"],
)
def test_the_base_url_setting_changes_the_links_host(
    client: TestClient, new_app: NewApp, prefix: str
) -> None:
    creds = new_app()
    record = export_and_wait(client, creds.headers, type="comments")
    url = record["download_url"]
    assert url.startswith(prefix), url
    assert "//api" not in url
    # Behind a proxy that strips the prefix, the path and query reach this server.
    path = "/api/" + url.split("/api/", 1)[1]
    response = client.get(path)
    assert response.status_code == 200
    assert response.content == b"[]\n"


@pytest.mark.slow
def test_curl_remote_header_name_saves_the_file_under_its_original_name(
    finished: tuple[Any, dict[str, Any]], tmp_path: Path, start_server: StartServer
) -> None:
    """`curl -OJ` only reads a plain filename="..." (not RFC 5987's filename*)."""
    _creds, record = finished
    server = start_server()
    path_and_query = record["download_url"].split("http://testserver", 1)[1]
    subprocess.run(["curl", "-sfOJ", server.base_url + path_and_query], cwd=tmp_path, check=True)
    saved = tmp_path / record["original_filename"]
    assert saved.is_file()
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == record["sha256"]
