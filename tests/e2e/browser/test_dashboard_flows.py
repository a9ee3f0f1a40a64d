"""The dashboard's main flows in Chromium against ``docingest serve --worker-slots 2``: sign in,
drop files on the upload area and watch them complete live, see a refusal's message, search and
find a PDF's page, retry a failure, delete a document, download the original."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser.conftest import MAX_FILE_BYTES
from tests.e2e.browser.dashboard import (
    PIPELINE_MS,
    Dashboard,
    assert_same_window,
    document_id_of,
    drop_files,
    filler,
    go,
    heading,
    mark_window,
    open_dashboard,
    pdf_with_pages,
    sign_in,
)

pytestmark = pytest.mark.e2e

USER = "browser-alice"
PDF_SENTENCE = "The quartz lighthouse keeper records tidal anomalies every Thursday"
PDF_NAME = "lighthouse.pdf"
# Pages of about 600 tokens (chunks hold at most 256): the sentence, in the middle of page 2,
# is in a chunk that starts on page 2.
PDF = pdf_with_pages(
    [
        "Harbour operations manual. " + filler("harbour", 40),
        f"Tidal records. {filler('ledger', 20)} {PDF_SENTENCE} in a leather ledger. {filler('stairs', 20)}",
        "Appendix. " + filler("varnish", 40),
    ]
)
MD_SENTENCE = "The amber heron nests beside the old mill pond"
MD_NAME = "heron-notes.md"
MD = f"# Field notes\n\n{MD_SENTENCE} each April.\n\nIt leaves in late September.\n".encode()
EXE_NAME = "installer.exe"
BIG_NAME = "oversized.txt"


@dataclass
class Tab:
    """USER's tab: its page, the URLs of its ``load`` events and its requests (``METHOD /path``)."""

    page: Page
    loads: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def alice(browser: Browser, dashboard: Dashboard) -> Iterator[Tab]:
    """One signed-in tab of USER for the module, its loads, requests and CSP violations recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    tab = Tab(page)
    page.on("load", lambda p: tab.loads.append(p.url))
    page.on("request", lambda r: tab.requests.append(f"{r.method} {urlsplit(r.url).path}"))
    page.add_init_script(
        "window.__cspViolations = [];"
        "document.addEventListener('securitypolicyviolation', e => "
        "window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    sign_in(page, dashboard.base_url, dashboard.token(USER))
    yield tab
    context.close()


@pytest.fixture(scope="module")
def dropped(alice: Tab) -> dict[str, Any]:
    """The PDF, the Markdown file and two refused files dropped together on the upload page."""
    page, loads = alice.page, alice.loads
    go(page, "#/upload")
    expect(heading(page)).to_have_text("Upload")
    mark_window(page)
    loads_before = len(loads)
    drop_files(
        page,
        [
            (PDF_NAME, "application/pdf", PDF),
            (MD_NAME, "text/markdown", MD),
            (EXE_NAME, "application/x-msdownload", b"MZ\x90\x00" + bytes(60)),
            (BIG_NAME, "text/plain", b"a" * (MAX_FILE_BYTES + 1)),
        ],
    )
    return {"loads_before": loads_before}


def _csp_violations(page: Page) -> list[str]:
    return list(page.evaluate("() => window.__cspViolations"))


def _document_id(dashboard: Dashboard, filename: str) -> str:
    """The id of USER's document named ``filename``, waited for until its job is terminal."""
    client = dashboard.client(USER)
    try:
        listed = client.http.get("/api/v2/documents", params={"limit": 200}).json()["documents"]
        (doc,) = [d for d in listed if d["filename"] == filename]
        return str(client.wait_document(doc["document_id"])["document_id"])
    finally:
        client.http.close()


def test_sign_in_refuses_a_bad_token_with_the_apis_message_and_keeps_a_good_one_in_the_tab(
    browser: Browser, dashboard: Dashboard
) -> None:
    context = browser.new_context()
    page = context.new_page()
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    try:
        open_dashboard(page, dashboard.base_url)
        expect(heading(page)).to_be_visible()
        page.get_by_label("Access token").fill("not-a-token")
        page.get_by_role("button", name="Sign in").click()
        alert = page.get_by_role("alert")
        expect(alert).to_be_visible()
        refused = dashboard.client(USER)
        refused.http.headers["authorization"] = "Bearer not-a-token"
        message = refused.http.get("/api/v2/documents").json()["message"]
        refused.http.close()
        expect(alert).to_contain_text(message)
        expect(page.get_by_test_id("user-id")).to_have_count(0)

        bearer = dashboard.token(USER)
        page.get_by_label("Access token").fill(bearer)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_test_id("user-id")).to_have_text(USER)
        assert page.evaluate("() => sessionStorage.getItem('docingest.token')") == bearer
        assert bearer not in page.url
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()

        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_label("Access token")).to_be_visible()
        assert page.evaluate("() => sessionStorage.getItem('docingest.token')") is None
        # the token travelled in headers only: in no URL the page asked for, in no server log line
        assert len(urls) > 3 and not [u for u in urls if bearer in u]
        assert bearer not in dashboard.log.read_text(errors="replace")
    finally:
        context.close()


