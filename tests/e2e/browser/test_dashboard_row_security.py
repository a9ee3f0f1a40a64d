"""Row security through the dashboard: another user's browser session sees none of a user's
documents, events or search results, and a document page of theirs is not found."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser.dashboard import PIPELINE_MS, Dashboard, go, heading, pdf_with_pages, sign_in

pytestmark = pytest.mark.e2e

OWNER, OTHER = "browser-owner", "browser-other"
SECRET_SENTENCE = "The cobalt submarine charts the silent trench near Reykjanes"

# Records the text of the page's `GET /events` stream(s) in window.__sse (a tee of the response
# the dashboard reads), so the test sees every message the browser received.
SSE_TAP = """
(() => {
    window.__sse = "";
    const original = window.fetch.bind(window);
    window.fetch = async (...args) => {
        const response = await original(...args);
        const url = args[0] instanceof Request ? args[0].url : String(args[0]);
        if (new URL(url, location.href).pathname.endsWith("/api/v2/events") && response.body) {
            const [mine, theirs] = response.body.tee();
            (async () => {
                const reader = mine.getReader();
                const decoder = new TextDecoder();
                for (;;) {
                    const {done, value} = await reader.read();
                    if (done) break;
                    window.__sse += decoder.decode(value, {stream: true});
                }
            })();
            return new Response(theirs, {status: response.status, statusText: response.statusText,
                                         headers: response.headers});
        }
        return response;
    };
})();
"""


def _rows(page: Page) -> list[str]:
    return [str(r.get_attribute("data-document-id")) for r in page.locator("tr[data-document-id]").all()]


def test_another_user_sees_none_of_the_documents_events_or_search_results(
    browser: Browser, dashboard: Dashboard
) -> None:
    first = dashboard.ingest(
        OWNER, pdf_with_pages([f"Expedition log. {SECRET_SENTENCE}."]), "expedition.pdf", "application/pdf"
    )
    assert first["state"] == "done", first
    owner_ctx = browser.new_context()
    other_ctx = browser.new_context()
    try:
        other_ctx.add_init_script(SSE_TAP)
        owner = owner_ctx.new_page()
        other = other_ctx.new_page()
        sign_in(owner, dashboard.base_url, dashboard.token(OWNER))
        expect(owner.locator(f'tr[data-document-id="{first["document_id"]}"]')).to_be_visible()

        with other.expect_response(re.compile(r"/api/v2/documents(\?|$)")) as listed:
            sign_in(other, dashboard.base_url, dashboard.token(OTHER))
        assert listed.value.ok
        expect(heading(other)).to_have_text("Documents")
        assert _rows(other) == []
        other.wait_for_function("() => window.__sse !== undefined")

        # while both watch: the owner adds a document, the other user one of their own
        second = dashboard.ingest(OWNER, b"# Depth\n\nSonar pings at dusk.\n", "sonar.md", "text/markdown")
        theirs = dashboard.ingest(
            OTHER, b"# Garden\n\nTomatoes ripen in August.\n", "garden.md", "text/markdown"
        )
        expect(owner.locator(f'tr[data-document-id="{second["document_id"]}"]')).to_be_visible(
            timeout=PIPELINE_MS
        )
        expect(other.locator(f'tr[data-document-id="{theirs["document_id"]}"]')).to_be_visible(
            timeout=PIPELINE_MS
        )
        # the other user's stream carried their own document (so the tap works) and none of the owner's
        other.wait_for_function(
            "id => window.__sse.includes(id)", arg=theirs["document_id"], timeout=PIPELINE_MS
        )
        received = other.evaluate("() => window.__sse")
        for doc in (first, second):
            assert doc["document_id"] not in received
            assert doc["filename"] not in received
        assert _rows(other) == [theirs["document_id"]]

        # search: the owner finds the sentence, the other user gets none of the owner's chunks
        for page in (owner, other):
            go(page, "#/search")
            page.get_by_label("Query").fill("cobalt submarine silent trench")
            page.get_by_role("button", name="Search").click()
        expect(owner.locator(f'li.hit[data-document-id="{first["document_id"]}"]').first).to_be_visible()
        answered = (
            other.get_by_role("list", name="Results")
            .locator("li.hit")
            .or_(other.get_by_role("status").filter(has_text="No results"))
        )
        expect(answered.first).to_be_visible()
        hits = [h.get_attribute("data-document-id") for h in other.locator("li.hit").all()]
        assert set(hits) <= {theirs["document_id"]}, hits

        # the owner's document page, opened by the other user: not found, nothing of it shown
        go(other, f"#/documents/{first['document_id']}")
        expect(other.get_by_text(re.compile(r"not found", re.IGNORECASE)).first).to_be_visible()
        expect(other.get_by_text("expedition.pdf")).to_have_count(0)
        expect(heading(other)).not_to_have_text("expedition.pdf")
        go(owner, f"#/documents/{first['document_id']}")
        expect(heading(owner)).to_have_text("expedition.pdf")
    finally:
        owner_ctx.close()
        other_ctx.close()
