"""The documents service's one event vocabulary: ``job_created`` for every new job,
``retry_requested`` for every retry, whichever entry point asked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from docingest.errors import Conflict, NotFound
from docingest.runtime import Runtime
from tests.fixtures import pipeline

pytestmark = pytest.mark.integration

MD = b"# Harbour\n\nThe harbour master logged every schooner that crossed the bar at dawn.\n"


def _types(rt: Runtime, job_id: object) -> list[tuple[str, dict[str, object]]]:
    return [(e["type"], e["payload"]) for e in pipeline.events(rt, job_id)]


def test_a_registered_file_and_an_upload_each_get_one_job_created_event(
    runtime: Runtime, tmp_path: Path
) -> None:
    path = tmp_path / "h.md"
    path.write_bytes(MD)
    reg = runtime.documents.register_file(path, user_id="ana")
    assert reg.created and reg.job is not None
    assert _types(runtime, reg.job.job_id) == [
        ("job_created", {"via": "ingest", "state": "queued", "bytes_len": len(MD), "mime": "text/markdown"})
    ]

    ticket = runtime.documents.request_upload(
        "bo", filename="h.md", bytes_len=len(MD), mime="text/markdown", sha256=hashlib.sha256(MD).hexdigest()
    )
    assert ticket.created and ticket.job is not None
    assert _types(runtime, ticket.job.job_id) == [
        ("job_created", {"via": "upload", "state": "waiting", "bytes_len": len(MD), "mime": "text/markdown"})
    ]


def test_a_retry_is_one_event_and_the_cli_is_told_to_ingest_a_file_that_was_not_kept(
    runtime: Runtime, tmp_path: Path
) -> None:
    ticket = runtime.documents.request_upload(
        "cy", filename="h.md", bytes_len=len(MD), mime="text/markdown", sha256=hashlib.sha256(MD).hexdigest()
    )
    assert ticket.job is not None
    job_id = ticket.job.job_id
    with runtime.database.connection() as conn:  # the upload never arrived
        conn.execute(
            "UPDATE upload_pipeline.upload_jobs SET next_attempt_at = now() - interval '1 s',"
            " created_at = now() - interval '1 min'"
            " WHERE job_id = %s",
            (job_id,),
        )
    assert runtime.documents.sweep()["expired"] == 1
    with pytest.raises(NotFound):
        runtime.documents.retry(job_id, user_id="someone-else")
    with pytest.raises(Conflict, match="docingest ingest"):
        runtime.documents.retry(job_id, via="cli")  # no signed URL for the CLI: nothing written
    retried = runtime.documents.retry(job_id, user_id="cy", via="api")
    assert retried.job.state.value == "waiting" and retried.upload is not None
    assert [p for t, p in _types(runtime, job_id) if t == "retry_requested"] == [
        {"via": "api", "previous_error_code": "upload_expired", "rearmed": True}
    ]
    with pytest.raises(Conflict, match="only a failed job"):
        runtime.documents.retry(job_id, user_id="cy")
