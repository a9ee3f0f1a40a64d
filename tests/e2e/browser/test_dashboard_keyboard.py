"""The dashboard from the keyboard alone: sign in, tab to the navigation and follow its links with
Enter, open the file chooser from the drop zone with Enter, search; focus is visible."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, FilePayload, Locator, Page, expect

from tests.e2e.browser.dashboard import PIPELINE_MS, Dashboard, heading, open_dashboard

pytestmark = pytest.mark.e2e

USER = "browser-keys"
MAX_TABS = 60


def tab_to(page: Page, target: Locator) -> None:
    """Press Tab until ``target`` has the focus (at most MAX_TABS presses)."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return
    focused = page.evaluate("() => document.activeElement && document.activeElement.outerHTML.slice(0, 200)")
    raise AssertionError(f"Tab never reached {target}; focus is on {focused}")


def focus_ring(target: Locator) -> str:
    """The computed outline and box shadow of ``target``: what shows where the focus is."""
    return str(
        target.evaluate(
            "el => { const s = getComputedStyle(el);"
            " return `${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor} | ${s.boxShadow}`; }"
        )
    )


def test_the_main_flows_work_from_the_keyboard(browser: Browser, dashboard: Dashboard) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    # a listener from the start turns on Playwright's interception of file choosers; one set up
    # only by expect_file_chooser (below) missed the chooser a Tab-then-Enter opened
    page.on("filechooser", lambda chooser: None)
    try:
        open_dashboard(page, dashboard.base_url)
        token_box = page.get_by_label("Access token")
        expect(token_box).to_be_visible()
        tab_to(page, token_box)
        page.keyboard.insert_text(dashboard.token(USER))
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("user-id")).to_have_text(USER)

        nav = page.get_by_role("navigation", name="Main")
        upload_link = nav.get_by_role("link", name="Upload")
        unfocused = focus_ring(upload_link)
        tab_to(page, upload_link)
        assert focus_ring(upload_link) != unfocused, f"no visible focus on the Upload link: {unfocused}"
        page.keyboard.press("Enter")
        expect(heading(page)).to_have_text("Upload")
        expect(upload_link).to_have_attribute("aria-current", "page")
        assert page.url.endswith("#/upload")

        zone = page.get_by_test_id("dropzone")
        tab_to(page, zone)
        with page.expect_file_chooser() as chooser:
            page.keyboard.press("Enter")
        assert chooser.value.is_multiple()
        keys: FilePayload = {
            "name": "keys.md",
            "mimeType": "text/markdown",
            "buffer": b"# Keys\n\nTyped, not clicked.\n",
        }
        chooser.value.set_files(files=[keys])
        item = page.locator('li[data-filename="keys.md"]')
        expect(item).to_have_attribute("data-state", "done", timeout=PIPELINE_MS)

        documents_link = nav.get_by_role("link", name="Documents")
        tab_to(page, documents_link)
        page.keyboard.press("Enter")
        expect(heading(page)).to_have_text("Documents")
        row_link = page.locator("tr[data-document-id]").get_by_role("link", name="keys.md")
        tab_to(page, row_link)
        page.keyboard.press("Enter")
        expect(heading(page)).to_have_text("keys.md")

        search_link = nav.get_by_role("link", name="Search")
        tab_to(page, search_link)
        page.keyboard.press("Enter")
        query = page.get_by_label("Query")
        tab_to(page, query)
        page.keyboard.type("typed not clicked")
        page.keyboard.press("Enter")
        expect(page.get_by_role("list", name="Results").locator("li.hit").first).to_contain_text("keys.md")
    finally:
        context.close()
