"""The console's and /docs' pages and files: redirects, security headers, no outside refs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from chatferry.api.console import CONSOLE_DIR

# The pages do not depend on the database: one backend is enough.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
STATIC_FILES = sorted(p.name for p in CONSOLE_DIR.iterdir() if p.is_file())


def directives(policy: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def assert_strict_headers(headers: object) -> None:
    policy = directives(headers["content-security-policy"])  # type: ignore[index]
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["style-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert headers["x-content-type-options"] == "nosniff"  # type: ignore[index]


@SQLITE_ONLY
def test_root_redirects_to_the_console(client: TestClient) -> None:
    for method in ("GET", "HEAD"):
        response = client.request(method, "/", follow_redirects=False)
        assert response.status_code == 307
        assert response.headers["location"] == "/console"
    assert client.get("/console/", follow_redirects=False).headers["location"] == "/console"


@SQLITE_ONLY
def test_the_console_page_is_html_under_a_strict_csp(client: TestClient) -> None:
    response = client.get("/console")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert_strict_headers(response.headers)
    assert '<script type="module" src="/console/static/app.js"></script>' in response.text
    assert client.head("/console").status_code == 200


@SQLITE_ONLY
@pytest.mark.parametrize("name", STATIC_FILES)
def test_static_files_are_served_with_their_types(client: TestClient, name: str) -> None:
    response = client.get(f"/console/static/{name}")
    assert response.status_code == 200
    expected = {
        ".js": "text/javascript",
        ".css": "text/css",
        ".html": "text/html",
        ".svg": "image/svg+xml",
    }[Path(name).suffix]
    assert response.headers["content-type"].startswith(expected)
    assert response.headers["cache-control"] == "no-cache"  # kept, revalidated by ETag
    assert_strict_headers(response.headers)
    etag = response.headers["etag"]
    assert client.get(f"/console/static/{name}", headers={"if-none-match": etag}).status_code == 304


@pytest.mark.parametrize("name", STATIC_FILES)
def test_nothing_is_fetched_from_outside_and_nothing_inline(name: str) -> None:
    body = (CONSOLE_DIR / name).read_text()
    outside = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", body, flags=re.I)
    assert [u for u in outside if "www.w3.org" not in u] == [], name  # SVG's namespace
    if name.endswith(".html"):
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), "inline script"
        assert not re.search(r"<style\b", body), "inline style element"
        assert not re.search(r"\sstyle=", body), "inline style attribute"
        assert not re.search(r"\son[a-z]+=", body), "inline event handler"
    if name.endswith(".js"):
        for risky in (
            "innerHTML",
            "outerHTML",
            ".style.",
            "eval(",
            "new Function",
            "document.write",
        ):
            assert risky not in body, (name, risky)
        assert "localStorage" not in body, "credentials live in sessionStorage only"


def test_the_secret_is_never_put_in_a_url_or_a_cookie() -> None:
    api = (CONSOLE_DIR / "api.js").read_text()
    assert "document.cookie" not in api
    assert 'credentials: "omit"' in api
    assert "searchParams.set(key" in api  # only the caller's query, never the secret
    assert re.search(r"QISCUS-SDK-SECRET.: creds\.secret", api)


@SQLITE_ONLY
def test_docs_are_swagger_ui_from_local_files(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert_strict_headers(page.headers)
    assert 'src="/docs/swagger-ui-bundle.js"' in page.text
    assert 'href="/docs/swagger-ui.css"' in page.text
    assert 'src="/console/static/docs.js"' in page.text
    bundle = client.get("/docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in bundle.content
    assert client.get("/docs/swagger-ui.css").headers["content-type"].startswith("text/css")
    document = client.get("/openapi.json").json()
    stats = document["paths"]["/api/v2.1/rest/stats/daily"]["get"]
    assert {name for need in stats["security"] for name in need} == {"AppId", "Secret"}
    schemes = document["components"]["securitySchemes"]
    assert schemes["Secret"]["name"] == "QISCUS-SDK-SECRET"  # "Authorize" sends it
    download = document["paths"]["/api/v2.1/rest/exports/{unique_id}/file"]["get"]
    assert "security" not in download  # the signed link is the credential


@pytest.mark.parametrize(
    "path", ["/docs/redoc.standalone.js", "/docs/..%2Fcore.py", "/redoc", "/docs/oauth2-redirect"]
)
@SQLITE_ONLY
def test_other_doc_paths_are_404s_in_the_envelope(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["status"] == 404


@SQLITE_ONLY
def test_api_answers_carry_the_headers_too(client: TestClient) -> None:
    response = client.get("/api/v2.1/rest/exports")
    assert response.status_code == 401
    assert_strict_headers(response.headers)