def test_the_local_development_user_signs_in_with_one_click(browser: Browser, dashboard: Dashboard) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        open_dashboard(page, dashboard.base_url)
        page.get_by_role("button", name="Use the local development user").click()
        expect(page.get_by_test_id("user-id")).to_have_text("local")
        expect(heading(page)).to_have_text("Documents")
    finally:
        context.close()


def test_dropped_files_complete_live_and_the_refused_ones_say_why(
    alice: Tab, dropped: dict[str, Any], dashboard: Dashboard
) -> None:
    page, loads = alice.page, alice.loads
    uploads = page.get_by_role("list", name="Uploads")
    for name in (PDF_NAME, MD_NAME):
        item = uploads.locator(f'li[data-filename="{name}"]')
        expect(item).to_have_attribute("data-state", "done", timeout=PIPELINE_MS)
        expect(item.locator("ol.steps")).to_have_attribute("aria-label", "Stage 10 of 10: complete")
        expect(item.get_by_role("progressbar", name=f"Upload of {name}")).to_be_visible()
        expect(item.locator('a[href^="#/documents/"]')).to_be_visible()

    exe = uploads.locator(f'li[data-filename="{EXE_NAME}"]')
    expect(exe).to_have_attribute("data-error-code", "unsupported_type")
    expect(exe.get_by_test_id("upload-status")).to_contain_text("is not supported")
    big = uploads.locator(f'li[data-filename="{BIG_NAME}"]')
    expect(big).to_have_attribute("data-error-code", "file_too_large")
    expect(big.get_by_test_id("upload-status")).to_contain_text(str(MAX_FILE_BYTES))

    # all of it arrived on the page as it was: no reload, no navigation, and over one stream of
    # events (at most a read of each new document beside it, no polling per document)
    assert_same_window(page)
    assert len(loads) == dropped["loads_before"], f"the page loaded again: {loads}"
    assert _csp_violations(page) == []
    requests = alice.requests
    assert requests.count("GET /api/v2/events") == 1, requests
    per_document = Counter(r for r in requests if re.fullmatch(r"GET /api/v2/documents/[0-9a-f-]{36}", r))
    assert all(count <= 2 for count in per_document.values()), per_document

    # the API agrees: the two good files are complete documents, the refused ones are not documents
    client = dashboard.client(USER)
    listed = client.http.get("/api/v2/documents", params={"limit": 200}).json()["documents"]
    client.http.close()
    by_name = {d["filename"]: d for d in listed}
    assert (by_name[PDF_NAME]["stage"], by_name[PDF_NAME]["page_count"]) == ("complete", 3)
    assert by_name[MD_NAME]["stage"] == "complete"
    assert EXE_NAME not in by_name and BIG_NAME not in by_name


def test_search_finds_the_pdf_page_with_the_sentence(
    alice: Tab, dropped: dict[str, Any], dashboard: Dashboard
) -> None:
    page = alice.page
    pdf_id = _document_id(dashboard, PDF_NAME)
    go(page, "#/search")
    expect(heading(page)).to_have_text("Search")
    page.get_by_label("Query").fill("quartz lighthouse keeper tidal anomalies")
    page.get_by_role("button", name="Search").click()
    results = page.get_by_role("list", name="Results")
    first = results.locator("li.hit").first
    expect(first).to_have_attribute("data-document-id", pdf_id)
    expect(first.get_by_test_id("hit-page")).to_have_text(re.compile(r"page\s+2\b"))
    expect(first.locator("mark").first).to_be_visible()
    marked = " ".join(first.locator("mark").all_inner_texts()).lower()
    assert any(term in marked for term in ("quartz", "lighthouse", "keeper", "tidal", "anomalies")), marked
    expect(first.get_by_role("link", name=PDF_NAME)).to_have_attribute("href", f"#/documents/{pdf_id}")
    assert_same_window(page)


