"""The OpenAPI document says what the API really does (the fuzzer checks the answers;
this checks the document a developer and /docs read)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from support.http import API

# The document does not depend on the database: SQLite is enough.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

DOWNLOAD = f"{API}/exports/{{unique_id}}/file"
ERROR_REF = "#/components/schemas/ErrorEnvelope"
TAGS = {"exports", "imports", "schedules", "stats", "operations"}


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def api_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [op for op in operations(document) if op[1].startswith(API)]


def authenticated(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [op for op in api_operations(document) if op[1] != DOWNLOAD]


def test_no_422_anywhere(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert '"422"' not in text
    assert "HTTPValidationError" not in text and '"ValidationError"' not in text


def test_every_api_call_needs_both_headers(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert {(s["type"], s["in"], s["name"]) for s in schemes.values()} == {
        ("apiKey", "header", "QISCUS-SDK-APP-ID"),
        ("apiKey", "header", "QISCUS-SDK-SECRET"),
    }
    for method, path, operation in authenticated(document):
        # One requirement naming both schemes: both headers, not either of them.
        assert operation.get("security") == [{key: [] for key in schemes}], (method, path)
    for method, path, operation in operations(document):
        if (method, path) not in {(m, p) for m, p, _ in authenticated(document)}:
            assert "security" not in operation, (method, path)  # a signed link, or ops


def test_every_operation_has_a_summary_a_tag_and_a_description(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids)), "operation ids are unique"
    declared = {tag["name"]: tag.get("description") for tag in document["tags"]}
    assert set(declared) >= TAGS and all(declared.values()), declared
    for method, path, operation in operations(document):
        assert operation.get("summary"), (method, path)
        assert len(operation.get("tags", [])) == 1 and operation["tags"][0] in declared
    for method, path, operation in api_operations(document):
        assert len(operation.get("description", "")) > 20, (method, path)


def _error_statuses(operation: dict[str, Any]) -> set[int]:
    return {int(code) for code in operation["responses"] if code.startswith("4")}


def test_every_api_call_documents_its_errors_in_the_envelope(document: dict[str, Any]) -> None:
    for method, path, operation in api_operations(document):
        statuses = _error_statuses(operation)
        for status in statuses:
            content = operation["responses"][str(status)]["content"]
            assert content["application/json"]["schema"] == {"$ref": ERROR_REF}, (method, path)
        expected = {403, 404, 416, 400} if path == DOWNLOAD else {401, 429}
        if "{unique_id}" in path or "{webhook_id}" in path:
            expected.add(404)
        if "requestBody" in operation:
            expected |= {400, 413}
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            expected.add(400)
        if method == "POST" and path in (
            f"{API}/exports",
            f"{API}/export_schedules/{{unique_id}}/run",
        ):
            expected.add(409)  # over the stored bytes quota
        assert statuses == expected, (method, path, statuses)
    envelope = document["components"]["schemas"]["ErrorEnvelope"]
    assert set(envelope["required"]) == {"status", "error"}


def test_rate_limits_and_range_errors_document_their_headers(document: dict[str, Any]) -> None:
    for method, path, operation in api_operations(document):
        responses = operation["responses"]
        # In the description: a documented header makes /docs too wide for a phone.
        if "429" in responses:
            assert "Retry-After" in responses["429"]["description"], (method, path)
        if "416" in responses:
            assert "Content-Range" in responses["416"]["description"], (method, path)


def test_request_bodies_are_documented(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for method, path, operation in api_operations(document):
        if method not in ("POST", "PATCH") or path.endswith(("/run", "/test", "/retry")):
            assert "requestBody" not in operation, (method, path)
            continue
        body = operation["requestBody"]
        assert body["required"] is True
        [(media, content)] = body["content"].items()
        schema = content["schema"]
        if media == "multipart/form-data":
            assert path == f"{API}/imports"
            assert set(schema["required"]) == {"type", "file"}
            assert schema["properties"]["file"]["format"] == "binary"
        else:
            assert media == "application/json"
            name = schema["$ref"].rsplit("/", 1)[1]
            assert "properties" in schemas[name]
            assert schemas[name].get("required") or schemas[name].get("minProperties") == 1
            assert content["examples"], (method, path)


def test_page_and_limit_are_bounded_integers(document: dict[str, Any]) -> None:
    listed = [
        op
        for op in api_operations(document)
        if any(p["name"] == "page" for p in op[2].get("parameters", []))
    ]
    assert len(listed) == 3
    for method, path, operation in listed:
        params = {p["name"]: p for p in operation["parameters"]}
        assert params["page"]["schema"]["type"] == "integer", (method, path)
        assert params["page"]["schema"]["minimum"] == 1
        assert (
            params["limit"]["schema"] | {"minimum": 1, "maximum": 100} == params["limit"]["schema"]
        )
        assert params["limit"]["schema"]["type"] == "integer"


def test_the_specs_examples_are_in_the_document(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    # The spec's export and import records, and its export request.
    assert "dd2c46a8-0921-4b75-837c-cee1b9804787" in text
    assert "2017-07-17T10:19:44+07:00_exported_comments.json" in text
    assert "13c4952f-4b77-4705-9523-7ddca9c45967" in text
    create = document["paths"][f"{API}/exports"]["post"]["requestBody"]["content"]
    examples = [e["value"] for e in create["application/json"]["examples"].values()]
    assert {"type": "comments", "start_date": "2017-01-01", "end_date": "2017-01-05"} in examples
