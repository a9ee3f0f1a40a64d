"""``docingest reembed``, ``info`` and ``status`` as a user runs them after changing the model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.e2e.test_cli import run_cli
from tests.integration.helpers import write_docs

pytestmark = pytest.mark.e2e


def test_reembed_moves_the_index_to_the_configured_model(db_url: str, tmp_path: Path) -> None:
    old = make_settings(db_url, tmp_path / "data", embedding_dimensions=256)
    new = make_settings(db_url, tmp_path / "data", embedding_dimensions=512)
    write_docs(tmp_path / "docs", 3)
    assert run_cli(old, "ingest", str(tmp_path / "docs"), "--json").returncode == 0
    # Configured for the new model, search still answers (by the generation serving the index).
    found = run_cli(new, "search", "doc1-word3", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["source"] == "doc-0001.md"

    done = run_cli(new, "reembed", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["queued"], summary["complete"], summary["switched_users"]) == (3, 3, 1)
    assert summary["generation"] == "hashing/hashing-bow-v1/512"
    [serving] = [c for c in summary["coverage"] if c["serving_users"]]
    assert serving["label"] == "hashing/hashing-bow-v1/512" and serving["share"] == 1.0

    info = run_cli(new, "info")
    assert re.search(
        r"^embeddings +hashing/hashing-bow-v1/512: 12 chunks \(100% covered\), serving 1 user$",
        info.stdout,
        re.MULTILINE,
    )
    jobs = json.loads(run_cli(new, "status", "--json").stdout)
    assert (
        sorted((j["kind"], j["state"]) for j in jobs) == [("ingest", "done")] * 3 + [("reembed", "done")] * 3
    )
    again = run_cli(new, "reembed")
    assert again.returncode == 0 and "re-embedded 0/0 documents" in again.stdout
