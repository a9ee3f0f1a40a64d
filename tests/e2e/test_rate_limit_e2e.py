"""One rate limit for all workers: two worker processes (4 slots each) share one RPM.

The limit is a token bucket in PostgreSQL (``ratelimit.bucket_size``): capacity ``b`` =
10% of the limit, refilled at ``(L - b) / 60`` per second, so any window of ``w`` seconds
admits at most ``b + r * w`` requests, and any minute at most ``L``. With ``L`` = 240 the
bound is checked over 5- and 10-second windows in about 15 seconds of traffic (the 60-second
form of the same bound took 70 s).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from docingest.providers.ratelimit import bucket_size
from docingest.runtime import Runtime
from tests.conftest import make_settings, settings_env
from tests.integration.helpers import write_docs
from tests.mockservers import MockServer, child_env, docingest_cmd, max_in_window, openai_settings

pytestmark = pytest.mark.e2e


def test_two_workers_share_one_rpm(db_url: str, tmp_path: Path) -> None:
    limit = 240
    capacity, refill = bucket_size(limit, 0.1)  # 24 at once, then 3.6 per second
    wanted = int(capacity + refill * 12)  # the burst and 12 s of refill: the limit must hold it
    with MockServer("openai", log_dir=tmp_path) as mock:
        settings = make_settings(
            db_url,
            tmp_path / "data",
            **openai_settings(mock, embedding_rpm=limit, embedding_max_batch_inputs=1, embedding_cache=False),
        )
        rt = Runtime(settings, migrate=False)
        try:
            for path in write_docs(tmp_path / "in", 12, words=1500):  # ~100 chunks: one request each
                rt.documents.register_file(path, user_id="local")
        finally:
            rt.close()
        env = child_env(settings_env(settings))
        workers = [
            subprocess.Popen(
                docingest_cmd("worker", "-c", "4"),
                env=env,
                stdout=(tmp_path / f"worker{i}.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            for i in range(2)
        ]
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if len(mock.stats()["requests"]) >= wanted + 2:  # + the two start-up probes
                    break
                time.sleep(0.5)
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(30)
        stats = mock.stats()
    times = [r["t"] for r in stats["requests"] if r["path"].endswith("/embeddings")]
    clients = {r["client"] for r in stats["requests"]}
    assert len(clients) == 2  # both processes sent requests
    assert len(times) >= wanted  # the demand outran the burst: the refill was what held it
    # A request is counted when it reaches the mock, a few ms after its token was taken: one
    # request of slack at each end of a window.
    for window in (5.0, 10.0):
        assert max_in_window(times, window) <= capacity + refill * window + 2, window
    assert max(times) - min(times) >= (len(times) - capacity - 2) / refill - 1  # not faster overall
