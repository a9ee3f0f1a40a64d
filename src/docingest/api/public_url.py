"""Signed URLs that work off the box: their base URL taken from the host the client called.

``docingest serve --host 0.0.0.0`` (any non-loopback address) without
``UPLOAD_PIPELINE_PUBLIC_URL`` cannot know the name clients reach it by, so each request's
signed URLs use ``{scheme}://{Host header}``; behind a proxy, ``X-Forwarded-Proto`` and
``X-Forwarded-Host`` replace them only when ``UPLOAD_PIPELINE_TRUST_FORWARDED`` is true
(a client could send them to any server). ``PUBLIC_URL``, when set, always wins.

On a loopback address without ``PUBLIC_URL`` the page may be opened as ``localhost``,
``127.0.0.1`` or ``[::1]``: a request whose ``Host`` is a loopback name with the server's own
port gets signed URLs on that origin (the browser's PUT is then same-origin); any other ``Host``
keeps ``API_HOST:API_PORT`` (a forged ``Host`` cannot point signed URLs elsewhere).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from docingest.providers.storage.local import REQUEST_BASE_URL
from docingest.settings import Settings

_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``); False for
    ``0.0.0.0``, ``::``, other addresses and names (which other machines may reach)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def uses_request_host(settings: Settings) -> bool:
    """True when signed URLs follow each request's host: no PUBLIC_URL and a non-loopback API_HOST."""
    return not settings.public_url and not is_loopback(settings.api_host)


def follows_loopback_host(settings: Settings) -> bool:
    """True when signed URLs follow a loopback ``Host`` of the server's port: no PUBLIC_URL and
    a loopback API_HOST (``localhost`` and ``127.0.0.1`` name the same server)."""
    return not settings.public_url and is_loopback(settings.api_host)


def loopback_base_url(scope: dict[str, Any]) -> str | None:
    """``http://host:port`` of an ASGI HTTP ``scope`` whose ``Host`` is a loopback name
    (``localhost``, ``127.x.y.z``, ``[::1]``) with the port the server listens on
    (``scope["server"]``); None for any other ``Host`` (forwarded headers never count)."""
    base = request_base_url(scope, trust_forwarded=False)
    server = scope.get("server")
    if base is None or not server or server[1] is None:
        return None
    parts = urlsplit(base)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port above 65535
        return None
    if not parts.hostname or not is_loopback(parts.hostname) or port != int(server[1]):
        return None
    return base


def _first(value: str | None) -> str | None:
    """The first of a comma-separated header's values (a proxy chain appends), stripped."""
    if not value:
        return None
    return value.split(",", 1)[0].strip() or None


def request_base_url(scope: dict[str, Any], *, trust_forwarded: bool) -> str | None:
    """``scheme://host[:port]`` of an ASGI HTTP ``scope``; None without a valid ``Host``.

    ``X-Forwarded-Proto`` (``http``/``https``) and ``X-Forwarded-Host`` count only with
    ``trust_forwarded``; a malformed host (spaces, a path, user info) gives None.
    """
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    scheme = str(scope.get("scheme") or "http")
    host = _first(headers.get("host"))
    if trust_forwarded:
        proto = (_first(headers.get("x-forwarded-proto")) or "").lower()
        if proto in ("http", "https"):
            scheme = proto
        host = _first(headers.get("x-forwarded-host")) or host
    if scheme not in ("http", "https") or not host or not _HOST.match(host):
        return None
    return f"{scheme}://{host}"


class RequestHostBaseUrl:
    """ASGI middleware: during each HTTP request, signed URLs of the local storage use
    :func:`request_base_url` (through ``storage.local.REQUEST_BASE_URL``).

    Args:
        app: the wrapped ASGI application.
        trust_forwarded: honour ``X-Forwarded-Host``/``-Proto`` (only behind a proxy that sets them).
        loopback_only: use the request's host only when :func:`loopback_base_url` accepts it
            (a server on a loopback address); other requests keep the storage's ``base_url``.
    """

    def __init__(self, app: Any, *, trust_forwarded: bool, loopback_only: bool = False) -> None:
        self.app = app
        self.trust_forwarded = trust_forwarded
        self.loopback_only = loopback_only

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.loopback_only:
            base = loopback_base_url(scope)
        else:
            base = request_base_url(scope, trust_forwarded=self.trust_forwarded)
        token = REQUEST_BASE_URL.set(base)
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_BASE_URL.reset(token)


def exposure_warnings(settings: Settings) -> list[str]:
    """One line per risk of serving on ``settings.api_host`` when it is not loopback: the
    development JWT secret (anyone could mint tokens) and the unauthenticated ``/metrics``.
    Empty on a loopback address."""
    from docingest.settings import DEFAULT_JWT_SECRET

    host = settings.api_host
    if is_loopback(host):
        return []
    found = []
    if settings.jwt_secret == DEFAULT_JWT_SECRET:
        found.append(
            f"listening on {host} (reachable from other machines) with the development JWT "
            "secret: anyone can mint tokens for any user; set UPLOAD_PIPELINE_JWT_SECRET to a "
            "random secret of 32+ characters"
        )
    found.append(
        f"/metrics on {host} needs no token: anyone who can reach this port reads job counts "
        "and timings; firewall it or serve the API behind a proxy that blocks /metrics"
    )
    return found
