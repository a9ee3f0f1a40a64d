"""Signed storage URLs of the local storage service: Supabase Storage's token format.

A token is an HS256 JWT (as Supabase Storage's) with ``url`` = ``bucket/key``, ``exp``,
``typ`` (``upload`` or ``download``), a random ``jti`` and, for uploads, the declared
``len`` and ``sha256`` when the caller knows them plus ``max`` (the size limit). The key is
derived from the JWT secret with a domain label, so a storage token is never an API token.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import jwt

from docingest.errors import SignedUrlError

#: Supabase Storage's keys and tokens: HS256 with the project's JWT secret.
ALGORITHM = "HS256"


def mint_service_key(secret: str, *, ttl_seconds: int = 10 * 365 * 24 * 3600) -> str:
    """A Supabase-style service-role key (an HS256 JWT with ``role: service_role``, no user)
    that a storage service sharing ``secret`` accepts: ours, or Supabase's ``storage-api``
    given the same ``AUTH_JWT_SECRET``. ``ttl_seconds``: its lifetime (10 years by default)."""
    now = int(time.time())
    return jwt.encode(
        {"iss": "docingest", "role": "service_role", "iat": now, "exp": now + ttl_seconds},
        secret,
        algorithm=ALGORITHM,
    )


class UrlSigner:
    """Signs and verifies storage tokens with a key derived from ``secret``."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"docingest-storage-url\x00" + secret.encode()).hexdigest()

    def sign(self, url: str, *, typ: str, expires_in: float, **claims: Any) -> tuple[str, float]:
        """``(token, expires_at)`` for ``url`` (``bucket/key``); ``None`` claims are left out."""
        now = time.time()
        exp = now + expires_in
        body = {
            "url": url,
            "typ": typ,
            "iat": int(now),
            "exp": int(exp) + 1,
            "jti": secrets.token_urlsafe(12),
        }
        body.update({k: v for k, v in claims.items() if v is not None})
        return jwt.encode(body, self._key, algorithm=ALGORITHM), exp

    def verify(self, token: str, *, url: str, typ: str) -> dict[str, Any]:
        """The claims of a valid token for ``url`` and ``typ``.

        Raises:
            SignedUrlError: with the reason (403 ``invalid_token`` from the storage service).
        """
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._key, algorithms=[ALGORITHM], options={"require": ["exp", "url", "typ"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise SignedUrlError("the signed URL has expired") from exc
        except jwt.PyJWTError as exc:
            raise SignedUrlError(f"invalid signature: {exc}") from exc
        if claims["url"] != url or claims["typ"] != typ:
            raise SignedUrlError("the signed URL is for another object or operation")
        return claims
