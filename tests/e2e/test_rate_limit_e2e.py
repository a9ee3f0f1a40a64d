"""One rate limit for all workers: two worker processes (4 slots each) share an RPM of 60.

Slow by nature (it must outlast a 60-second window): about 70 seconds.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from docingest.ingest import register_file
from docingest.runtime import Runtime
from tests.conftest import CORPUS, make_settings, settings_env
from tests.mockservers import MockServer, child_env, docingest_cmd, max_in_window, openai_settings

pytestmark = pytest.mark.e2e


@pytest.mark.shared_corpus
def test_two_workers_share_60_rpm(db_url: str, tmp_path: Path) -> None:
    with MockServer("openai", log_dir=tmp_path) as mock:
        settings = make_settings(db_url, tmp_path / "data", **openai_settings(
            mock, embedding_rpm=60, embedding_max_batch_inputs=1, embedding_cache=False))
        rt = Runtime(settings, migrate=False)
        try:
            for path in sorted((CORPUS / "docs" / "md").iterdir()):
                register_file(rt, path, user_id="local")
        finally:
            rt.close()
        env = child_env(settings_env(settings))
        workers = [subprocess.Popen(docingest_cmd("worker", "-c", "4"), env=env,
                                    stdout=(tmp_path / f"worker{i}.log").open("wb"),
                                    stderr=subprocess.STDOUT) for i in range(2)]
        try:
            deadline = time.monotonic() + 85
            while time.monotonic() < deadline:
                if len(mock.stats()["requests"]) >= 66:
                    break
                time.sleep(1)
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(30)
        stats = mock.stats()
    times = [r["t"] for r in stats["requests"] if r["path"].endswith("/embeddings")]
    clients = {r["client"] for r in stats["requests"]}
    assert len(clients) == 2  # both processes sent requests
    assert len(times) > 60  # the demand outran one window, so the limit was what held it
    assert max_in_window(times, 60.0) <= 60
