"""``sync``: the index of a folder's sources made equal to the folder (real database, files)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from docingest.providers.storage import document_keys
from docingest.runtime import Runtime
from docingest.services import sync as sync_module
from docingest.services.ingest import ingest
from docingest.services.sync import apply_plan, plan_sync, sync
from tests.fixtures import pipeline
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration


def _doc(title: str, word: str, n: int = 300) -> str:
    """A Markdown file of several chunks, every one holding ``word``."""
    return f"# {title}\n\n" + "\n\n".join(
        f"Paragraph {i} about {word}: " + f"the {word} is noted here again. " * 12 for i in range(n // 12)
    )


def _counts(rt: Runtime, user_id: str) -> dict[str, Any]:
    docs = rows(
        rt,
        "SELECT source, count(*) AS n FROM upload_pipeline.documents WHERE user_id = %s GROUP BY source",
        (user_id,),
    )
    chunks = rows(
        rt,
        "SELECT d.source, count(c.chunk_id) AS chunks, count(c.embedding) AS vectors"
        " FROM upload_pipeline.documents d JOIN upload_pipeline.document_chunks c USING (document_id)"
        " WHERE d.user_id = %s GROUP BY d.source",
        (user_id,),
    )
    return {
        "versions": {r["source"]: r["n"] for r in docs},
        "chunks": {r["source"]: r["chunks"] for r in chunks},
        "vectors": {r["source"]: r["vectors"] for r in chunks},
    }


def test_edit_delete_add_then_sync_leaves_exactly_the_folder_with_no_gap_for_searchers(
    runtime: Runtime, tmp_path: Path
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "edited.md").write_text(_doc("Harbour", "lighthouse"))
    (folder / "deleted.md").write_text(_doc("Mill", "windmill"))
    (folder / "kept.md").write_text(_doc("Orchard", "orchard"))
    first = ingest(runtime, [folder], user_id="ana")
    assert (first.complete, first.failed) == (3, 0)
    before = {r["source"]: r for r in rows(runtime, "SELECT * FROM upload_pipeline.documents")}

    (folder / "edited.md").write_text(_doc("Harbour", "submarine"))
    (folder / "deleted.md").unlink()
    (folder / "added.md").write_text(_doc("Bakery", "croissant"))

    searcher = runtime.searcher()
    stop = threading.Event()
    seen: list[set[str]] = []  # per search: the document ids of edited.md's hits
    errors: list[BaseException] = []

    def search_in_a_loop() -> None:
        try:
            while not stop.is_set():
                hits = searcher.search("lighthouse submarine harbour", user_id="ana", k=200, mode="vector")
                seen.append({h.document_id for h in hits if h.source == "edited.md"})
        except Exception as exc:  # noqa: BLE001  # the main thread asserts there were none
            errors.append(exc)

    thread = threading.Thread(target=search_in_a_loop)
    thread.start()
    try:
        summary = sync(runtime, [folder], user_id="ana", poll_seconds=0.05)
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert (summary.added, summary.updated, summary.unchanged, summary.deleted) == (1, 1, 1, 1)
    assert (summary.complete, summary.failed) == (2, 0)
    assert seen and all(len(ids) == 1 for ids in seen)  # never none, never both versions
    new_id = {r["source"]: r for r in rows(runtime, "SELECT * FROM upload_pipeline.documents")}["edited.md"]
    # The searcher saw the old version, then the new one: it ran across the switch.
    assert seen[0] == {str(before["edited.md"]["document_id"])} and seen[-1] == {str(new_id["document_id"])}

    # Exactly the folder: one version per source, chunks and vectors as a fresh ingest makes.
    assert ingest(runtime, [folder], user_id="fresh").complete == 3
    after, fresh = _counts(runtime, "ana"), _counts(runtime, "fresh")
    assert after["versions"] == {"edited.md": 1, "kept.md": 1, "added.md": 1}
    assert after == fresh
    texts = [c["text"] for c in pipeline.chunks(runtime, new_id["document_id"])]
    assert all("submarine" in t and "lighthouse" not in t for t in texts)
    hits = searcher.search("windmill", user_id="ana", k=50, mode="hybrid")
    assert {h.source for h in hits} <= {"edited.md", "kept.md", "added.md"}
    # The replaced and the deleted versions' rows and objects are gone.
    for source in ("edited.md", "deleted.md"):
        old = before[source]
        assert pipeline.chunks(runtime, old["document_id"]) == []
        assert not rows(
            runtime, "SELECT 1 FROM upload_pipeline.documents WHERE document_id = %s", (old["document_id"],)
        )
        keys = document_keys("ana", old["document_id"], old["raw_path"])
        assert [k for k in keys if runtime.storage.head(k) is not None] == []
    assert runtime.storage.head(new_id["raw_path"]) is not None

    again = sync(runtime, [folder], user_id="ana")
    assert (again.added, again.updated, again.unchanged, again.deleted) == (0, 0, 3, 0)


def test_unchanged_files_are_skipped_by_size_and_mtime_without_being_read(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("a.md", "b.md"):
        (folder / name).write_text(_doc(name, "tide", 40))
    sync(runtime, [folder], user_id="ana")
    hashed: list[Any] = []
    real = sync_module.sha256_of

    def counting(stream: Any) -> tuple[str, int]:
        hashed.append(stream.name)
        return real(stream)

    monkeypatch.setattr(sync_module, "sha256_of", counting)
    plan = plan_sync(runtime, [folder], user_id="ana")
    assert [f.source for f in plan.unchanged] == ["a.md", "b.md"] and hashed == []
    assert {f.why for f in plan.unchanged} == {"size+mtime"}

    # A new modification time, the same bytes: hashed once, unchanged, the time recorded.
    st = (folder / "a.md").stat()
    os.utime(folder / "a.md", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    summary = sync(runtime, [folder], user_id="ana")
    assert (summary.unchanged, summary.updated) == (2, 0)
    assert hashed == [str(folder / "a.md")]
    plan = plan_sync(runtime, [folder], user_id="ana")
    assert hashed == [str(folder / "a.md")] and {f.why for f in plan.unchanged} == {"size+mtime"}


def test_sync_deletes_only_file_sources_under_its_prefix(runtime: Runtime, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "one.md").write_text(_doc("one", "heron", 40))
    (a / "two.md").write_text(_doc("two", "egret", 40))
    (b / "three.md").write_text(_doc("three", "crane", 40))
    sync(runtime, [a], user_id="ana", prefix="a")
    sync(runtime, [b], user_id="ana", prefix="b")
    upload = runtime.documents.request_upload(
        "ana", filename="api.md", bytes_len=10, mime="text/markdown", sha256="0" * 64, source="a/api.md"
    )
    (a / "two.md").unlink()
    plan = plan_sync(runtime, [a], user_id="ana", prefix="a/")
    assert plan.prefix == "a/" and [f.source for f in plan.delete] == ["a/two.md"]
    summary = sync(runtime, [a], user_id="ana", prefix="a")
    assert summary.deleted == 1
    sources = {r["source"] for r in rows(runtime, "SELECT source FROM upload_pipeline.documents")}
    assert sources == {"a/one.md", "b/three.md", "a/api.md"}
    assert upload.document.origin == "api"


def test_a_failed_file_with_the_same_bytes_is_left_and_reported(runtime: Runtime, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "empty.md").write_bytes(b"")
    first = sync(runtime, [folder], user_id="ana")
    assert (first.added, first.failed, first.failed_by_code) == (1, 1, {"empty_file": 1})
    jobs = rows(runtime, "SELECT job_id FROM upload_pipeline.upload_jobs")
    again = sync(runtime, [folder], user_id="ana")
    assert (again.added, again.updated, again.left_failed, again.failed) == (0, 0, 1, 0)
    assert rows(runtime, "SELECT job_id FROM upload_pipeline.upload_jobs") == jobs  # not retried
    plan = plan_sync(runtime, [folder], user_id="ana")
    assert [(f.source, f.why) for f in plan.failed] == [("empty.md", "empty_file")]
    (folder / "empty.md").write_text(_doc("now", "text", 40))
    fixed = sync(runtime, [folder], user_id="ana")
    assert (fixed.updated, fixed.complete, fixed.failed) == (1, 1, 0)
    assert len(rows(runtime, "SELECT 1 FROM upload_pipeline.documents")) == 1


def test_a_file_deleted_between_the_plan_and_its_registration_is_skipped(
    runtime: Runtime, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "stays.md").write_text(_doc("stays", "otter", 40))
    (folder / "brief.md").write_text(_doc("brief", "beaver", 40))
    plan = plan_sync(runtime, [folder], user_id="ana")
    (folder / "brief.md").unlink()
    said: list[tuple[str, str]] = []
    summary = sync(runtime, [folder], user_id="ana", plan=plan)
    assert (summary.added, summary.complete) == (1, 1)
    assert [r["source"] for r in rows(runtime, "SELECT source FROM upload_pipeline.documents")] == [
        "stays.md"
    ]
    (folder / "brief.md").write_text(_doc("brief", "beaver", 40))
    plan = plan_sync(runtime, [folder], user_id="ana")
    (folder / "brief.md").unlink()
    apply_plan(runtime, plan, user_id="ana", on_change=lambda verb, source: said.append((verb, source)))
    assert said == [("vanished", "brief.md")]


def test_sync_meta_is_set_on_unchanged_files_too(runtime: Runtime, tmp_path: Path) -> None:
    root = tmp_path / "kb"
    root.mkdir()
    (root / "a.md").write_text("# A\n\nThe ferry leaves at dawn from the north pier.\n")
    assert sync(runtime, [root], user_id="meta").added == 1
    again = sync(runtime, [root], user_id="meta", meta={"team": "ops"})
    assert (again.unchanged, again.added, again.updated) == (1, 0, 0)
    assert rows(runtime, "SELECT meta FROM upload_pipeline.documents WHERE user_id = 'meta'") == [
        {"meta": {"team": "ops"}}
    ]


def test_a_file_refused_as_too_large_is_retried_once_the_limit_admits_it(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    root = tmp_path / "kb"
    root.mkdir()
    (root / "big.md").write_text("# Big\n\n" + "The tide tables are posted each Monday. " * 20)
    small = dataclasses.replace(runtime.documents.policy, max_file_bytes=50)
    monkeypatch.setattr(runtime.documents, "policy", small)
    assert sync(runtime, [root], user_id="lim").failed_by_code == {"file_too_large": 1}
    monkeypatch.undo()  # the limit raised again
    plan = plan_sync(runtime, [root], user_id="lim")
    assert [f.why for f in plan.update] == [
        "retry: file_too_large, now within UPLOAD_PIPELINE_MAX_FILE_BYTES"
    ]
    done = sync(runtime, [root], user_id="lim")
    assert (done.complete, done.failed) == (1, 0)
    assert [h.source for h in runtime.searcher().search("tide tables", user_id="lim", k=1)] == ["big.md"]
