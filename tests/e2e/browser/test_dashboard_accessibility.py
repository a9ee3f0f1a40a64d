"""Every page of the dashboard at 1280x800 and 390x844: axe-core finds no serious or critical
violation, each page has its title and one ``<h1>``, the phone size never scrolls sideways; and a
screenshot of each page is written to ``$DOCINGEST_SCREENSHOT_DIR`` (``scripts/screenshots.py``
writes them to docs/screenshots)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser.dashboard import (
    PIPELINE_MS,
    SIZES,
    Dashboard,
    describe,
    drop_files,
    go,
    heading,
    open_dashboard,
    pdf_with_pages,
    run_axe,
    screenshot,
    sign_in,
)

pytestmark = pytest.mark.e2e

USER = "browser-a11y"
PAGES = ["sign-in", "documents", "upload", "search", "document", "health"]


@pytest.fixture(scope="module")
def content(dashboard: Dashboard) -> dict[str, Any]:
    """USER's documents for the pages to show: a complete PDF, a complete Markdown file and a
    failed one (its error code and message on the documents page)."""
    pdf = dashboard.ingest(
        USER,
        pdf_with_pages(
            [
                "Annual report. The orchard cooperative sold apples to eleven villages.",
                "Weather. A late frost in April cut the pear harvest by a third.",
            ]
        ),
        "orchard-report.pdf",
        "application/pdf",
    )
    md = dashboard.ingest(
        USER,
        b"# Cider\n\nThe cooperative pressed cider from the windfall apples.\n",
        "cider.md",
        "text/markdown",
    )
    broken = dashboard.ingest(USER, b"%PDF-1.7\nnot a PDF at all\n", "scanned-invoice.pdf", "application/pdf")
    assert (pdf["state"], md["state"], broken["state"]) == ("done", "done", "failed")
    return {"pdf": pdf, "md": md, "broken": broken}


def _check_page(page: Page, name: str, title: str) -> None:
    """The page's structure: its title and one ``<h1>``."""
    expect(page).to_have_title(f"{title} · docingest")
    expect(page.locator("h1")).to_have_count(1)


@pytest.mark.parametrize("size", list(SIZES))
def test_every_page_is_accessible_and_fits_the_screen(
    browser: Browser,
    dashboard: Dashboard,
    content: dict[str, Any],
    axe_script: Path,
    screenshot_dir: Path,
    size: str,
) -> None:
    width, height = SIZES[size]
    # axe is injected as a script element, which the dashboard's CSP (script-src 'self') would
    # block: these contexts bypass the CSP; the flow tests run under it.
    context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    page = context.new_page()
    serious: dict[str, list[dict[str, Any]]] = {}
    overflow: dict[str, int] = {}

    def check(name: str) -> None:
        serious[name] = run_axe(page, axe_script, f"{name} {width}x{height}")
        screenshot(page, screenshot_dir, name)
        scroll = int(page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth"))
        if scroll > 0:
            overflow[name] = scroll

    try:
        open_dashboard(page, dashboard.base_url)
        expect(page.get_by_label("Access token")).to_be_visible()
        check("sign-in")

        sign_in(page, dashboard.base_url, dashboard.token(USER))
        _check_page(page, "documents", "Documents")
        for doc in content.values():
            expect(page.locator(f'tr[data-document-id="{doc["document_id"]}"]')).to_be_visible()
        expect(page.get_by_test_id("error-code").first).to_have_text("pdf_corrupt")
        check("documents")

        go(page, "#/upload")
        _check_page(page, "upload", "Upload")
        name = f"field-notes-{size}.md"
        drop_files(page, [(name, "text/markdown", b"# Notes\n\nThe bees swarmed twice in May.\n")])
        item = page.locator(f'li[data-filename="{name}"]')
        expect(item).to_have_attribute("data-state", "done", timeout=PIPELINE_MS)
        drop_files(page, [("setup.exe", "application/x-msdownload", b"MZ" + bytes(30))])
        expect(page.locator('li[data-filename="setup.exe"]')).to_have_attribute(
            "data-error-code", "unsupported_type"
        )
        check("upload")

        go(page, "#/search")
        _check_page(page, "search", "Search")
        page.get_by_label("Query").fill("late frost pear harvest")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_role("list", name="Results").locator("li.hit").first).to_be_visible()
        check("search")

        go(page, f"#/documents/{content['pdf']['document_id']}")
        expect(heading(page)).to_have_text("orchard-report.pdf")
        expect(page).to_have_title("orchard-report.pdf · docingest")
        for section in ("Details", "Stages", "Timeline", "Chunks", "Errors"):
            expect(page.get_by_role("heading", name=section, level=2)).to_be_visible()
        expect(page.get_by_text("late frost in April").first).to_be_visible()
        check("document")

        go(page, "#/health")
        _check_page(page, "health", "Health")
        for section in ("Queue", "Workers", "Failures", "Embedder", "Generations"):
            expect(page.get_by_role("heading", name=section, level=2)).to_be_visible()
        expect(page.get_by_text("pdf_corrupt").first).to_be_visible()
        check("health")
    finally:
        context.close()

    assert sorted(serious) == sorted(PAGES)
    found = {name: describe(v) for name, v in serious.items() if v}
    assert not found, "serious or critical axe violations:\n" + "\n".join(
        f"{name}: {text}" for name, text in found.items()
    )
    if size == "phone":
        assert not overflow, f"pages wider than the {width}-px screen (px of sideways scroll): {overflow}"
