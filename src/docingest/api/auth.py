"""JWT bearer tokens, Supabase-compatible: HS256 with a shared secret, ``sub`` is the user.

User tokens carry ``aud`` (default ``authenticated``) and ``exp``; ``alg: none``, another
algorithm, a wrong signature, an expired or not-yet-valid token, a missing ``aud``/``exp``
or an unusable ``sub`` are all refused with :class:`~docingest.errors.Unauthorized`.
Service-role keys (what the storage service accepts) carry ``role: service_role``.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import jwt

from docingest.errors import Unauthorized
from docingest.providers.storage.signing import ALGORITHM

#: The user of the CLI's commands by default (``--user local``), and of ``POST /auth/local``.
LOCAL_USER_ID = "local"
# A user id goes into SQL and (sanitised) into storage keys: printable, bounded.
_USER_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")


def mint_token(
    secret: str,
    *,
    user_id: str | None,
    ttl_seconds: int = 3600,
    audience: str = "authenticated",
    role: str = "authenticated",
    extra: dict[str, Any] | None = None,
) -> str:
    """A signed HS256 token for ``user_id`` valid ``ttl_seconds`` from now."""
    now = int(time.time())
    claims: dict[str, Any] = {"aud": audience, "role": role, "iat": now, "exp": now + ttl_seconds}
    if user_id is not None:
        claims["sub"] = user_id
    claims.update(extra or {})
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


#: How a user gets a token, for the messages that refuse one.
_GET_A_TOKEN = "docingest token --user USER"


def verify_user_token(token: str, secret: str, *, audience: str) -> str:
    """The user id (``sub``) of a valid token.

    Raises:
        Unauthorized: as :func:`verify_user_token_expiry`.
    """
    return verify_user_token_expiry(token, secret, audience=audience)[0]


def verify_user_token_expiry(token: str, secret: str, *, audience: str) -> tuple[str, float]:
    """The user id (``sub``) and expiry (``exp``, Unix seconds) of a valid token.

    Raises:
        Unauthorized: for any token that is not a valid, current user token for ``audience``;
            the message says what is wrong in the user's terms (not a JWT, expired and when,
            not signed with this server's secret, a service-role key, another audience) and
            how to get a good one.
    """
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(_token_problem(token, exc, audience=audience)) from exc
    sub = claims.get("sub")
    if not isinstance(sub, str) or not _USER_ID.match(sub) or not sub.isprintable() or _has_surrogate(sub):
        raise Unauthorized("invalid token: 'sub' must be a printable user id of 1-256 characters")
    return sub, float(claims["exp"])


def _token_problem(token: str, exc: jwt.PyJWTError, *, audience: str) -> str:
    """What is wrong with ``token`` (refused by PyJWT with ``exc``), said so a user can act."""
    if isinstance(exc, jwt.DecodeError) and not isinstance(exc, jwt.InvalidSignatureError):
        return f"not a JWT: paste the whole token printed by `{_GET_A_TOKEN}`"
    if isinstance(exc, jwt.InvalidSignatureError):
        return (
            "the token is not signed with this server's UPLOAD_PIPELINE_JWT_SECRET: get one from "
            f"`{_GET_A_TOKEN}` run with this server's settings"
        )
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return f"the token is not signed with {ALGORITHM}: get one from `{_GET_A_TOKEN}`"
    # The signature is good: the claims say what else is wrong.
    claims = jwt.decode(token, options={"verify_signature": False})
    if claims.get("role") == "service_role":
        return (
            f"this is a service-role key for the storage API; the API needs a user's token: `{_GET_A_TOKEN}`"
        )
    if isinstance(exc, jwt.ExpiredSignatureError):
        when = _utc(claims.get("exp"))
        return f"the token expired at {when}: get a new one with `{_GET_A_TOKEN}`"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return f"the token is not valid before {_utc(claims.get('nbf'))}: check this machine's clock"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token has no '{exc.claim}' claim: get a user's token from `{_GET_A_TOKEN}`"
    if isinstance(exc, jwt.InvalidAudienceError):
        return (
            f"the token is for the audience {claims.get('aud')!r}, not {audience!r} "
            f"(UPLOAD_PIPELINE_JWT_AUDIENCE): get one from `{_GET_A_TOKEN}`"
        )
    return f"invalid token: {exc}"


def _utc(timestamp: object) -> str:
    """A token's NumericDate as ISO 8601 UTC (as it was, if it is not a number)."""
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        try:
            return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")
        except (OverflowError, OSError, ValueError):
            pass
    return repr(timestamp)


def verify_service_key(token: str, secret: str) -> None:
    """Accept only a current HS256 token with ``role: service_role``.

    Raises:
        Unauthorized: otherwise.
    """
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp"], "verify_aud": False}
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid service key: {exc}") from exc
    if claims.get("role") != "service_role":
        raise Unauthorized("the storage API needs a service_role key")


def bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header.

    Raises:
        Unauthorized: when the header is missing or not a bearer credential.
    """
    if not header:
        raise Unauthorized("missing Authorization: Bearer <token>")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)