def test_the_same_file_dropped_again_is_already_ingested(
    alice: Tab, dropped: dict[str, Any], dashboard: Dashboard
) -> None:
    page = alice.page
    pdf_id = _document_id(dashboard, PDF_NAME)
    go(page, "#/upload")
    expect(heading(page)).to_have_text("Upload")
    page.get_by_role("button", name="Clear finished").click()
    expect(page.locator(f'li[data-filename="{PDF_NAME}"]')).to_have_count(0)
    drop_files(page, [(PDF_NAME, "application/pdf", PDF)])
    item = page.get_by_role("list", name="Uploads").locator(f'li[data-filename="{PDF_NAME}"]')
    expect(item.get_by_test_id("upload-status")).to_have_text("Already ingested")
    expect(item.locator(f'a[href="#/documents/{pdf_id}"]')).to_be_visible()
    client = dashboard.client(USER)
    listed = client.http.get("/api/v2/documents", params={"q": PDF_NAME}).json()
    client.http.close()
    assert [d["document_id"] for d in listed["documents"]] == [pdf_id], listed


def test_the_documents_list_filters_by_state_and_by_name(
    alice: Tab, dropped: dict[str, Any], dashboard: Dashboard
) -> None:
    page = alice.page
    pdf_id, md_id = _document_id(dashboard, PDF_NAME), _document_id(dashboard, MD_NAME)
    go(page, "#/documents")
    expect(page.locator(f'tr[data-document-id="{md_id}"]')).to_be_visible()
    page.get_by_label("Filter by name").fill("heron")
    expect(page.locator("tr[data-document-id]")).to_have_count(1)
    expect(page.locator(f'tr[data-document-id="{md_id}"]')).to_be_visible()
    page.get_by_label("Filter by name").fill("")
    page.get_by_label("State").select_option("done")
    expect(page.locator(f'tr[data-document-id="{pdf_id}"]')).to_be_visible()
    expect(page.locator('tr[data-document-id][data-state="failed"]')).to_have_count(0)
    page.get_by_label("State").select_option("failed")
    expect(page.locator(f'tr[data-document-id="{pdf_id}"]')).to_have_count(0)
    for state in page.locator("tr[data-document-id]").evaluate_all("rows => rows.map(r => r.dataset.state)"):
        assert state == "failed"
    page.get_by_label("State").select_option("")
    expect(page.locator(f'tr[data-document-id="{pdf_id}"]')).to_be_visible()


def test_a_failed_document_is_retried_and_goes_through_its_stages_again(
    alice: Tab, dashboard: Dashboard
) -> None:
    """A PDF that is no PDF fails at parsing (``pdf_corrupt``, permanent); Retry puts it back
    through the stages, seen on the page live, and it fails again with the same code."""
    page = alice.page
    name = "broken-scan.pdf"
    go(page, "#/upload")
    expect(heading(page)).to_have_text("Upload")
    drop_files(page, [(name, "application/pdf", b"%PDF-1.7\n" + b"this is no PDF body\n" * 20)])
    item = page.get_by_role("list", name="Uploads").locator(f'li[data-filename="{name}"]')
    expect(item).to_have_attribute("data-state", "failed", timeout=PIPELINE_MS)
    doc_id = document_id_of(item.locator('a[href^="#/documents/"]').first)
    client = dashboard.client(USER)
    failed = client.wait_document(doc_id)
    assert failed["state"] == "failed" and failed["error_code"] == "pdf_corrupt", failed

    go(page, "#/documents")
    row = page.locator(f'tr[data-document-id="{doc_id}"]')
    expect(row).to_have_attribute("data-state", "failed")
    expect(row.get_by_test_id("error-code")).to_have_text("pdf_corrupt")
    expect(row.get_by_test_id("error-message")).to_contain_text(failed["error_message"][:40])
    # every state the row shows from now on, as the stream moves it
    page.evaluate(
        """id => {
            window.__retryStates = [];
            const note = () => {
                const row = document.querySelector(`tr[data-document-id="${id}"]`);
                const state = row && row.getAttribute("data-state");
                const seen = window.__retryStates;
                if (state && seen[seen.length - 1] !== state) seen.push(state);
            };
            new MutationObserver(note).observe(document.body,
                {subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"]});
        }""",
        doc_id,
    )
    row.get_by_role("button", name=f"Retry {name}").click()
    page.wait_for_function(
        "() => window.__retryStates.some(s => s !== 'failed')", timeout=PIPELINE_MS, polling=50
    )
    expect(row).to_have_attribute("data-state", "failed", timeout=PIPELINE_MS)
    again = client.wait_document(doc_id)
    timeline_reply = client.http.get(f"/api/v2/documents/{doc_id}/timeline")
    assert timeline_reply.status_code == 200, timeline_reply.text
    events = timeline_reply.json()["events"]
    client.http.close()
    assert again["attempts"] == failed["attempts"] + 1 and again["error_code"] == "pdf_corrupt", again
    assert [e["type"] for e in events].count("retry_requested") == 1
    states = page.evaluate("() => window.__retryStates")
    assert states[-1] == "failed" and any(s != "failed" for s in states), states

    # the document's page tells the story: the retry in its timeline, the error in Errors
    row.get_by_role("link", name=name).click()
    expect(heading(page)).to_have_text(name)
    timeline = page.get_by_role("region", name="Timeline").or_(
        page.locator("section", has=page.get_by_role("heading", name="Timeline", level=2))
    )
    expect(timeline.first).to_contain_text("retry_requested")
    errors = page.locator("section", has=page.get_by_role("heading", name="Errors", level=2))
    expect(errors).to_contain_text("pdf_corrupt")
    assert_same_window(page)


