"""``POST /auth/local``: a token for the local user, in development on loopback only."""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from docingest.api.auth import LOCAL_USER_ID, mint_token
from docingest.api.deps import SettingsDep
from docingest.api.openapi import replies
from docingest.api.schemas import LocalTokenPublic

router = APIRouter(prefix="/auth", tags=["auth"])

#: Lifetime of a local user's token: a working day of the dashboard.
LOCAL_TOKEN_TTL_SECONDS = 8 * 3600

#: Headers a reverse proxy adds: a request carrying one came through a proxy, so its loopback
#: peer address says nothing about where the client is.
_FORWARDED = ("forwarded", "x-forwarded-for", "x-real-ip")


def from_loopback(request: Request) -> bool:
    """True when the request's peer is a loopback address (127.0.0.0/8, ``::1``) and it did
    not come through a proxy (no ``Forwarded``/``X-Forwarded-For``/``X-Real-IP`` header)."""
    if request.client is None or any(h in request.headers for h in _FORWARDED):
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:  # a test client's "testclient", a Unix socket's ""
        return False


@router.post("/local", response_model=LocalTokenPublic, responses=replies("resource"))
def local_token(request: Request, settings: SettingsDep) -> LocalTokenPublic:
    """A bearer token for the user ``local`` (the CLI's default user): the dashboard's one-click
    sign-in on a developer's machine. Only when ``UPLOAD_PIPELINE_ENVIRONMENT=development`` (in
    another environment ``create_app`` does not mount the route at all) and the client is on
    loopback; otherwise 404 ``not_found``, the reply of an unknown path."""
    if settings.environment != "development" or not from_loopback(request):
        raise StarletteHTTPException(status_code=404)
    token = mint_token(
        settings.jwt_secret,
        user_id=LOCAL_USER_ID,
        ttl_seconds=LOCAL_TOKEN_TTL_SECONDS,
        audience=settings.jwt_audience,
    )
    return LocalTokenPublic(access_token=token, user_id=LOCAL_USER_ID, expires_in=LOCAL_TOKEN_TTL_SECONDS)
