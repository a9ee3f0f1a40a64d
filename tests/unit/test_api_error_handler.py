"""The API's one error handler answers each ``DocingestError`` with the class's own
``http_status`` and ``error_code``; no table elsewhere decides them."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from docingest import errors as e
from docingest.api import errors as api_errors


def _client(exc: e.DocingestError) -> TestClient:
    app = FastAPI()
    api_errors.install(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    return TestClient(app)


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (e.FileTooLarge("too big"), 413),
        (e.UnsupportedType("image/png"), 415),
        (e.ContentTypeMismatch("not a PDF"), 415),
        (e.EmptyFile("empty"), 422),
        (e.StorageUnavailable("down"), 503),
        (e.EmbeddingUnavailable("down"), 500),
        (e.EmbeddingRejected("bad key"), 400),
        (e.NotFound("no job"), 404),
        (e.TooManyActiveJobs("wait"), 429),
        (e.QueryTooLong("long"), 422),
        (e.InternalInvariantError("bug: x"), 500),
        (e.DatabaseNotMigrated("run `docingest migrate`"), 503),
    ],
)
def test_the_status_and_code_are_the_class_attributes(exc: e.DocingestError, status: int) -> None:
    reply = _client(exc).get("/boom")
    assert reply.status_code == status == exc.http_status
    assert reply.json() == {"error_code": exc.error_code, "message": exc.message}


def test_a_setup_error_keeps_its_paths_for_the_operator_but_the_api_scrubs_them() -> None:
    exc = e.EmbeddedDatabaseFailed("could not start the embedded PostgreSQL in /var/lib/docingest/pg")
    assert "/var/lib/docingest/pg" in str(exc)  # what the CLI prints
    assert isinstance(exc, RuntimeError)
    reply = _client(exc).get("/boom")
    assert reply.status_code == 503 and reply.json()["error_code"] == "embedded_database_failed"
    assert reply.json()["message"] == "could not start the embedded PostgreSQL in <file>"
    assert e.classify(exc).message == "could not start the embedded PostgreSQL in <file>"  # stored on a job


def test_an_unknown_path_and_a_wrong_method_take_their_code_from_the_tree() -> None:
    client = _client(e.NotFound())
    assert client.get("/nowhere").json()["error_code"] == "not_found"
    reply = client.post("/boom")
    assert reply.status_code == 405 and reply.json()["error_code"] == "method_not_allowed"
    assert e.request_error_for_status(422) is e.InvalidRequest
    assert e.request_error_for_status(401) is e.Unauthorized
    assert e.request_error_for_status(418) is e.RequestError
