"""``docingest sync`` and ``docingest watch`` as a user runs them (subprocesses, hashing embedder)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from docingest.settings import Settings
from tests.conftest import settings_env
from tests.e2e.test_cli import run_cli

pytestmark = pytest.mark.e2e


def _doc(title: str, word: str) -> str:
    return f"# {title}\n\n" + f"A note about the {word}, kept for the record. " * 20 + "\n"


def _rows(settings: Settings, sql: str) -> list[dict[str, Any]]:
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        return conn.execute(sql).fetchall()


def _index(settings: Settings) -> dict[str, list[tuple[str, str]]]:
    """``{source: [(state, text of all its chunks)]}``, one entry per version."""
    found: dict[str, list[tuple[str, str]]] = {}
    for r in _rows(
        settings,
        "SELECT d.source, j.state, coalesce(string_agg(c.text, ' ' ORDER BY c.ordinal), '') AS text"
        " FROM upload_pipeline.documents d"
        " JOIN LATERAL (SELECT state FROM upload_pipeline.upload_jobs j WHERE j.document_id = d.document_id"
        "   ORDER BY created_at DESC LIMIT 1) j ON true"
        " LEFT JOIN upload_pipeline.document_chunks c ON c.document_id = d.document_id"
        " GROUP BY d.document_id, d.source, j.state",
    ):
        found.setdefault(r["source"], []).append((r["state"], r["text"]))
    return found


def test_sync_dry_run_prints_the_plan_and_changes_nothing_then_sync_applies_it(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "edited.md").write_text(_doc("Harbour", "lighthouse"))
    (folder / "deleted.md").write_text(_doc("Mill", "windmill"))
    (folder / "kept.md").write_text(_doc("Orchard", "orchard"))
    assert run_cli(settings, "ingest", str(folder)).returncode == 0
    (folder / "edited.md").write_text(_doc("Harbour", "submarine"))
    (folder / "deleted.md").unlink()
    (folder / "added.md").write_text(_doc("Bakery", "croissant"))
    before = _rows(settings, "SELECT * FROM upload_pipeline.documents ORDER BY document_id")

    proc = run_cli(settings, "sync", str(folder), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "add     added.md" in lines and "update  edited.md" in lines and "delete  deleted.md" in lines
    assert "1 to add, 1 to update, 1 unchanged, 1 to delete" in proc.stdout
    plan = json.loads(run_cli(settings, "sync", str(folder), "--dry-run", "--json").stdout)
    assert plan["dry_run"] is True
    assert [f["source"] for f in plan["unchanged"]] == ["kept.md"]
    assert plan["unchanged"][0]["why"] == "size+mtime"
    assert _rows(settings, "SELECT * FROM upload_pipeline.documents ORDER BY document_id") == before

    proc = run_cli(settings, "sync", str(folder), "--json", "--meta", "team=docs")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["added"], summary["updated"], summary["unchanged"], summary["deleted"]) == (
        1,
        1,
        1,
        0 + 1,
    )
    index = _index(settings)
    assert sorted(index) == ["added.md", "edited.md", "kept.md"]
    assert all(len(v) == 1 and v[0][0] == "done" for v in index.values())
    assert "submarine" in index["edited.md"][0][1] and "lighthouse" not in index["edited.md"][0][1]
    metas = {
        r["source"]: r["meta"] for r in _rows(settings, "SELECT source, meta FROM upload_pipeline.documents")
    }
    assert metas["added.md"] == metas["kept.md"] == {"team": "docs"}  # unchanged ones too, as ingest


def test_sync_of_two_files_that_would_be_one_source_is_refused_with_exit_2(
    settings: Settings, tmp_path: Path
) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "notes.md").write_text(_doc(d, "heron"))
    proc = run_cli(settings, "sync", str(tmp_path / "a" / "notes.md"), str(tmp_path / "b" / "notes.md"))
    assert proc.returncode == 2 and "would both be the source 'notes.md'" in " ".join(proc.stderr.split())
    assert _rows(settings, "SELECT 1 FROM upload_pipeline.documents") == []


class _Watch:
    """``docingest watch FOLDER`` in a child process, its output read as it comes."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "docingest.cli.main", "watch", str(folder), "--debounce-ms", "400"],
            env=settings_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(self, predicate: Any, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.proc.poll() is None, (self.out, self.err)
            assert time.monotonic() < deadline, ("timed out", self.out, self.err)
            time.sleep(0.2)

    def stop(self) -> int:
        """SIGTERM, then its exit status once it ended."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for t in self._readers:
            t.join(10)
        return code

    def said(self, verb: str, source: str) -> bool:
        return any(line.split()[1:3] == [verb, source] for line in self.out if len(line.split()) >= 3)


def test_watch_follows_writes_rewrites_and_deletes_and_catches_up_after_a_stop(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()

    def final(index: dict[str, list[tuple[str, str]]], expected: dict[str, str]) -> bool:
        return sorted(index) == sorted(expected) and all(
            len(index[s]) == 1 and index[s][0][0] == "done" and word in index[s][0][1]
            for s, word in expected.items()
        )

    watch = _Watch(settings, folder)
    try:
        watch.wait_for(lambda: any(line.startswith("watching ") for line in watch.err))
        (folder / "kept.md").write_text(_doc("v1", "anchor"))
        (folder / "kept.md").write_text(_doc("v2", "rudder"))
        (folder / "kept.md").write_text(_doc("v3", "compass"))  # three writes within the debounce
        (folder / "brief.md").write_text(_doc("brief", "ferry"))
        (folder / ".hidden.md").write_text(_doc("hidden", "secret"))
        watch.wait_for(lambda: final(_index(settings), {"kept.md": "compass", "brief.md": "ferry"}))
        (folder / "brief.md").unlink()
        watch.wait_for(lambda: final(_index(settings), {"kept.md": "compass"}))
        assert "rudder" not in _index(settings)["kept.md"][0][1]
    finally:
        code = watch.stop()
    assert code == 143, watch.err
    assert any("stopped by SIGTERM" in line for line in watch.err), watch.err
    for verb, source in (
        ("added", "kept.md"),
        ("added", "brief.md"),
        ("deleted", "brief.md"),
        ("indexed", "kept.md"),
    ):
        assert watch.said(verb, source), watch.out

    # Changed while nothing watched: picked up by the next start's sync. Stopped while a job
    # is held (slow embeddings): the job is released.
    (folder / "kept.md").write_text(_doc("v4", "sextant"))
    (folder / "later.md").write_text(_doc("later", "tugboat"))
    slow = settings.model_copy(update={"fault_embedding_delay_seconds": 2.0, "lease_seconds": 60.0})
    watch = _Watch(slow, folder)
    try:
        watch.wait_for(lambda: watch.said("updated", "kept.md") and watch.said("added", "later.md"))
        watch.wait_for(
            lambda: any(
                r["state"] == "working"
                for r in _rows(settings, "SELECT state FROM upload_pipeline.upload_jobs")
            )
        )
    finally:
        code = watch.stop()
    assert code == 143, watch.err
    held = _rows(
        settings, "SELECT state, lease_expires_at FROM upload_pipeline.upload_jobs WHERE state = 'working'"
    )
    assert held == []  # released, not left leased to a stopped process

    watch = _Watch(settings, folder)
    try:
        watch.wait_for(lambda: final(_index(settings), {"kept.md": "sextant", "later.md": "tugboat"}))
        watch.wait_for(lambda: watch.said("indexed", "later.md") and watch.said("indexed", "kept.md"))
    finally:
        code = watch.stop()
    assert code == 143, watch.err


def test_watch_waits_for_a_deleted_folder_and_syncs_it_once_it_is_back(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    (folder / "m.md").write_text(_doc("m", "marmot"))
    watch = _Watch(settings, folder)
    try:
        watch.wait_for(lambda: watch.said("indexed", "m.md"))
        shutil.rmtree(folder)
        watch.wait_for(lambda: any(line.startswith("gone: ") for line in watch.err))
        folder.mkdir()
        (folder / "v.md").write_text(_doc("back", "voles"))
        watch.wait_for(lambda: watch.said("indexed", "v.md"))
        assert watch.said("added", "v.md") and watch.said("deleted", "m.md"), watch.out
        (folder / "w.md").write_text(_doc("later", "weasels"))  # the recreated folder is watched
        watch.wait_for(lambda: watch.said("indexed", "w.md"))
    finally:
        code = watch.stop()
    assert code == 143, watch.err
    assert not any(line.startswith("error:") for line in watch.err), watch.err
    index = _index(settings)
    assert sorted(index) == ["v.md", "w.md"] and "voles" in index["v.md"][0][1], index
