"""Refused requests answer the project's ``{"error_code", "message"}``, never FastAPI's ``detail``.

The app runs in-process (``TestClient``) over a real runtime and database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from docingest.api.app import create_app
from docingest.api.auth import mint_token
from docingest.runtime import Runtime

pytestmark = pytest.mark.integration
API = "/api/v2"


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    headers = {"Authorization": f"Bearer {mint_token(runtime.settings.jwt_secret, user_id='val')}"}
    with TestClient(create_app(runtime, sweep=False), headers=headers) as c:
        yield c


def _invalid(reply: Any) -> dict[str, Any]:
    assert reply.status_code == 422, reply.text
    body: dict[str, Any] = reply.json()
    assert "detail" not in body
    assert body["error_code"] == "invalid_request" and body["message"].startswith("invalid request: ")
    return body


def _upload(**fields: Any) -> dict[str, Any]:
    data = b"# Title\n\nSome words.\n"
    body = {
        "filename": "a.md",
        "bytes_len": len(data),
        "mime": "text/markdown",
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def test_body_errors_name_every_field(client: TestClient) -> None:
    body = _invalid(client.post(f"{API}/upload", json=_upload(sha256="nothex", bytes_len=None)))
    assert "sha256 (body): String should match pattern" in body["message"]
    assert "bytes_len (body): Field required" in body["message"]
    assert {(e["field"], e["in"], e["type"]) for e in body["errors"]} == {
        ("sha256", "body", "string_pattern_mismatch"),
        ("bytes_len", "body", "missing"),
    }
    assert "nothex" not in body["message"]  # the submitted value is not echoed back


def test_query_path_and_json_errors(client: TestClient) -> None:
    k = _invalid(client.get(f"{API}/search", params={"q": "x", "k": 0}))
    assert k["errors"] == [
        {
            "field": "k",
            "in": "query",
            "problem": "Input should be greater than or equal to 1",
            "type": "greater_than_equal",
        }
    ]
    assert "k (query): Input should be greater than or equal to 1" in k["message"]
    path = _invalid(client.get(f"{API}/documents/not-a-uuid"))
    assert path["errors"][0]["field"] == "document_id" and path["errors"][0]["in"] == "path"
    broken = _invalid(
        client.post(f"{API}/upload", content=b"{not json", headers={"content-type": "application/json"})
    )
    assert broken["errors"][0]["type"] == "json_invalid" and "JSON" in broken["message"]
    # The body as a whole is wrong, not a field named by the decoder's character offset.
    assert broken["errors"][0]["field"] == "body" and broken["errors"][0]["in"] == "body"
    assert broken["message"].startswith("invalid request: body (body): JSON decode error at character ")
    filename = _invalid(client.post(f"{API}/upload", json=_upload(filename="/")))
    assert "filename (body): Value error, the filename has no displayable characters" in filename["message"]


def test_a_zero_byte_upload_is_empty_file_and_json_is_accepted(client: TestClient) -> None:
    empty = client.post(f"{API}/upload", json=_upload(bytes_len=0, sha256=hashlib.sha256(b"").hexdigest()))
    assert empty.status_code == 422 and empty.json()["error_code"] == "empty_file", empty.text
    data = b'{"a": 1}'
    ok = client.post(
        f"{API}/upload",
        json=_upload(
            filename="a.json",
            mime="application/json",
            bytes_len=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        ),
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["signed_url"]


def test_openapi_describes_the_422_reply(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    reply = schema["paths"][f"{API}/upload"]["post"]["responses"]["422"]
    assert reply["content"]["application/json"]["schema"] == {  # invalid_request, or empty_file ...
        "anyOf": [
            {"$ref": "#/components/schemas/ValidationErrorPublic"},
            {"$ref": "#/components/schemas/ErrorPublic"},
        ]
    }
    assert "`invalid_request`" in reply["description"] and "`empty_file`" in reply["description"]
    model = schema["components"]["schemas"]["ValidationErrorPublic"]
    assert set(model["required"]) == {"error_code", "message", "errors"}
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_unknown_paths_and_wrong_methods_answer_the_error_shape(client: TestClient) -> None:
    missing = client.get(f"{API}/no-such-thing")
    assert missing.status_code == 404 and "detail" not in missing.json()
    assert missing.json() == {
        "error_code": "not_found",
        "message": f"no such resource: GET {API}/no-such-thing",
    }
    wrong = client.delete(f"{API}/search")
    assert wrong.status_code == 405 and "detail" not in wrong.json()
    assert wrong.json()["error_code"] == "method_not_allowed" and wrong.headers["allow"] == "GET, POST"
    from docingest.errors import request_error_table

    codes = {row.code for _, row in request_error_table()}
    assert {"not_found", "method_not_allowed", "unauthorized", "invalid_request"} <= codes


def test_the_webhook_refusals_are_codes_of_the_table(client: TestClient) -> None:
    reply = client.post(
        f"/api/v2/webhooks/llamaparse/{'0' * 8}-0000-0000-0000-{'0' * 12}",
        headers={"X-Docingest-Signature": "0" * 64},
        json={"data": {}},
    )
    assert reply.status_code == 401 and reply.json()["error_code"] == "unauthorized"


def test_an_over_long_query_is_query_too_long(client: TestClient) -> None:
    reply = client.get(f"{API}/search", params={"q": "otter " * 2000})
    assert reply.status_code == 422, reply.text
    assert reply.json()["error_code"] == "query_too_long"
    assert "11999 characters; at most 2000" in reply.json()["message"]  # the trailing space stripped
    assert client.get(f"{API}/search", params={"q": "otter " * 333}).status_code == 200  # 1998 characters


def test_metrics_is_prometheus_text_with_the_queue_depth_and_needs_no_token(client: TestClient) -> None:
    reply = client.get("/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    assert "docingest_stage_duration_seconds" in reply.text
    assert "# TYPE docingest_jobs gauge" in reply.text  # the queue depth, read at scrape time
    assert "docingest_metrics_scrape_errors_total 0.0" in reply.text


@pytest.mark.parametrize("value", [True, "12", 21.5])
def test_bytes_len_must_be_a_json_integer(client: TestClient, value: Any) -> None:
    body = _invalid(client.post(f"{API}/upload", json=_upload(bytes_len=value)))
    assert [(e["field"], e["in"]) for e in body["errors"]] == [("bytes_len", "body")]


def test_bytes_len_written_with_a_zero_fraction_is_that_integer(client: TestClient) -> None:
    # JSON Schema counts 21.0 as the integer 21 (what the schema's "type": "integer" accepts)
    reply = client.post(f"{API}/upload", json=_upload(bytes_len=21.0))
    assert reply.status_code == 201, reply.text
    document = client.get(f"{API}/documents/{reply.json()['document_id']}").json()
    assert document["bytes_len"] == 21 and isinstance(document["bytes_len"], int)


@pytest.mark.parametrize("q", ["", "   ", "\x00", "\u3000\t"])
def test_an_empty_query_is_invalid_request_naming_q(client: TestClient, q: str) -> None:
    body = _invalid(client.get(f"{API}/search", params={"q": q}))
    assert body["errors"] == [
        {
            "field": "q",
            "in": "query",
            "problem": "Value error, the query is empty or only whitespace: ask a question",
            "type": "value_error",
        }
    ]


def test_the_query_pattern_is_the_rule_the_api_applies() -> None:
    import re

    from docingest.api.routes.search import QUERY_PATTERN
    from docingest.services.search import clean_query

    pattern = re.compile(QUERY_PATTERN)
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        assert bool(pattern.search(ch)) == bool(clean_query(ch)), hex(code)


def test_mime_is_the_enum_as_written_and_the_schema_lists_it(client: TestClient) -> None:
    from docingest.services.documents import MIME_EXTENSIONS

    schema = client.get("/openapi.json").json()
    assert schema["components"]["schemas"]["UploadCreate"]["properties"]["mime"]["enum"] == list(
        MIME_EXTENSIONS
    )
    for mime in ("Text/Markdown", "text/markdown; charset=utf-8", "image/gif"):
        reply = client.post(f"{API}/upload", json=_upload(mime=mime))
        assert reply.status_code == 415 and reply.json()["error_code"] == "unsupported_type", reply.text
        assert "as written" in reply.json()["message"]


def test_every_bearer_route_documents_its_refusals(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            if operation.get("security") == [{"HTTPBearer": []}]:
                assert {"401", "422", "503"} <= statuses, (method, path)
                assert "invalid_token" in operation["responses"]["401"]["description"]
            if "{" in path and "webhooks" not in path:
                assert "404" in statuses, (method, path)
    upload = schema["paths"][f"{API}/upload"]["post"]
    assert {"200", "201", "401", "409", "413", "415", "422", "429", "503"} == set(upload["responses"])
    assert set(upload["responses"]["201"]["links"]) == {
        schema["paths"][path][method]["operationId"]
        for path, method in [
            (f"{API}/documents/{{document_id}}", "get"),
            (f"{API}/documents/{{document_id}}", "delete"),
            (f"{API}/jobs/{{job_id}}", "get"),
            (f"{API}/jobs/{{job_id}}/retry", "post"),
            (f"{API}/upload/{{job_id}}/complete", "post"),
        ]
    }
    webhook = schema["paths"]["/api/v2/webhooks/llamaparse/{job_id}"]["post"]
    assert {"202", "401", "404", "422", "503"} == set(webhook["responses"])
    assert "unauthorized" in webhook["responses"]["401"]["description"]


def test_a_wrong_method_lists_every_method_of_the_path(client: TestClient) -> None:
    reply = client.request("OPTIONS", f"{API}/documents/{'0' * 8}-0000-0000-0000-{'0' * 12}")
    assert reply.status_code == 405 and reply.headers["allow"] == "DELETE, GET"


def test_a_body_that_is_not_utf8_is_invalid_request(client: TestClient) -> None:
    body = _invalid(
        client.post(f"{API}/upload", content=b"\xff5", headers={"content-type": "application/json"})
    )
    assert body["errors"][0]["field"] == "body" and body["errors"][0]["type"] == "json_invalid"


def test_min_score_is_a_cosine_between_minus_one_and_one(client: TestClient) -> None:
    body = _invalid(client.get(f"{API}/search", params={"q": "tides", "min_score": 1.5}))
    assert [(e["field"], e["in"]) for e in body["errors"]] == [("min_score", "query")]
    reply = client.get(f"{API}/search", params={"q": "tides", "min_score": 0.5, "mode": "vector"})
    assert reply.status_code == 200 and reply.json()["results"] == []  # nothing ingested for this user


@pytest.mark.parametrize(
    ("value", "pydantic_type"),
    [("-1", "greater_than_equal"), ("11", "less_than_equal"), ("1.5", "int_parsing"), ("two", "int_parsing")],
)
def test_context_is_a_whole_number_of_chunks_from_0_to_10(
    client: TestClient, value: str, pydantic_type: str
) -> None:
    body = _invalid(client.get(f"{API}/search", params={"q": "tides", "context": value}))
    assert [(e["field"], e["in"], e["type"]) for e in body["errors"]] == [("context", "query", pydantic_type)]
    assert body["message"].startswith("invalid request: context (query): ")
    assert value not in body["message"]  # the submitted value is not echoed back


@pytest.mark.parametrize("value", ["0", "10"])
def test_context_accepts_its_bounds(client: TestClient, value: str) -> None:
    reply = client.get(f"{API}/search", params={"q": "tides", "context": value})
    assert reply.status_code == 200, reply.text
    assert reply.json()["context"] == int(value) and reply.json()["results"] == []  # nothing ingested


def test_a_size_past_any_integer_the_database_holds_is_file_too_large(client: TestClient) -> None:
    """Every bytes_len over UPLOAD_PIPELINE_MAX_FILE_BYTES is the documented 413, however big."""
    for size in (10**12, 2**63, 10**40):
        reply = client.post("/api/v2/upload", json=_upload(bytes_len=size))
        assert reply.status_code == 413, reply.text
        assert reply.json()["error_code"] == "file_too_large"


def test_the_registered_xlsm_spelling_is_taken_and_stored_in_lower_case(client: TestClient) -> None:
    reply = client.post(f"{API}/upload", json=_upload(mime="application/vnd.ms-excel.sheet.macroEnabled.12"))
    assert reply.status_code == 201, reply.text
    assert reply.json()["upload_headers"]["content-type"] == "application/vnd.ms-excel.sheet.macroenabled.12"
