"""The dashboard's files: what index.html loads ships in the package, nothing inline that the
Content-Security-Policy would block, and every dashboard reply carries the security headers."""

from __future__ import annotations

from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from docingest.api.app import create_app
from docingest.runtime import Runtime
from docingest.settings import Settings

WEB = resources.files("docingest") / "web"


class _Page(HTMLParser):
    """index.html's references (``src``/``href`` under ``/static/``), inline scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.static: list[str] = []
        self.inline: list[str] = []
        self.meta: dict[str, str] = {}
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("src", "href"):
            value = a.get(key) or ""
            if value.startswith("/static/"):
                self.static.append(value.removeprefix("/static/"))
        if tag == "script":
            self._in_script = True
            if not a.get("src"):
                self.inline.append("<script> without src")
        if tag == "style":
            self.inline.append("<style>")
        if "style" in a:
            self.inline.append(f"style attribute on <{tag}>")
        self.inline += [f"{k} handler on <{tag}>" for k in a if k.startswith("on")]
        if tag == "meta" and a.get("name"):
            self.meta[str(a["name"])] = str(a.get("content"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("inline script text")


def _page(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _imports(js: str) -> list[str]:
    """The relative modules an ES module imports (``from "./x.js"``)."""
    import re

    return re.findall(r"""from\s+["']\./([\w.-]+\.js)["']""", js)


def test_the_package_ships_every_asset_index_html_references() -> None:
    page = _page((WEB / "index.html").read_text())
    assert {"app.js", "style.css", "favicon.svg"} <= set(page.static)
    missing = [name for name in page.static if not (WEB / name).is_file()]
    assert missing == []


def test_every_module_the_entry_imports_is_shipped() -> None:
    seen: set[str] = set()
    todo = ["app.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        assert (WEB / name).is_file(), f"{name} is imported but not in docingest/web"
        todo += _imports((WEB / name).read_text())
    assert {"api.js", "events.js", "documents.js", "upload.js", "search.js", "health.js"} <= seen


def test_index_html_has_no_inline_script_or_style() -> None:
    assert _page((WEB / "index.html").read_text()).inline == []


def test_no_module_sets_a_style_attribute_or_evaluates_strings() -> None:
    """The CSP (style-src 'self', script-src 'self') blocks these at run time."""
    for entry in WEB.iterdir():
        if entry.name.endswith(".js"):
            text = entry.read_text()
            for banned in ('setAttribute("style"', "innerHTML", "eval(", "new Function"):
                assert banned not in text, f"{entry.name} uses {banned}"


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data", environment="test", jwt_secret="s" * 40)
    return TestClient(create_app(Runtime(settings), sweep=False))


def _assert_secured(headers: dict[str, str] | object) -> None:
    h = dict(headers)  # type: ignore[call-overload]
    csp = h["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ):
        assert directive in csp.split("; ")
    assert csp.split("; ")[5 - 1].startswith("connect-src 'self'")
    assert "unsafe" not in csp
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"
    assert h["cache-control"] == "no-cache"


def test_the_page_is_served_at_the_root_with_the_csp_and_the_servers_meta_tags(client: TestClient) -> None:
    reply = client.get("/")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    _assert_secured(reply.headers)
    page = _page(reply.text)
    assert page.meta["docingest-environment"] == "test"
    assert page.meta["docingest-api"] == "/api/v2"
    assert "{{" not in reply.text


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("app.js", "text/javascript"), ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")],
)
def test_assets_have_their_media_type_and_the_csp(client: TestClient, name: str, media_type: str) -> None:
    reply = client.get(f"/static/{name}")
    assert reply.status_code == 200
    assert reply.headers["content-type"].split(";")[0] == media_type
    assert reply.content == (WEB / name).read_bytes()
    _assert_secured(reply.headers)
    again = client.get(f"/static/{name}", headers={"If-None-Match": reply.headers["etag"]})
    assert again.status_code == 304
    _assert_secured(again.headers)


def test_an_unknown_asset_or_a_path_outside_the_folder_is_not_found(client: TestClient) -> None:
    for path in ("/static/nope.js", "/static/..%2Fapi%2Fweb.py", "/static/__init__.py"):
        reply = client.get(path)
        assert reply.status_code == 404, path
        assert reply.json()["error_code"] == "not_found"


def test_uploads_to_another_storage_origin_are_allowed_by_connect_src(tmp_path: Path) -> None:
    from docingest.api.web import content_security_policy

    settings = Settings(
        data_dir=tmp_path,
        storage_backend="s3",
        storage_url="https://s3.example.com:9000/bucket",
        storage_access_key_id="k",
        storage_secret_access_key="s",
    )
    assert "connect-src 'self' https://s3.example.com:9000;" in content_security_policy(settings)


def test_uploads_to_supabase_storage_are_allowed_on_its_public_origin(tmp_path: Path) -> None:
    """The compose stack: workers reach storage as http://storage:5000, browsers at
    STORAGE_PUBLIC_URL, which is where the signed URLs (and so the page's PUTs) go."""
    from docingest.api.web import content_security_policy

    settings = Settings(
        data_dir=tmp_path,
        storage_backend="supabase",
        storage_url="http://storage:5000/storage/v1",
        storage_public_url="http://localhost:5000/storage/v1",
        jwt_secret="s" * 40,
    )
    assert "connect-src 'self' http://localhost:5000;" in content_security_policy(settings)


def test_ui_is_serve_with_two_worker_slots() -> None:
    import typer.main

    from docingest.cli.main import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    ui, serve = commands["ui"], commands["serve"]
    slots = {p.name: p.default for p in ui.params}
    assert slots["worker_slots"] == 2
    assert {p.name for p in ui.params} == {p.name for p in serve.params}


def test_uploads_to_aws_s3_are_allowed_to_the_buckets_origins(tmp_path: Path) -> None:
    from docingest.api.web import content_security_policy

    settings = Settings(
        data_dir=tmp_path,
        storage_backend="s3",
        storage_bucket="docs",
        storage_region="eu-west-1",
        storage_access_key_id="k",
        storage_secret_access_key="s",
    )
    connect = next(d for d in content_security_policy(settings).split("; ") if d.startswith("connect-src"))
    assert connect.split() == [
        "connect-src",
        "'self'",
        "https://docs.s3.eu-west-1.amazonaws.com",
        "https://docs.s3.amazonaws.com",
    ]
