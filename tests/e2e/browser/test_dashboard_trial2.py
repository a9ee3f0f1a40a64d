"""What the second user trial found, each as the browser sees it: a 401 on the event stream
signs the tab out; ``documents_changed`` reloads the list and tells a Document page its document
is gone; a retry that re-arms a refused upload says the document waits for its file; the chunk
pager keeps the keyboard's focus; a chosen folder's hidden files are skipped and counted; the
Health page's Workers table fits its card at 1280 px."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.e2e.browser.dashboard import PIPELINE_MS, Dashboard, filler, go, heading, open_dashboard, sign_in
from tests.e2e.servers import _env, cli

pytestmark = pytest.mark.e2e

USER = "browser-trial2"


def emit(page: Page, message_type: str, data: dict[str, object]) -> None:
    """Hand the page's event stream a message as if the server had sent it (the module the
    dashboard imported: a dynamic import of its URL is the same instance)."""
    page.evaluate(
        """async ([type, data]) => {
            const { events } = await import("/static/events.js");
            events.emit({ type, id: "", data });
        }""",
        [message_type, json.dumps(data)],
    )


def test_a_401_on_the_event_stream_signs_the_tab_out_with_the_api_message(
    browser: Browser, dashboard: Dashboard
) -> None:
    context = browser.new_context()
    page = context.new_page()

    def expired(route: Route) -> None:
        route.fulfill(
            status=401,
            content_type="application/json",
            body=json.dumps({"error_code": "token_expired", "message": "The access token has expired."}),
        )

    try:
        page.route(re.compile(r"/api/v2/events(\?.*)?$"), expired)
        open_dashboard(page, dashboard.base_url)
        page.get_by_label("Access token").fill(dashboard.token(USER))
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("You were signed out: The access token has expired.")
        expect(page.get_by_label("Access token")).to_be_visible()
        expect(page.get_by_test_id("user-id")).to_have_count(0)
    finally:
        context.close()


def test_documents_changed_reloads_the_list_and_tells_a_document_page_it_was_deleted(
    browser: Browser, dashboard: Dashboard
) -> None:
    user = f"{USER}-changes"
    first = dashboard.ingest(user, b"# Kept\n\nThe kept note.\n", "kept-note.md", "text/markdown")
    second = dashboard.ingest(user, b"# Gone\n\nThe gone note.\n", "gone-note.md", "text/markdown")
    context = browser.new_context()
    page = context.new_page()
    client = dashboard.client(user)
    try:
        # the real stream is replaced by one that stays silent: only emit() below speaks
        page.route(re.compile(r"/api/v2/events(\?.*)?$"), lambda route: route.abort())
        sign_in(page, dashboard.base_url, dashboard.token(user))
        gone_row = page.locator(f'tr[data-document-id="{second["document_id"]}"]')
        expect(gone_row).to_be_visible()
        assert client.http.delete(f"/api/v2/documents/{second['document_id']}").status_code == 204
        emit(page, "documents_changed", {"total": 1})
        expect(gone_row).to_have_count(0)
        expect(page.locator(f'tr[data-document-id="{first["document_id"]}"]')).to_be_visible()

        go(page, f"#/documents/{first['document_id']}")
        expect(heading(page)).to_have_text("kept-note.md")
        delete = page.get_by_role("button", name="Delete", exact=True)
        expect(delete).to_be_visible()
        assert client.http.delete(f"/api/v2/documents/{first['document_id']}").status_code == 204
        emit(page, "documents_changed", {"total": 0})
        expect(page.locator(".page-status")).to_contain_text("This document was deleted")
        expect(delete).to_have_count(0)
        expect(page.get_by_role("button", name="Download", exact=True)).to_have_count(0)
    finally:
        client.http.close()
        context.close()


def test_retry_of_a_refused_empty_file_says_it_waits_for_its_file(
    browser: Browser, dashboard: Dashboard, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "blank-page.txt").write_bytes(b"")
    # the CLI exits 1 when a document failed: that failure is the point, its report is checked
    proc = subprocess.run(
        cli("ingest", str(folder), "--json"),
        env=_env(dashboard.settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert json.loads(proc.stdout)["failed_by_code"] == {"empty_file": 1}, proc.stdout + proc.stderr

    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{dashboard.base_url}/#/documents")
        page.get_by_role("button", name="Use the local development user").click()
        row = page.locator("tr[data-document-id]").filter(has_text="blank-page.txt")
        expect(row.get_by_test_id("error-code")).to_have_text("empty_file")
        row.get_by_role("link").first.click()
        page.get_by_role("button", name="Retry", exact=True).click()
        status = page.locator(".page-status")
        expect(status).to_contain_text("now waits for its file: drop it again on the Upload page")
        expect(status).to_contain_text("blank-page.txt")
        expect(status).not_to_contain_text("failed")
        expect(status.locator(".notice.error")).to_have_count(0)
        expect(page.locator(".page[data-state]")).to_have_attribute("data-state", "waiting")
    finally:
        context.close()


def test_the_chunk_pager_keeps_the_focus_on_the_button_pressed(
    browser: Browser, dashboard: Dashboard
) -> None:
    user = f"{USER}-chunks"
    # 14 sections of about 220 tokens: 28 chunks (two a section), between one page and two
    text = "\n\n".join(f"# Section {i}\n\n{filler(f'section {i}', 14)}" for i in range(1, 15))
    doc = dashboard.ingest(user, text.encode(), "long-notes.md", "text/markdown")
    total = doc["chunks"]
    assert 20 < total <= 40, f"the test needs two pages of chunks, got {total}"
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        sign_in(page, dashboard.base_url, dashboard.token(user), route=f"#/documents/{doc['document_id']}")
        expect(heading(page)).to_have_text("long-notes.md")
        chunks = page.locator("section", has=page.get_by_role("heading", name="Chunks", level=2))
        rng = chunks.locator(".pager .range")
        expect(rng).to_have_text(f"1–20 of {total}")
        next_button = chunks.get_by_role("button", name="Next chunks")
        next_button.focus()
        page.keyboard.press("Enter")
        expect(rng).to_have_text(f"21–{total} of {total}")
        expect(next_button).to_be_focused()
        expect(next_button).to_be_disabled()
        page.keyboard.press("Enter")  # at the end: nothing happens, the focus stays
        page.keyboard.press("Enter")
        expect(rng).to_have_text(f"21–{total} of {total}")
        expect(next_button).to_be_focused()
        previous = chunks.get_by_role("button", name="Previous chunks")
        previous.focus()
        page.keyboard.press("Enter")
        expect(rng).to_have_text(f"1–20 of {total}")
        expect(previous).to_be_focused()
    finally:
        context.close()


def test_a_chosen_folder_skips_hidden_files_and_says_how_many(
    browser: Browser, dashboard: Dashboard, tmp_path: Path
) -> None:
    folder = tmp_path / "notes"
    (folder / ".git").mkdir(parents=True)
    (folder / "sub" / ".drafts").mkdir(parents=True)
    (folder / "visible-note.md").write_text("# Visible\n\nShown to everyone.\n")
    (folder / ".secret.md").write_text("# Secret\n\nNot for upload.\n")
    (folder / ".git" / "config.md").write_text("# Config\n\nNot for upload.\n")
    (folder / "sub" / ".drafts" / "draft.md").write_text("# Draft\n\nNot for upload.\n")
    context = browser.new_context()
    page = context.new_page()
    try:
        sign_in(page, dashboard.base_url, dashboard.token(f"{USER}-folder"), route="#/upload")
        expect(heading(page)).to_have_text("Upload")
        page.locator("#choose-folder").set_input_files(folder)
        uploads = page.get_by_role("list", name="Uploads")
        item = uploads.locator('li[data-filename="notes/visible-note.md"]')
        expect(item).to_have_attribute("data-state", "done", timeout=PIPELINE_MS)
        expect(page.get_by_test_id("upload-skipped")).to_contain_text("Skipped 3 hidden files")
        expect(uploads.locator(":scope > li")).to_have_count(1)
    finally:
        context.close()


def test_the_workers_table_fits_its_card_at_1280(browser: Browser, dashboard: Dashboard) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        dashboard.ingest(f"{USER}-health", b"# Busy\n\nSomething for a worker.\n", "busy.md", "text/markdown")

        def long_worker_ids(route: Route) -> None:
            # worker ids are hostname:pid:hex; a host named like a Kubernetes pod makes them long
            reply = route.fetch()
            summary = reply.json()
            assert summary["workers"], summary
            for i, worker in enumerate(summary["workers"]):
                worker["worker_id"] = (
                    f"docingest-worker-7f9c4b6d8-x2kqp-{i}.ingest.svc.internal:48213:3f9c2a1b"
                )
            route.fulfill(response=reply, json=summary)

        page.route(re.compile(r"/api/v2/summary(\?.*)?$"), long_worker_ids)
        sign_in(page, dashboard.base_url, dashboard.token(f"{USER}-health"), route="#/health")
        card = page.locator("section", has=page.get_by_role("heading", name="Workers", level=2))
        table = card.locator("table")
        expect(table).to_be_visible()
        wrap = card.locator(".table-wrap")
        widths = wrap.evaluate("el => [el.scrollWidth, el.clientWidth]")
        assert widths[0] <= widths[1], f"the Workers table overflows its card: {widths}"
    finally:
        context.close()
