"""Each bad input, uploaded through the HTTP flow, ends in its expected state and code.

The HTTP half of issue 5's check (the ``docingest ingest`` half is
tests/integration/test_bad_inputs.py); both read ``CASES`` from
tests/fixtures/make_bad_inputs.py. One API server (uvicorn, local storage) and one
``docingest worker`` process serve every case: each file is uploaded as a client would,
``POST /api/v2/upload`` declaring the case's name, type and size, ``PUT`` to the signed
URL, ``POST /upload/{job_id}/complete``; then each document is read back through the API
(``GET /documents/{id}``, ``GET /jobs/{id}``, the events of ``GET /documents/{id}/events``)
and, for the checks the API does not expose (NULs counted, empty pages, chunk offsets),
through the database with the CLI test's ``check_outcome``.

A case the upload flow refuses before any job runs (``case.http_refusal``) is checked at
that step: its status, and ``case.expected_code`` as the body's ``error_code``. The stored
object larger than its declared size cannot be made with local storage (the signed URL
refuses the extra bytes: that is its refusal); Supabase Storage accepts whatever the
client sends, so :func:`test_stored_object_larger_than_declared_fails_size_mismatch` runs
that case against the Supabase backend and the worker refuses it.

Mismatches are collected into one table and asserted empty, so a run reports every case.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docingest.providers.storage import make_storage
from docingest.providers.storage.signing import mint_service_key
from docingest.runtime import Runtime
from docingest.settings import Settings
from tests.conftest import make_settings, new_database
from tests.e2e.client import API, ApiClient, token
from tests.e2e.conftest import SECRET, running_api
from tests.e2e.servers import api_server, free_port, storage_server, worker
from tests.fixtures import pipeline
from tests.fixtures.make_bad_inputs import CASES, MAX_FILE_BYTES, BadInput, generate
from tests.integration.test_bad_inputs import check_outcome

pytestmark = pytest.mark.e2e
USER = "bad-http"
DRAIN_SECONDS = 300.0  # the 3,000-page PDF is the long one; the CLI test allows 240 s for all


@pytest.fixture(scope="module")
def stack(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """API + worker on a new database, with the corpus's size limit (as the CLI test)."""
    with running_api(
        pg_url,
        tmp_path_factory.mktemp("bad-http"),
        max_file_bytes=MAX_FILE_BYTES,
        parse_memory_mb=512,
        max_active_jobs_per_user=len(CASES) + 1,
    ) as running:
        yield running


def _refusal(reply: Any, case: BadInput) -> list[str]:
    """Mismatches of a refused step: its status, and the case's code in the JSON body."""
    assert case.http_refusal is not None
    step, status = case.http_refusal
    try:
        body = reply.json()
    except ValueError:
        body = {}
    problems = []
    if reply.status_code != status:
        problems.append(f"{step} answered {reply.status_code}, expected {status}: {reply.text[:300]}")
    if body.get("error_code") != case.expected_code:
        problems.append(f"{step} error_code {body.get('error_code')!r}, expected {case.expected_code!r}")
    if not body.get("message"):
        problems.append(f"{step} reply has no message")
    return problems


