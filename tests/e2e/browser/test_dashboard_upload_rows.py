"""What a user's first trial of the dashboard found, in Chromium against ``docingest serve
--worker-slots 0`` (no worker: an uploaded document stays ``queued``, so it is in flight for as
long as a test needs): the Upload page's rows follow deletions and replacements, the same file
dropped more than once is sent once and every row of it follows its document, a refused type is
told in a user's words; a search that fails or cannot run clears the earlier results; the
not-found document page shows no empty cards; the Health page's workers are installation-wide
and a quiet one is marked."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

from tests.e2e.browser.dashboard import (
    PIPELINE_MS,
    Dashboard,
    document_id_of,
    drop_files,
    go,
    heading,
    serve_dashboard,
    sign_in,
)

pytestmark = pytest.mark.e2e

USER = "browser-trial"


@pytest.fixture(scope="module")
def idle_dashboard(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """``docingest serve --worker-slots 0``: uploads are registered and stored, never worked."""
    with serve_dashboard(pg_url, tmp_path_factory.mktemp("dashboard-idle"), worker_slots=0) as dashboard:
        yield dashboard


@pytest.fixture(scope="module")
def slow_dashboard(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """``docingest serve --worker-slots 1`` whose embedder waits 10 s a call: a document stays
    ``working`` at its embedding stage long enough to be deleted there."""
    with serve_dashboard(
        pg_url, tmp_path_factory.mktemp("dashboard-slow"), worker_slots=1, fault_embedding_delay_seconds=10.0
    ) as dashboard:
        yield dashboard


def _signed_in(browser: Browser, dashboard: Dashboard) -> Iterator[Page]:
    """A signed-in tab of USER (a new one per test: the Upload page's rows live as long as it)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        tab = context.new_page()
        sign_in(tab, dashboard.base_url, dashboard.token(USER))
        yield tab
    finally:
        context.close()


@pytest.fixture
def slow_page(browser: Browser, slow_dashboard: Dashboard) -> Iterator[Page]:
    yield from _signed_in(browser, slow_dashboard)


@pytest.fixture
def page(browser: Browser, idle_dashboard: Dashboard) -> Iterator[Page]:
    yield from _signed_in(browser, idle_dashboard)


def _upload_page(page: Page) -> None:
    go(page, "#/upload")
    expect(heading(page)).to_have_text("Upload")


def _rows(page: Page, name: str) -> Locator:
    return page.get_by_role("list", name="Uploads").locator(f'li[data-filename="{name}"]')


def _documents_of(dashboard: Dashboard, source: str) -> list[dict]:
    client = dashboard.client(USER)
    try:
        listed = client.http.get("/api/v2/documents", params={"q": source, "limit": 200}).json()
        return [d for d in listed["documents"] if d["source"] == source]
    finally:
        client.http.close()


def test_every_row_of_a_file_dropped_several_times_follows_its_one_document(
    page: Page, idle_dashboard: Dashboard
) -> None:
    puts: list[str] = []
    page.on("request", lambda r: puts.append(r.url) if r.method == "PUT" else None)
    _upload_page(page)
    same = b"# Duplicate\n\nThe same bytes, dropped three times.\n"
    drop_files(
        page,
        [("dup.md", "text/markdown", same)] * 3
        + [
            ("dup2.md", "text/markdown", b"# First\n\nOne version of dup2.\n"),
            ("dup2.md", "text/markdown", b"# Second\n\nAnother version of dup2.\n"),
        ],
    )
    dup = _rows(page, "dup.md")
    expect(dup).to_have_count(3)
    for i in range(3):
        expect(dup.nth(i)).to_have_attribute("data-state", "queued")
        expect(dup.nth(i).get_by_test_id("upload-status")).to_have_text("Queued")
    expect(page.locator("li.upload[data-error-code]")).to_have_count(0)
    (stored,) = _documents_of(idle_dashboard, "dup.md")
    links = {document_id_of(dup.nth(i).get_by_role("link", name="Open document")) for i in range(3)}
    assert links == {stored["document_id"]}

    # two different files under one source: the one registered last is the version; the other
    # row says it was replaced (not a raw not_found, not a storage conflict)
    dup2 = _rows(page, "dup2.md")
    expect(dup2.filter(has_text="Replaced by a newer version")).to_have_count(1)
    current = dup2.and_(page.locator('[data-state="queued"]'))
    expect(current).to_have_count(1)
    (version,) = _documents_of(idle_dashboard, "dup2.md")
    assert document_id_of(current.get_by_role("link", name="Open document")) == version["document_id"]
    expect(page.locator("li.upload[data-error-code]")).to_have_count(0)
    # the bytes of dup.md were sent once
    assert len([u for u in puts if stored["document_id"] in u]) == 1, puts
    assert len(puts) == 3, puts  # dup.md once, each dup2.md once


def test_a_document_deleted_while_it_embeds_says_deleted_on_its_upload_row(
    slow_page: Page, slow_dashboard: Dashboard
) -> None:
    page = slow_page
    _upload_page(page)
    drop_files(page, [("gone.md", "text/markdown", b"# Gone\n\nDeleted while it embeds.\n")])
    row = _rows(page, "gone.md")
    expect(row.get_by_test_id("upload-status")).to_contain_text("Embedding", timeout=PIPELINE_MS)
    document_id = document_id_of(row.get_by_role("link", name="Open document"))
    client = slow_dashboard.client(USER)
    try:
        assert client.http.delete(f"/api/v2/documents/{document_id}").status_code == 204
    finally:
        client.http.close()
    expect(row.get_by_test_id("upload-status")).to_have_text("Deleted")
    expect(row).to_have_attribute("data-gone", "deleted")
    expect(row).not_to_have_attribute("data-state", re.compile(".*"))
    expect(row.get_by_role("link")).to_have_count(0)


def test_a_newer_version_dropped_later_marks_the_older_row_replaced(
    page: Page, idle_dashboard: Dashboard
) -> None:
    _upload_page(page)
    drop_files(page, [("versions.md", "text/markdown", b"# V1\n\nThe first version.\n")])
    older = _rows(page, "versions.md")
    expect(older).to_have_attribute("data-state", "queued")
    older_id = document_id_of(older.get_by_role("link", name="Open document"))
    drop_files(page, [("versions.md", "text/markdown", b"# V2\n\nThe second version.\n")])
    rows = _rows(page, "versions.md")
    expect(rows).to_have_count(2)
    replaced = rows.filter(has_text="Replaced by a newer version")
    expect(replaced).to_have_count(1)
    expect(replaced).to_have_attribute("data-gone", "replaced")
    (newer,) = _documents_of(idle_dashboard, "versions.md")
    assert newer["document_id"] != older_id
    expect(replaced.get_by_role("link", name="Open the newer version")).to_have_attribute(
        "href", f"#/documents/{newer['document_id']}"
    )


def test_a_storage_conflict_on_the_put_reads_already_uploaded(page: Page, idle_dashboard: Dashboard) -> None:
    """The signed URL works once: storage's 409 (the bytes are already stored, e.g. sent by
    another tab) is no refusal; the row follows the document."""

    def conflict(route: Route) -> None:
        if route.request.method != "PUT":
            route.continue_()
            return
        route.fulfill(
            status=409,
            content_type="application/json",
            body='{"statusCode": "409", "error": "conflict", "message": "The resource already exists"}',
        )

    page.route(re.compile(r".*/storage/.*|.*/object/.*|.*upload.*"), conflict)
    _upload_page(page)
    drop_files(page, [("conflict.md", "text/markdown", b"# Conflict\n\nSent twice.\n")])
    row = _rows(page, "conflict.md")
    expect(row.get_by_test_id("upload-status")).to_have_text("Already uploaded")
    expect(row).not_to_have_attribute("data-error-code", re.compile(".*"))
    expect(row.get_by_role("link", name="Open document")).to_be_visible()


def test_an_unsupported_type_is_refused_in_a_users_words(
    page: Page, idle_dashboard: Dashboard, screenshot_dir: Path
) -> None:
    _upload_page(page)
    expect(page.get_by_test_id("dropzone")).to_contain_text("images (read by OCR), HTML, Markdown, CSV, JSON")
    drop_files(page, [("photo.gif", "image/gif", b"GIF89a" + bytes(40))])
    row = _rows(page, "photo.gif")
    expect(row).to_have_attribute("data-error-code", "unsupported_type")
    expect(row.get_by_test_id("upload-status")).to_have_text(
        "A GIF image (image/gif) is not supported: upload PDF, Office (DOCX, PPTX, PPSX, XLSX, XLSM), OpenDocument, "
        "EPUB, RTF, e-mail (EML, MSG), image (PNG, JPEG, TIFF, WebP), HTML, Markdown, CSV, JSON or text files."
    )
    expect(row.locator("code")).to_have_text("unsupported_type")
    # the API's own words stay one click away
    row.get_by_text("The API's message").click()
    expect(row.locator("details p")).to_contain_text("image/gif")


def test_a_search_that_fails_or_cannot_run_clears_the_earlier_results(page: Page) -> None:
    go(page, "#/search")
    expect(heading(page)).to_have_text("Search")
    page.get_by_label("Query").fill("lighthouse")
    page.get_by_role("button", name="Search").click()
    earlier = page.get_by_role("status").filter(has_text="No results")
    expect(earlier).to_be_visible()

    page.get_by_text("Filters", exact=True).click()
    page.get_by_label("Where").fill("foo")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert")).to_contain_text("Where, line 1")
    expect(earlier).to_have_count(0)

    page.get_by_label("Where").fill("")
    page.get_by_role("button", name="Search").click()
    expect(earlier).to_be_visible()
    page.get_by_label("Results").fill("60")
    page.get_by_role("button", name="Search").click()  # the browser's validation stops it
    expect(page.get_by_role("alert")).to_contain_text("Results")
    expect(earlier).to_have_count(0)

    page.get_by_label("Results").fill("5")
    page.get_by_role("button", name="Search").click()
    expect(earlier).to_be_visible()
    page.get_by_label("Where").fill("k" * 2000 + "=v")  # the API refuses a key this long
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(earlier).to_have_count(0)


def test_a_missing_document_shows_only_the_message_and_the_way_back(page: Page) -> None:
    go(page, f"#/documents/{uuid.uuid4()}")
    expect(heading(page)).to_have_text("Document not found")
    expect(page.get_by_role("alert")).to_contain_text("No document of yours has this id")
    expect(page.get_by_role("link", name="Back to the list")).to_be_visible()
    expect(page.get_by_role("heading", level=2)).to_have_count(0)
    expect(page.locator("main section")).to_have_count(0)


def test_the_workers_card_says_it_covers_the_installation_and_marks_quiet_workers(page: Page) -> None:
    go(page, "#/health")
    expect(heading(page)).to_have_text("Health")
    workers = page.locator("section", has=page.get_by_role("heading", name="Workers"))
    expect(workers).to_contain_text("Workers seen in the last hour, across all users")
    now = datetime.now(UTC)
    seen = {
        "working": {"jobs_working": 1, "last_seen": (now - timedelta(minutes=30)).isoformat()},
        "idle": {"jobs_working": 0, "last_seen": (now - timedelta(seconds=20)).isoformat()},
        "quiet": {"jobs_working": 0, "last_seen": (now - timedelta(minutes=7, seconds=5)).isoformat()},
    }
    shown = page.evaluate(
        """async (seen) => {
            const { workerActivity } = await import("/static/health.js");
            const out = {};
            for (const [name, w] of Object.entries(seen)) {
                const el = workerActivity({ worker_id: name, jobs_stalled: 0, ...w });
                out[name] = [el.dataset.activity, el.textContent];
            }
            return out;
        }""",
        seen,
    )
    assert shown == {
        "working": ["working", "working"],
        "idle": ["idle", "idle"],
        "quiet": ["quiet", "quiet: not seen for 7 min"],
    }
