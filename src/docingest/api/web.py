"""The dashboard: ``GET /`` (``web/index.html`` with the server's meta tags) and
``GET /static/<file>`` (the package's ``web/`` files), every reply with a strict
Content-Security-Policy and the other security headers.

The files are package data (``src/docingest/web/``, no build step): read once when the app is
built, served from memory with an ``ETag`` and ``Cache-Control: no-cache`` (the browser
revalidates, so an upgrade is seen on the next load). The page talks to the API under
``/api/v2`` with the bearer token it keeps in ``sessionStorage``; no cookie is involved.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response

from docingest.errors import NotFound
from docingest.settings import Settings

#: The media type of each kind of file the dashboard ships (others are not served).
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class Asset:
    """One file served under ``/static/``: its bytes, media type and entity tag."""

    body: bytes
    media_type: str
    etag: str


def _origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of ``url``, or None for a relative or missing one."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def content_security_policy(settings: Settings) -> str:
    """The dashboard's CSP: only its own scripts, styles and images; ``fetch``/XHR to itself
    and to the origin signed upload URLs point at when it is another one (S3, Supabase's
    ``STORAGE_PUBLIC_URL`` else ``STORAGE_URL``, or a
    ``PUBLIC_URL``/``API_HOST`` a page loaded by another name of this host would not match;
    S3 on AWS, without ``STORAGE_URL``: the bucket's virtual-hosted origins)."""
    connect = ["'self'"]
    if settings.storage_backend == "local":
        origins = [_origin(settings.api_base_url())]
    elif settings.storage_backend == "supabase" and settings.storage_public_url:
        origins = [_origin(settings.storage_public_url)]
    elif settings.storage_url:
        origins = [_origin(settings.storage_url)]
    else:  # S3 on AWS: boto3's virtual-hosted URLs, regional or global
        bucket, region = settings.storage_bucket, settings.storage_region
        origins = [f"https://{bucket}.s3.{region}.amazonaws.com", f"https://{bucket}.s3.amazonaws.com"]
    connect += [o for o in origins if o and o not in connect]
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src " + " ".join(connect),
            "font-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(settings: Settings) -> dict[str, str]:
    """The headers of every dashboard reply."""
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


def load_assets() -> dict[str, Asset]:
    """Every file of the package's ``web/`` folder with a known type, by name."""
    folder = resources.files("docingest") / "web"
    found: dict[str, Asset] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        media_type = MEDIA_TYPES.get(suffix)
        if media_type is None or not entry.is_file():
            continue
        body = entry.read_bytes()
        found[entry.name] = Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return found


def render_index(template: str, settings: Settings, api_prefix: str) -> str:
    """``index.html`` with its ``{{environment}}`` and ``{{api}}`` placeholders filled in."""
    return template.replace("{{environment}}", html.escape(settings.environment)).replace(
        "{{api}}", html.escape(api_prefix)
    )


def install(app: FastAPI, settings: Settings, *, api_prefix: str = "/api/v2") -> None:
    """Add ``GET /`` and ``GET /static/{name}`` to ``app`` (outside the OpenAPI document).

    Raises:
        FileNotFoundError: the package was installed without its ``web/index.html``.
    """
    assets = load_assets()
    index = assets.pop("index.html", None)
    if index is None:
        raise FileNotFoundError("docingest/web/index.html is missing from the installed package")
    page = render_index(index.body.decode(), settings, api_prefix).encode()
    page_etag = '"' + hashlib.sha256(page).hexdigest()[:32] + '"'
    headers = security_headers(settings)

    def reply(request: Request, body: bytes, media_type: str, etag: str) -> Response:
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={**headers, "ETag": etag})
        return Response(body, media_type=media_type, headers={**headers, "ETag": etag})

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def dashboard(request: Request) -> Response:
        """The dashboard's page."""
        return reply(request, page, MEDIA_TYPES[".html"], page_etag)

    @app.api_route("/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    def dashboard_asset(name: str, request: Request) -> Response:
        """One of the dashboard's files."""
        asset = assets.get(name)
        if asset is None:
            raise NotFound(f"no dashboard file {name!r}")
        return reply(request, asset.body, asset.media_type, asset.etag)