def _upload(client: ApiClient, case: BadInput, data: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    """Run the upload flow for one case; ``(ticket, mismatches)``, ticket None when refused."""
    declared = len(data) - case.declared_bytes_len_delta
    reply = client.request_upload(data, filename=case.name, mime=case.declared_mime, bytes_len=declared)
    refusal = case.http_refusal[0] if case.http_refusal else None
    if refusal == "upload":
        return None, _refusal(reply, case)
    if reply.status_code != 201:
        return None, [f"POST /upload answered {reply.status_code}: {reply.text[:300]}"]
    ticket: dict[str, Any] = reply.json()
    put = client.put(ticket, data)
    if refusal == "put":
        doc = client.http.get(f"{API}/documents/{ticket['document_id']}").json()
        problems = _refusal(put, case)
        if doc["state"] != "waiting":  # nothing was stored: the job still waits for its bytes
            problems.append(f"after the refused PUT the job is {doc['state']}, expected waiting")
        return None, problems
    if put.status_code != 200:
        return None, [f"PUT answered {put.status_code}: {put.text[:300]}"]
    done = client.http.post(f"{API}/upload/{ticket['job_id']}/complete")
    if done.status_code != 200:
        return None, [f"POST /complete answered {done.status_code}: {done.text[:300]}"]
    return ticket, []


def _api_outcome(client: ApiClient, case: BadInput, doc: dict[str, Any]) -> list[str]:
    """Mismatches of a processed case, from what the API shows."""
    problems = []
    if (doc["state"], doc["error_code"]) != (case.expected_state, case.expected_code):
        problems.append(f"{doc['stage']}/{doc['state']} {doc['error_code']}: {doc['error_message']}")
        return problems
    job = client.http.get(f"{API}/jobs/{doc['job_id']}").json()
    events = client.events(doc["document_id"])
    retried = [e for e in events if e["type"] == "retry_scheduled"]
    if case.expected_state == "failed":
        if job["retry_count"] != 0 or job["attempts"] != 1 or retried:
            problems.append(
                f"permanent error retried: attempts {job['attempts']}, retry_count "
                f"{job['retry_count']}, {len(retried)} retry events"
            )
        if not doc["error_message"] or doc["chunks"]:
            problems.append(f"failed with message {doc['error_message']!r} and {doc['chunks']} chunks")
    else:
        if doc["stage"] != "complete" or not doc["chunks"]:
            problems.append(f"done at stage {doc['stage']} with {doc['chunks']} chunks")
        if case.pages is not None and doc["page_count"] != case.pages:
            problems.append(f"{doc['page_count']} pages, expected {case.pages}")
    if case.warning_mime is not None and not any(
        e["type"] == "warning" and e["payload"].get("detected_mime") == case.warning_mime for e in events
    ):
        problems.append(f"no warning event naming {case.warning_mime}")
    return problems


def _report(mismatches: dict[str, list[str]]) -> str:
    rows = [f"  {name}: {problem}" for name, problems in mismatches.items() for problem in problems]
    return f"{len(mismatches)} of {len(CASES)} bad inputs did not end as CASES says:\n" + "\n".join(rows)


def test_every_bad_input_through_the_http_upload_flow(stack: tuple[str, Settings], tmp_path: Path) -> None:
    base, settings = stack
    paths = generate(tmp_path / "corpus")
    client = ApiClient(base, token(SECRET, USER, ttl_seconds=3600))
    mismatches: dict[str, list[str]] = {}
    tickets: dict[str, dict[str, Any]] = {}
    try:
        for case in CASES:
            ticket, problems = _upload(client, case, paths[case.name].read_bytes())
            if problems:
                mismatches[case.name] = problems
            if ticket is not None:
                tickets[case.name] = ticket
        deadline = time.monotonic() + DRAIN_SECONDS
        docs: dict[str, dict[str, Any]] = {}
        for name, ticket in tickets.items():
            try:
                docs[name] = client.wait_document(
                    ticket["document_id"], timeout=max(1.0, deadline - time.monotonic())
                )
            except TimeoutError as exc:
                mismatches.setdefault(name, []).append(f"not terminal: {exc}")
        for name, doc in docs.items():
            case = next(c for c in CASES if c.name == name)
            problems = _api_outcome(client, case, doc)
            if problems:
                mismatches.setdefault(name, []).extend(problems)
        listed = {
            d["filename"]
            for d in client.http.get(f"{API}/documents", params={"limit": 500}).json()["documents"]
        }
    finally:
        client.close()
    refused_at_upload = {c.name for c in CASES if c.http_refusal and c.http_refusal[0] == "upload"}
    for name in listed & refused_at_upload:
        mismatches.setdefault(name, []).append("refused at POST /upload, yet a document exists")
    # What the API does not show (NULs counted, empty pages, chunk limits and offsets): the rows.
    rt = Runtime(settings, migrate=False)
    try:
        ids = [uuid.UUID(t["document_id"]) for n, t in tickets.items() if n in docs and n not in mismatches]
        jobs = {j["filename"]: j for j in pipeline.latest_jobs(rt, ids).values()}
        for name, job in jobs.items():
            try:
                check_outcome(rt, job, next(c for c in CASES if c.name == name))
            except AssertionError as exc:
                mismatches.setdefault(name, []).append(f"database check: {exc}".splitlines()[0])
    finally:
        rt.close()
    assert not mismatches, _report(mismatches)
    # Every case was decided: by the upload flow, or by the worker (all others).
    assert set(docs) | {c.name for c in CASES if c.http_refusal} == {c.name for c in CASES}


def test_stored_object_larger_than_declared_fails_size_mismatch(pg_url: str, tmp_path: Path) -> None:
    """Supabase Storage keeps every byte the client PUTs; the worker refuses the object from
    its size alone (``size_mismatch``), at once, and deletes it. Asked for again with the real
    size, the upload is re-armed and the document completes."""
    case = next(c for c in CASES if c.expected_code == "size_mismatch")
    data = generate(tmp_path / "in", {case.name})[case.name].read_bytes()
    db = new_database(pg_url)
    common: dict[str, Any] = {
        "jwt_secret": SECRET,
        "api_port": free_port(),
        "upload_sweep_seconds": 0.5,
        "max_file_bytes": MAX_FILE_BYTES,
    }
    with storage_server(make_settings(db, tmp_path / "storage-data", **common), tmp_path) as url:
        settings = make_settings(
            db,
            tmp_path / "data",
            storage_backend="supabase",
            storage_url=url,
            storage_service_key=mint_service_key(SECRET),
            **common,
        )
        storage = make_storage(settings)
        with api_server(settings, tmp_path) as base, worker(settings, tmp_path, concurrency=1):
            client = ApiClient(base, token(SECRET, USER))
            try:
                reply = client.request_upload(
                    data,
                    filename=case.name,
                    mime=case.declared_mime,
                    bytes_len=len(data) - case.declared_bytes_len_delta,
                    source=case.name,
                )
                assert reply.status_code == 201, reply.text
                ticket = reply.json()
                assert client.put(ticket, data).status_code == 200  # stored whole, over its declared size
                raw = f"{USER}/raw/{ticket['document_id']}.txt"
                stored = storage.head(raw)
                assert (
                    stored is not None
                    and stored.size == len(data) > len(data) - case.declared_bytes_len_delta
                )
                done = client.http.post(f"{API}/upload/{ticket['job_id']}/complete")
                assert done.status_code == 200, done.text
                doc = client.wait_document(ticket["document_id"], timeout=60)
                job = client.http.get(f"{API}/jobs/{ticket['job_id']}").json()
                events = client.events(ticket["document_id"])
                assert storage.head(raw) is None  # a permanent mismatch deletes the object
                # Asked for again with the real size: the same document and job wait for the bytes.
                again = client.request_upload(
                    data, filename=case.name, mime=case.declared_mime, source=case.name
                )
                assert again.status_code == 200, again.text
                rearmed = again.json()
                assert (rearmed["job_id"], rearmed["state"], rearmed["reupload"]) == (
                    ticket["job_id"],
                    "waiting",
                    True,
                )
                assert client.put(rearmed, data).status_code == 200
                assert client.http.post(f"{API}/upload/{ticket['job_id']}/complete").status_code == 200
                redone = client.wait_document(ticket["document_id"], timeout=60)
            finally:
                client.close()
                storage.close()
    assert (doc["stage"], doc["state"], doc["error_code"]) == ("uploaded", "failed", "size_mismatch"), doc
    assert f"stored object has {len(data)} bytes" in doc["error_message"]
    assert job["attempts"] == 1 and job["retry_count"] == 0
    assert not [e for e in events if e["type"] == "retry_scheduled"]
    assert (redone["stage"], redone["state"], redone["bytes_len"]) == ("complete", "done", len(data)), redone
