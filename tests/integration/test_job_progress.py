"""A job's typed progress: control state (``upload_jobs.control``) apart from display figures
(``upload_jobs.progress``), and a database made before migration 005 upgraded in place."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from docingest.api.schemas import DocumentPublic, JobPublic
from docingest.domain import Job, JobControl, JobProgress, read_progress
from docingest.runtime import Runtime
from docingest.services.progress import shown_progress
from tests.conftest import database_before, make_settings
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration


#: What a job of the previous release kept in ``progress``: control keys among the figures,
#: and a key no model declares.
OLD_PROGRESS: dict[str, Any] = {
    "detected_kind": "pdf",
    "detected_mime": "application/pdf",
    "llamaparse_job_id": "remote-1",
    "llamaparse_submitted_at": 1_700_000_000.5,
    "llamaparse_deadline": 1_700_000_600.5,
    "llamaparse_polls": 2,
    "llamaparse_status": "PENDING",
    "pages_total": 3,
    "last_error_code": "storage_unavailable",
    "eta_s": 4.5,
    "future_key": {"a": [1, 2]},
}
CONTROL = {
    "detected_kind",
    "detected_mime",
    "llamaparse_job_id",
    "llamaparse_submitted_at",
    "llamaparse_deadline",
    "llamaparse_polls",
    "last_error_code",
}


def _old_job(url: str, progress: dict[str, Any], *, state: str = "queued") -> tuple[uuid.UUID, uuid.UUID]:
    document_id, job_id = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO upload_pipeline.documents (document_id, user_id, filename, mime,"
            " bytes_len, file_sha256, raw_path) VALUES (%s, 'u1', 'old.pdf', 'application/pdf',"
            " 10, %s, 'u1/raw/old.pdf')",
            (document_id, uuid.uuid4().hex * 2),
        )
        conn.execute(
            "INSERT INTO upload_pipeline.upload_jobs (job_id, document_id, stage, state, progress)"
            " VALUES (%s, %s, 'parse_queued', %s, %s::jsonb)",
            (job_id, document_id, state, json.dumps(progress)),
        )
        conn.commit()
    return document_id, job_id


def test_a_job_written_by_the_previous_release_reads_the_same_after_migration_005(
    pg_url: str, tmp_path: Path
) -> None:
    url = database_before(pg_url, "005")
    document_id, job_id = _old_job(url, OLD_PROGRESS)
    with psycopg.connect(url, row_factory=dict_row) as conn:  # as the API showed it before
        before = conn.execute("SELECT progress - 'eta_s' AS p FROM upload_pipeline.upload_jobs").fetchone()[
            "p"
        ]
    rt = Runtime(make_settings(url, tmp_path / "data"), migrate=False)
    try:
        assert rt.apply_migrations()[:3] == ["005_job_control", "006_partial_hnsw", "007_context_fulltext"]
        [row] = rows(rt, "SELECT progress, control FROM upload_pipeline.upload_jobs")
        assert row["control"] == {k: v for k, v in OLD_PROGRESS.items() if k in CONTROL}
        assert row["progress"] == {k: v for k, v in OLD_PROGRESS.items() if k not in CONTROL}
        with rt.pool().connection() as conn:
            job = rt.repo.get_job(conn, job_id)
            assert job is not None
            assert job.control == JobControl(**{k: v for k, v in OLD_PROGRESS.items() if k in CONTROL})
            assert job.control.llamaparse_job_id == "remote-1" and job.control.llamaparse_polls == 2
            assert job.progress.pages_total == 3 and job.progress.llamaparse_status == "PENDING"
            assert job.progress.model_extra == {"future_key": {"a": [1, 2]}}
            # The webhook finds the job by the remote id, now in control.
            assert rt.repo.wake_parse_job(conn, job_id, "remote-1")
        with rt.database.user_transaction("u1") as conn:
            view = rt.repo.get_document_view(conn, user_id="u1", document_id=document_id)
        shown = DocumentPublic.from_row(view).model_dump(mode="json")["progress"]
        # The API's progress object: the same keys, values and order as before the migration
        # (a queued job shows no ETA).
        assert json.dumps(shown) == json.dumps(before)
        assert JobPublic.from_job(job).progress == before
    finally:
        rt.close()


def test_progress_and_control_merge_in_their_own_columns(runtime: Runtime, db_url: str) -> None:
    _, job_id = _old_job(db_url, {})
    with runtime.pool().connection() as conn:
        job = runtime.repo.get_job(conn, job_id)
        assert job is not None and job.progress == JobProgress() and job.control == JobControl()
        claimed = runtime.repo.claim_job(conn, worker_id="w", lease_seconds=30)
        assert claimed is not None
        runtime.repo.update_progress(
            conn,
            job_id,
            JobProgress(pages_parsed=1, pages_total=9, eta_s=None),
            control=JobControl(detected_kind="pdf"),
            lease_seconds=30,
        )
        updated = runtime.repo.complete_stage(
            conn,
            claimed.job,
            stage="parsed",
            state="working",
            events=[],
            progress=JobProgress(pages_parsed=9, eta_s=0),
            control=JobControl(llamaparse_job_id=None),
            lease_seconds=30,
        )
    assert updated is not None
    [row] = rows(
        runtime, "SELECT progress, control, progress || control AS merged FROM upload_pipeline.upload_jobs"
    )
    assert row["progress"] == {"pages_parsed": 9, "pages_total": 9, "eta_s": 0}
    assert row["control"] == {"detected_kind": "pdf", "llamaparse_job_id": None}
    assert updated.progress.as_dict() == row["progress"] and updated.control.as_dict() == row["control"]
    # What API replies show: both objects, in the order one jsonb object would hold them.
    shown = shown_progress(updated.progress, stalled=False, state="working", control=updated.control)
    assert list(shown.items()) == list(row["merged"].items())
    assert shown_progress(row["progress"], stalled=False, state="working", control=row["control"]) == shown


def test_reading_never_fails_on_what_another_release_wrote() -> None:
    control, display = read_progress(
        {"pages_total": "many", "chunks_total": 4, "detected_kind": 7, "new_figure": 1.5, "eta_s": 2}
    )
    assert control == JobControl()  # a control value of the wrong type is read as unset
    assert display.as_dict() == {"chunks_total": 4, "new_figure": 1.5, "eta_s": 2}
    assert display.without_eta().as_dict() == {"chunks_total": 4, "new_figure": 1.5}
    # A row read by a query without the control column: control keys come from progress.
    job = Job.from_row(
        {
            "job_id": uuid.uuid4(),
            "document_id": uuid.uuid4(),
            "stage": "parse_queued",
            "state": "queued",
            "attempt_id": None,
            "claimed_by": None,
            "lease_expires_at": None,
            "attempts": 0,
            "retry_count": 0,
            "lost_leases": 0,
            "next_attempt_at": None,
            "progress": {"detected_kind": "docx", "pages_total": 2},
        }
    )
    assert job.control.detected_kind == "docx" and job.progress.as_dict() == {"pages_total": 2}
    # The control column wins over a stale copy in progress.
    control, _ = read_progress({"detected_kind": "docx"}, {"detected_kind": "pdf"})
    assert control.detected_kind == "pdf"
