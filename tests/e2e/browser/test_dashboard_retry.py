"""A failure fixed, then retried from the dashboard, goes through: the embedder of the first
worker fails every call (``UPLOAD_PIPELINE_FAULT_EMBEDDING_ERROR_RATE=1``, no retry), so the
document fails ``embedding_unavailable``; that worker is replaced by a healthy one (the fix), and
Retry on its page takes the document to ``complete``, live, and search finds it.

The API is ``docingest serve`` without worker slots, so that the workers (separate processes) can
be swapped under it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.browser.dashboard import (
    PIPELINE_MS,
    Dashboard,
    assert_same_window,
    drop_files,
    go,
    heading,
    mark_window,
    serve_dashboard,
    sign_in,
)
from tests.e2e.workers import start_worker, stop_all

pytestmark = pytest.mark.e2e

USER = "browser-fixer"
NAME = "glacier-survey.md"
TEXT = b"# Glacier survey\n\nThe turquoise meltwater lake grew by a fifth this summer.\n"


@pytest.fixture(scope="module")
def api_only(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """``docingest serve --worker-slots 0`` on a new database; no retry of a transient failure."""
    with serve_dashboard(
        pg_url, tmp_path_factory.mktemp("retry"), worker_slots=0, max_retries=0
    ) as dashboard:
        yield dashboard


def test_a_failure_fixed_and_retried_from_the_page_completes(
    browser: Browser, api_only: Dashboard, tmp_path: Path
) -> None:
    settings = api_only.settings
    faulty = start_worker(
        settings, tmp_path, "faulty-worker", concurrency=1, UPLOAD_PIPELINE_FAULT_EMBEDDING_ERROR_RATE="1.0"
    )
    workers = [faulty]
    context = browser.new_context()
    page = context.new_page()
    try:
        sign_in(page, api_only.base_url, api_only.token(USER))
        go(page, "#/upload")
        expect(heading(page)).to_have_text("Upload")
        mark_window(page)
        drop_files(page, [(NAME, "text/markdown", TEXT)])
        item = page.get_by_role("list", name="Uploads").locator(f'li[data-filename="{NAME}"]')
        expect(item).to_have_attribute("data-state", "failed", timeout=PIPELINE_MS)
        expect(item.get_by_test_id("upload-status")).to_contain_text("injected fault")

        go(page, "#/documents")
        row = page.locator("tr[data-document-id]").filter(has=page.get_by_role("link", name=NAME))
        expect(row).to_have_attribute("data-state", "failed")
        expect(row.get_by_test_id("error-code")).to_have_text("embedding_unavailable")

        doc_id = str(row.get_attribute("data-document-id"))
        row.get_by_role("link", name=NAME).click()
        expect(heading(page)).to_have_text(NAME)
        errors = page.locator("section", has=page.get_by_role("heading", name="Errors", level=2))
        expect(errors).to_contain_text("embedding_unavailable")

        # the fix: the faulty worker goes, a healthy one comes; Retry on the document's page,
        # which follows the document live until it completes
        stop_all([faulty])
        workers.append(start_worker(settings, tmp_path, "healthy-worker", concurrency=1))
        page.get_by_role("button", name="Retry", exact=True).click()
        stages = page.locator("section", has=page.get_by_role("heading", name="Stages", level=2))
        expect(stages.locator("ol.steps")).to_have_attribute(
            "aria-label", "Stage 10 of 10: complete", timeout=PIPELINE_MS
        )
        expect(errors).not_to_contain_text("embedding_unavailable")
        expect(errors).to_contain_text("None")
        expect(page.get_by_role("button", name="Retry", exact=True)).to_have_count(0)
        go(page, "#/documents")
        expect(row).to_have_attribute("data-state", "done")
        expect(row.get_by_test_id("error-code")).to_have_count(0)
        assert_same_window(page)

        doc_id = str(row.get_attribute("data-document-id"))
        client = api_only.client(USER)
        doc = client.http.get(f"/api/v2/documents/{doc_id}").json()
        timeline = client.http.get(f"/api/v2/documents/{doc_id}/timeline").json()
        client.http.close()
        assert (doc["state"], doc["attempts"], doc["error_code"]) == ("done", 2, None), doc
        types = [e["type"] for e in timeline["events"]]
        assert "retry_requested" in types and types[-1] == "stage_completed", types

        go(page, "#/search")
        page.get_by_label("Query").fill("turquoise meltwater lake")
        page.get_by_role("button", name="Search").click()
        hit = page.locator(f'li.hit[data-document-id="{doc_id}"]').first
        expect(hit).to_be_visible()
        expect(hit.locator("mark").first).to_have_text(re.compile("turquoise|meltwater|lake", re.IGNORECASE))
    finally:
        context.close()
        stop_all(workers)
