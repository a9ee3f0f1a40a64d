"""Helpers of the browser tests: the server under test, signing in, dropping files on the drop
zone, axe-core, screenshots and the PDFs the tests ingest."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect

from docingest.settings import Settings
from tests.conftest import make_settings, new_database
from tests.e2e.client import ApiClient, token
from tests.e2e.conftest import SECRET
from tests.e2e.servers import _env, cli, free_port, process

# Waits for the pipeline (a document's ten stages on a shared, busy machine): generous, and only
# an upper bound, never a speed claim.
PIPELINE_MS = 90_000
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


@dataclass
class Dashboard:
    """``docingest serve`` under test: its base URL, JWT secret, settings and log file."""

    base_url: str
    secret: str
    settings: Settings
    log: Path

    def token(self, user: str) -> str:
        """A bearer token of ``user`` signed with the server's secret."""
        return token(self.secret, user)

    def client(self, user: str) -> ApiClient:
        """An API client authenticated as ``user`` (setup and cross-checks, beside the page)."""
        return ApiClient(self.base_url, self.token(user))

    def ingest(self, user: str, data: bytes, filename: str, mime: str) -> dict[str, Any]:
        """Upload ``data`` as ``user`` through the API and wait until its job is terminal; the
        document (``DocumentPublic`` JSON)."""
        client = self.client(user)
        try:
            reply = client.request_upload(data, filename=filename, mime=mime, source=filename)
            assert reply.status_code == 201, reply.text
            ticket = reply.json()
            assert client.put(ticket, data).status_code == 200
            return client.wait_document(ticket["document_id"])
        finally:
            client.http.close()


@contextmanager
def serve_dashboard(pg_url: str, tmp: Path, *, worker_slots: int, **settings: Any) -> Iterator[Dashboard]:
    """``docingest serve --worker-slots N`` on loopback with a new database under ``tmp``, in
    development (the local user's button), signing tokens with the tests' ``SECRET``; ``settings``
    override the tests' defaults (``make_settings``). Its log is ``tmp/serve.log``."""
    config = make_settings(
        new_database(pg_url),
        tmp / "data",
        environment="development",
        jwt_secret=SECRET,
        api_port=free_port(),
        upload_sweep_seconds=0.5,
        **settings,
    )
    base = f"http://127.0.0.1:{config.api_port}"
    args = cli(
        "serve", "--host", "127.0.0.1", "--port", str(config.api_port), "--worker-slots", str(worker_slots)
    )
    with process(args, _env(config), tmp / "serve.log", f"{base}/health"):
        yield Dashboard(base_url=base, secret=SECRET, settings=config, log=tmp / "serve.log")


def pdf_with_pages(pages: list[str]) -> bytes:
    """A PDF with one page per item of ``pages``, each its text (fpdf2, a core font, 10 pt; a
    text longer than a page is cut, never carried onto another page)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(False)
    pdf.set_font("Helvetica", size=10)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 5, text)
    out = BytesIO()
    pdf.output(out)
    return out.getvalue()


def filler(topic: str, sentences: int) -> str:
    """Plain sentences about ``topic`` (about 15 tokens each): text that makes a page longer
    than a chunk, so the chunks of a page start on it."""
    return " ".join(
        f"Paragraph {i} of the {topic} notes lists routine upkeep, inspection dates and who signed them."
        for i in range(1, sentences + 1)
    )


def open_dashboard(page: Page, base_url: str, route: str = "#/documents") -> None:
    page.goto(f"{base_url}/{route}")


def sign_in(page: Page, base_url: str, bearer: str, route: str = "#/documents") -> None:
    """Open the dashboard and sign in by pasting ``bearer`` in the form."""
    open_dashboard(page, base_url, route)
    page.get_by_label("Access token").fill(bearer)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("user-id")).to_be_visible()


def go(page: Page, route: str) -> None:
    """Follow the dashboard's hash route (no page load)."""
    page.evaluate("route => { window.location.hash = route }", route)


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def drop_files(page: Page, files: list[tuple[str, str, bytes]]) -> None:
    """Drop ``files`` (name, type, bytes) on the drop zone: a ``DataTransfer`` built in the page
    from the bytes, carried by synthetic ``dragenter``/``dragover``/``drop`` events, so the
    page's own drop handler runs."""
    payload = [{"name": n, "type": t, "b64": base64.b64encode(b).decode()} for n, t, b in files]
    zone = page.get_by_test_id("dropzone")
    expect(zone).to_be_visible()
    zone.evaluate(
        """(zone, files) => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), c => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, {type: f.type}));
            }
            for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
            }
        }""",
        payload,
    )


def mark_window(page: Page) -> None:
    """A marker on ``window`` that a reload or navigation would lose (see :func:`assert_same_window`)."""
    page.evaluate("() => { window.__docingestTestMarker = 'kept' }")


def assert_same_window(page: Page) -> None:
    assert page.evaluate("() => window.__docingestTestMarker") == "kept", "the page was reloaded"


def run_axe(page: Page, axe_script: Path, label: str) -> list[dict[str, Any]]:
    """Inject axe-core and run it on the whole page; prints every violation, returns the
    ``serious`` and ``critical`` ones."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(axe_script))
    result: dict[str, Any] = page.evaluate(
        "async () => await window.axe.run(document, {resultTypes: ['violations']})"
    )
    violations: list[dict[str, Any]] = result["violations"]
    assert result["passes"], f"axe checked nothing on {label}"
    print(f"axe {label}: {len(result['passes'])} rules passed, {len(violations)} violated")
    for v in violations:
        targets = [" ".join(map(str, node["target"])) for node in v["nodes"]][:5]
        print(f"axe {label}: {v['impact']} {v['id']}: {v['help']} at {targets}")
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{v['impact']} {v['id']}: {v['help']} ({v['helpUrl']}); "
        + "; ".join(node["failureSummary"].replace("\n", " ") for node in v["nodes"][:3])
        for v in violations
    )


def screenshot(page: Page, directory: Path, name: str) -> Path:
    """A full-page PNG ``<name>-<width>x<height>.png`` in ``directory``."""
    size = page.viewport_size or {"width": 0, "height": 0}
    path = directory / f"{name}-{size['width']}x{size['height']}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def document_id_of(link: Locator) -> str:
    """The uuid of a link to ``#/documents/<uuid>``."""
    href = link.get_attribute("href") or ""
    found = re.search(r"#/documents/([0-9a-f-]{36})", href)
    assert found, f"not a document link: {href!r}"
    return found.group(1)
