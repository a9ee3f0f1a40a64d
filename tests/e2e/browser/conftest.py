"""Fixtures of the dashboard's browser tests: Chromium (one per session, launched by its path),
``docingest serve --worker-slots 2`` on loopback with a database of its own (one per module),
axe-core from ``tests/e2e/node`` (``npm ci`` on first use) and the screenshots' directory.

Chromium is the machine's (Debian's ``chromium`` package; ``DOCINGEST_CHROMIUM`` names another
binary): Playwright cannot download browsers here, and a missing one fails the tests, naming the
package to install, rather than skipping them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, expect, sync_playwright

from tests.e2e.browser.dashboard import Dashboard, serve_dashboard
from tests.e2e.npm import pinned_package

# Refused uploads: a test drops a file one byte over this (413 file_too_large).
MAX_FILE_BYTES = 256 * 1024
# What a page shows after an action (a reply, a stream message) may wait for a busy machine:
# an upper bound, not a speed claim; the pipeline's own waits are longer (dashboard.PIPELINE_MS).
expect.set_options(timeout=20_000)


def chromium_executable() -> str:
    """The Chromium binary: ``$DOCINGEST_CHROMIUM``, else ``chromium`` on PATH; fails the test
    (never skips it) when there is none."""
    path = os.environ.get("DOCINGEST_CHROMIUM") or shutil.which("chromium")
    if not path or not Path(path).is_file():
        pytest.fail(
            "the browser tests need Chromium: `apt-get install chromium` (Debian's package, as "
            ".ci/run installs it), or DOCINGEST_CHROMIUM=/path/to/chromium; "
            f"found {path or 'no chromium on PATH'}"
        )
    return path


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless Chromium for the session (each test opens its own contexts)."""
    chromium = playwright.chromium.launch(executable_path=chromium_executable(), headless=True)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def dashboard(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """``docingest serve --worker-slots 2`` on a new database, in development (the local user's
    button), with the hashing embedder and no retry of a transient failure."""
    with serve_dashboard(
        pg_url,
        tmp_path_factory.mktemp("dashboard"),
        worker_slots=2,
        max_file_bytes=MAX_FILE_BYTES,
        max_active_jobs_per_user=100,  # the paging test registers 55 uploads
    ) as dashboard:
        yield dashboard


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """``axe.min.js`` of the pinned axe-core, installed under tests/e2e/node by ``npm ci``."""
    script = pinned_package("axe-core") / "axe.min.js"
    assert script.is_file(), f"{script} is missing"
    return script


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    """``$DOCINGEST_SCREENSHOT_DIR`` (scripts/screenshots.py sets docs/screenshots), else the
    test's tmp dir."""
    configured = os.environ.get("DOCINGEST_SCREENSHOT_DIR")
    path = Path(configured) if configured else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