def test_a_deleted_document_is_gone_from_the_list_and_from_search(
    alice: Tab, dropped: dict[str, Any], dashboard: Dashboard
) -> None:
    page = alice.page
    md_id = _document_id(dashboard, MD_NAME)
    go(page, "#/search")
    page.get_by_label("Query").fill("amber heron mill pond")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(f'li.hit[data-document-id="{md_id}"]').first).to_be_visible()

    go(page, "#/documents")
    row = page.locator(f'tr[data-document-id="{md_id}"]')
    expect(row).to_be_visible()
    page.get_by_label(f"Select {MD_NAME}").check()
    page.get_by_role("button", name="Delete selected").click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    expect(page.locator(f'tr[data-document-id="{_document_id(dashboard, PDF_NAME)}"]')).to_be_visible()

    client = dashboard.client(USER)
    gone = client.http.get(f"/api/v2/documents/{md_id}")
    client.http.close()
    assert gone.status_code == 404, gone.text

    go(page, "#/search")
    page.get_by_label("Query").fill("amber heron mill pond")
    page.get_by_role("button", name="Search").click()
    answered = (
        page.get_by_role("list", name="Results")
        .locator("li.hit")
        .or_(page.get_by_role("status").filter(has_text="No results"))
    )
    expect(answered.first).to_be_visible()
    expect(page.locator(f'li.hit[data-document-id="{md_id}"]')).to_have_count(0)
    assert_same_window(page)


def test_download_gives_the_original_bytes(
    alice: Tab,
    dropped: dict[str, Any],
    dashboard: Dashboard,
    tmp_path: Path,
) -> None:
    page = alice.page
    pdf_id = _document_id(dashboard, PDF_NAME)
    go(page, "#/documents")
    row = page.locator(f'tr[data-document-id="{pdf_id}"]')
    with page.expect_download() as download:
        row.get_by_role("button", name=f"Download {PDF_NAME}").click()
    saved = tmp_path / "downloaded.pdf"
    download.value.save_as(saved)
    assert download.value.suggested_filename == PDF_NAME
    assert saved.read_bytes() == PDF


def test_the_documents_list_pages_through_many_documents(browser: Browser, dashboard: Dashboard) -> None:
    """55 registered uploads (their bytes never sent: each waits): two pages of 50 and 5."""
    user = "browser-pager"
    client = dashboard.client(user)
    try:
        for i in range(55):
            reply = client.request_upload(
                f"note {i}".encode(), filename=f"note-{i:02d}.md", source=f"note-{i:02d}.md"
            )
            assert reply.status_code == 201, reply.text
    finally:
        client.http.close()
    context = browser.new_context()
    page = context.new_page()
    try:
        sign_in(page, dashboard.base_url, dashboard.token(user))
        rows = page.locator("tr[data-document-id]")
        expect(rows).to_have_count(50)
        expect(page.get_by_text("1–50 of 55")).to_be_visible()
        expect(rows.first).to_have_attribute("data-state", "waiting")
        expect(rows.first.get_by_role("link", name="note-54.md")).to_be_visible()  # newest first
        expect(page.get_by_role("button", name="Previous page")).to_be_disabled()
        page.get_by_role("button", name="Next page").click()
        expect(rows).to_have_count(5)
        expect(page.get_by_text("51–55 of 55")).to_be_visible()
        expect(rows.last.get_by_role("link", name="note-00.md")).to_be_visible()
        expect(page.get_by_role("button", name="Next page")).to_be_disabled()
        page.get_by_role("button", name="Previous page").click()
        expect(rows).to_have_count(50)
    finally:
        context.close()
