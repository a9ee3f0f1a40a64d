"""A document is a version of a source (issue 17): new bytes under a source replace the serving
version when they complete, in one transaction; a failed version leaves the old one serving; the
latest registration of a source wins; identical bytes under another source reuse the chunks."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from docingest.domain import Stage
from docingest.errors import SourceConflict
from docingest.runtime import Runtime
from docingest.services.ingest import discover_sources, ingest
from tests.fixtures import pipeline
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration

OLD = "# Rota\n\nThe on-call rotation changes every Tuesday at noon, by the harbour office.\n"
NEW = "# Rota\n\nThe on-call rotation changes every Friday at noon, by the harbour office.\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _texts(rt: Runtime, user: str, query: str = "when does the on-call rotation change") -> list[str]:
    return [h.text for h in rt.searcher().search(query, user_id=user, k=10)]


def _versions(rt: Runtime, user: str, source: str) -> list[dict[str, Any]]:
    with rt.pool().connection() as conn:
        return rt.repo.source_versions(conn, user_id=user, source=source)


def _complete(rt: Runtime, *ids: UUID) -> dict[UUID, dict[str, Any]]:
    return pipeline.run_until_terminal(rt, list(ids))


def test_new_bytes_under_a_source_replace_the_old_version_when_complete(
    runtime: Runtime, tmp_path: Path
) -> None:
    path = _write(tmp_path / "a" / "notes.md", OLD)
    v1 = runtime.documents.register_file(path, user_id="ana", source="a/notes.md")
    _complete(runtime, v1.document.document_id)
    old_key = v1.document.raw_path
    assert runtime.storage.head(old_key) is not None

    _write(path, NEW)
    v2 = runtime.documents.register_file(path, user_id="ana", source="a/notes.md")
    assert v2.created and v2.replaces == v1.document.document_id
    # While the new version waits, the old one answers alone.
    texts = _texts(runtime, "ana")
    assert any("Tuesday" in t for t in texts) and not any("Friday" in t for t in texts)
    _complete(runtime, v2.document.document_id)

    texts = _texts(runtime, "ana")
    assert any("Friday" in t for t in texts) and not any("Tuesday" in t for t in texts)
    [serving] = _versions(runtime, "ana", "a/notes.md")
    assert serving["document_id"] == v2.document.document_id and serving["state"] == "done"
    chunk_docs = {
        r["document_id"]
        for r in rows(runtime, "SELECT DISTINCT document_id FROM upload_pipeline.document_chunks")
    }
    assert chunk_docs == {v2.document.document_id}
    assert runtime.storage.head(old_key) is None  # the replaced version's objects are gone
    assert rows(runtime, "SELECT object_key FROM upload_pipeline.object_deletions") == []
    [event] = [e for e in pipeline.events(runtime, v2.job.job_id) if e["type"] == "version_replaced"]
    assert event["payload"]["replaced"] == [str(v1.document.document_id)]


def test_a_failed_new_version_leaves_the_old_one_serving_and_says_so(
    runtime: Runtime, tmp_path: Path
) -> None:
    path = _write(tmp_path / "notes.md", OLD)
    v1 = runtime.documents.register_file(path, user_id="bo", source="notes.md")
    _complete(runtime, v1.document.document_id)
    path.write_text("   \n\n   \n", encoding="utf-8")  # no text: the new version fails no_text
    v2 = runtime.documents.register_file(path, user_id="bo", source="notes.md")
    jobs = _complete(runtime, v2.document.document_id)
    assert jobs[v2.document.document_id]["error_code"] == "no_text"

    assert any("Tuesday" in t for t in _texts(runtime, "bo"))
    view = runtime.documents.get_document("bo", v2.document.document_id)
    assert view["state"] == "failed" and view["serving_document_id"] == v1.document.document_id
    [status] = [s for s in runtime.documents.statuses(user_id="bo") if s.state == "failed"]
    assert status.source == "notes.md" and status.error_code == "no_text"
    assert status.older_version_serving and status.serving_document_id == str(v1.document.document_id)

    # Fixing the file makes a third version, which replaces both.
    path.write_text(NEW, encoding="utf-8")
    v3 = runtime.documents.register_file(path, user_id="bo", source="notes.md")
    assert v3.superseded == [v2.document.document_id]  # the failed one served nothing: gone now
    _complete(runtime, v3.document.document_id)
    assert [v["document_id"] for v in _versions(runtime, "bo", "notes.md")] == [v3.document.document_id]


def test_the_later_of_two_updates_in_flight_wins(runtime: Runtime, tmp_path: Path) -> None:
    path = _write(tmp_path / "notes.md", OLD)
    v1 = runtime.documents.register_file(path, user_id="cy", source="notes.md")
    _complete(runtime, v1.document.document_id)
    path.write_text(NEW, encoding="utf-8")
    v2 = runtime.documents.register_file(path, user_id="cy", source="notes.md")
    # A worker has claimed the second version and is working on it ...
    with runtime.pool().connection() as conn:
        claim = runtime.repo.claim_job(conn, worker_id="w-test", lease_seconds=60)
    assert claim is not None and claim.job.document_id == v2.document.document_id
    path.write_text(NEW.replace("Friday", "Sunday"), encoding="utf-8")
    v3 = runtime.documents.register_file(path, user_id="cy", source="notes.md")
    assert v3.superseded == [v2.document.document_id] and v3.replaces == v1.document.document_id
    # ... and is fenced out: its job row is gone, its transition writes nothing.
    with runtime.pool().connection() as conn:
        assert runtime.repo.fence(conn, claim.job) is False
    _complete(runtime, v3.document.document_id)

    texts = _texts(runtime, "cy")
    assert any("Sunday" in t for t in texts)
    assert not any("Friday" in t or "Tuesday" in t for t in texts)
    assert [v["document_id"] for v in _versions(runtime, "cy", "notes.md")] == [v3.document.document_id]
    assert rows(runtime, "SELECT count(*) AS n FROM upload_pipeline.documents WHERE user_id = 'cy'") == [
        {"n": 1}
    ]


def test_reverting_to_the_serving_bytes_cancels_the_pending_version(runtime: Runtime, tmp_path: Path) -> None:
    path = _write(tmp_path / "notes.md", OLD)
    v1 = runtime.documents.register_file(path, user_id="di", source="notes.md")
    _complete(runtime, v1.document.document_id)
    path.write_text(NEW, encoding="utf-8")
    v2 = runtime.documents.register_file(path, user_id="di", source="notes.md")
    path.write_text(OLD, encoding="utf-8")
    again = runtime.documents.register_file(path, user_id="di", source="notes.md")
    assert not again.created and again.document.document_id == v1.document.document_id
    assert again.superseded == [v2.document.document_id]
    assert runtime.storage.head(v2.document.raw_path) is None
    assert [v["document_id"] for v in _versions(runtime, "di", "notes.md")] == [v1.document.document_id]


def test_identical_bytes_under_another_source_reuse_the_chunks(runtime: Runtime, tmp_path: Path) -> None:
    a = _write(tmp_path / "a" / "notes.md", OLD)
    b = _write(tmp_path / "b" / "notes.md", OLD)
    first = runtime.documents.register_file(a, user_id="ed", source="a/notes.md")
    _complete(runtime, first.document.document_id)
    second = runtime.documents.register_file(b, user_id="ed", source="b/notes.md")
    assert second.created and second.replaces is None
    _complete(runtime, second.document.document_id)

    types = [e["type"] for e in pipeline.events(runtime, second.job.job_id)]
    assert "chunks_reused" in types
    stages = [
        e["stage"] for e in pipeline.events(runtime, second.job.job_id) if e["type"] == "stage_completed"
    ]
    assert Stage.PARSED.value not in stages and Stage.EMBEDDING_IN_PROGRESS.value not in stages
    hits = runtime.searcher().search("on-call rotation", user_id="ed", k=10)
    assert sorted(h.source for h in hits) == ["a/notes.md", "b/notes.md"]
    mine = [h for h in hits if h.source == "b/notes.md"]
    assert mine[0].chunk_id != next(h.chunk_id for h in hits if h.source == "a/notes.md")
    # Deleting the first leaves the second whole.
    runtime.documents.delete("ed", first.document.document_id)
    assert [h.source for h in runtime.searcher().search("on-call rotation", user_id="ed", k=10)] == [
        "b/notes.md"
    ]


def test_a_named_upload_source_is_versioned_like_a_file(runtime: Runtime) -> None:
    def upload(text: str) -> Any:
        data = text.encode()
        ticket = runtime.documents.request_upload(
            "fay",
            filename="rota.md",
            bytes_len=len(data),
            mime="text/markdown",
            sha256=hashlib.sha256(data).hexdigest(),
            source="wiki/rota",
            meta={"team": "harbour"},
        )
        if ticket.created:
            runtime.storage.put_stream(ticket.document.raw_path, io.BytesIO(data))
            runtime.documents.complete_upload("fay", ticket.job.job_id)
        return ticket

    first = upload(OLD)
    _complete(runtime, first.document.document_id)
    assert not upload(OLD).created  # the same bytes under the same source: the same document
    second = upload(NEW)
    assert second.created and second.document.meta == {"team": "harbour"}
    _complete(runtime, second.document.document_id)
    assert [v["document_id"] for v in _versions(runtime, "fay", "wiki/rota")] == [second.document.document_id]
    # Without a source every upload is its own document, even of the same bytes.
    data = NEW.encode()
    a, b = (
        runtime.documents.request_upload(
            "fay",
            filename="x.md",
            bytes_len=len(data),
            mime="text/markdown",
            sha256=hashlib.sha256(data).hexdigest(),
        )
        for _ in range(2)
    )
    assert a.created and b.created and a.document.document_id != b.document.document_id
    assert a.document.source == str(a.document.document_id)


def test_ingest_names_sources_by_path_and_counts_updates(runtime: Runtime, tmp_path: Path) -> None:
    root = tmp_path / "docs"
    _write(root / "a" / "notes.md", OLD)
    _write(root / "b" / "notes.md", OLD.replace("Tuesday", "Monday"))
    first = ingest(runtime, [root], user_id="gus")
    assert (first.documents, first.new, first.updated, first.complete) == (2, 2, 0, 2)
    _write(root / "a" / "notes.md", NEW)
    second = ingest(runtime, [root], user_id="gus")
    assert (second.new, second.updated, second.duplicates, second.complete) == (0, 1, 1, 2)
    hits = runtime.searcher().search("rotation changes Friday", user_id="gus", k=10)
    assert {h.source for h in hits} == {"a/notes.md", "b/notes.md"}
    assert not any("Tuesday" in h.text for h in hits)
    assert {h.name for h in hits} == {"a/notes.md", "b/notes.md"}


def test_two_files_that_would_be_one_source_are_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "a" / "notes.md", OLD)
    b = _write(tmp_path / "b" / "notes.md", NEW)
    with pytest.raises(SourceConflict, match="--source-prefix"):
        discover_sources([a, b])
    assert [s for _, s in discover_sources([tmp_path / "a"], prefix="team-a")] == ["team-a/notes.md"]


def test_a_source_name_with_control_characters_is_refused(runtime: Runtime, tmp_path: Path) -> None:
    from docingest.errors import InvalidSource

    path = _write(tmp_path / "n.md", OLD)
    with pytest.raises(InvalidSource):
        runtime.documents.register_file(path, user_id="hal", source="a\x00b")
    assert rows(runtime, "SELECT count(*) AS n FROM upload_pipeline.documents WHERE user_id = 'hal'") == [
        {"n": 0}
    ]


def test_objects_a_crash_left_queued_are_deleted_by_the_sweep(runtime: Runtime) -> None:
    """A process that died between deleting rows and deleting their objects left the keys in the
    outbox: the upload sweep deletes them once they are a minute old, and only those."""
    for key in ("ivy/raw/gone.md", "ivy/raw/fresh.md"):
        runtime.storage.put_stream(key, io.BytesIO(b"orphan"))
    with runtime.pool().connection() as conn:
        conn.execute(
            "INSERT INTO upload_pipeline.object_deletions (object_key, queued_at) VALUES"
            " ('ivy/raw/gone.md', now() - interval '2 minutes'), ('ivy/raw/fresh.md', now())"
        )
    assert runtime.documents.sweep()["objects_deleted"] == 1
    assert runtime.storage.head("ivy/raw/gone.md") is None
    assert runtime.storage.head("ivy/raw/fresh.md") is not None  # its own transaction may still reap it
    assert [
        r["object_key"] for r in rows(runtime, "SELECT object_key FROM upload_pipeline.object_deletions")
    ] == ["ivy/raw/fresh.md"]


def test_files_whose_names_make_no_valid_source_are_refused_and_the_rest_ingested(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from docingest.services.sync import plan_sync, sync

    root = tmp_path / "odd"
    _write(root / "good.md", OLD)
    _write(root / "new\nline.md", NEW)  # a control character: no valid source
    deep = root / "/".join("d" * 200 for _ in range(6))
    _write(deep / "far.md", NEW)  # a path over 1,024 characters
    raw = os.fsencode(root) + b"/bad\xff\xfename.md"  # a name that is not UTF-8
    with open(raw, "wb") as f:
        f.write(NEW.replace("Friday", "Monday").encode())

    plan = plan_sync(runtime, [root], user_id="jo")
    assert sorted(f.source for f in plan.add) == ["bad\\xff\\xfename.md", "good.md"]
    assert sorted(r.error_code for r in plan.refused) == ["invalid_source", "invalid_source"]

    summary = ingest(runtime, [root], user_id="jo")
    assert (summary.documents, summary.complete, summary.failed) == (4, 2, 2)
    assert summary.failed_by_code == {"invalid_source": 2}
    assert {f["filename"] for f in summary.failures if f["job_id"] is None} == {
        "new\nline.md",
        "/".join("d" * 200 for _ in range(6)) + "/far.md",
    }
    assert {h.source for h in runtime.searcher().search("rotation", user_id="jo", k=5)} == {
        "good.md",
        "bad\\xff\\xfename.md",
    }
    # An unreadable file is refused the same way (as root every file is readable: simulated).
    real = runtime.documents.register_file

    def unreadable(path: Path, **kwargs: object) -> object:
        if path.name == "good.md":
            raise PermissionError(13, "Permission denied")
        return real(path, **kwargs)  # type: ignore[arg-type]

    _write(root / "good.md", NEW)  # changed: it would be registered again
    monkeypatch.setattr(runtime.documents, "register_file", unreadable)
    again = sync(runtime, [root], user_id="jo")
    assert again.failed_by_code == {"invalid_source": 2, "file_unreadable": 1}
    assert again.deleted == 0  # refused files are there: their sources are not deleted


def test_a_source_prefix_with_a_control_character_is_refused_before_anything(
    runtime: Runtime, tmp_path: Path
) -> None:
    from docingest.errors import InvalidSource

    _write(tmp_path / "n.md", OLD)
    with pytest.raises(InvalidSource, match="--source-prefix"):
        ingest(runtime, [tmp_path], user_id="kay", prefix="a\tb")
    assert rows(runtime, "SELECT count(*) AS n FROM upload_pipeline.documents WHERE user_id = 'kay'") == [
        {"n": 0}
    ]
