"""A refused bearer token says what is wrong in the user's terms and how to get a good one
(not PyJWT's wording); the error code stays ``invalid_token``."""

from __future__ import annotations

import time

import jwt
import pytest

from docingest.api.auth import mint_token, verify_user_token
from docingest.errors import Unauthorized
from docingest.providers.storage.signing import mint_service_key

SECRET = "s" * 40
AUD = "authenticated"


def _refusal(token: str) -> str:
    with pytest.raises(Unauthorized) as caught:
        verify_user_token(token, SECRET, audience=AUD)
    assert caught.value.error_code == "invalid_token"
    return caught.value.message


@pytest.mark.parametrize("token", ["garbage", "a.b", "a.b.c", ""])
def test_a_token_that_is_not_a_jwt_says_to_paste_the_whole_token(token: str) -> None:
    assert _refusal(token) == "not a JWT: paste the whole token printed by `docingest token --user USER`"


def test_an_expired_token_says_when_it_expired_and_how_to_get_a_new_one() -> None:
    exp = int(time.time()) - 120
    token = mint_token(SECRET, user_id="u", extra={"exp": exp})
    when = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(exp))
    assert _refusal(token) == (
        f"the token expired at {when}: get a new one with `docingest token --user USER`"
    )


def test_a_token_signed_with_another_secret_names_the_setting() -> None:
    message = _refusal(mint_token("t" * 40, user_id="u"))
    assert message.startswith("the token is not signed with this server's UPLOAD_PIPELINE_JWT_SECRET")


def test_a_service_role_key_says_the_api_needs_a_users_token() -> None:
    assert _refusal(mint_service_key(SECRET)) == (
        "this is a service-role key for the storage API; the API needs a user's token: "
        "`docingest token --user USER`"
    )


def test_another_audience_names_both_and_the_setting() -> None:
    message = _refusal(mint_token(SECRET, user_id="u", audience="anon"))
    assert "'anon', not 'authenticated'" in message and "UPLOAD_PIPELINE_JWT_AUDIENCE" in message


def test_a_token_without_sub_names_the_claim() -> None:
    assert _refusal(mint_token(SECRET, user_id=None)).startswith("the token has no 'sub' claim")


def test_alg_none_is_refused_as_not_hs256() -> None:
    unsigned = jwt.encode({"sub": "u", "aud": AUD, "exp": int(time.time()) + 60}, None, algorithm="none")
    assert _refusal(unsigned).startswith("the token is not signed with HS256")


def test_a_good_token_gives_its_user() -> None:
    assert verify_user_token(mint_token(SECRET, user_id="u"), SECRET, audience=AUD) == "u"


@pytest.mark.parametrize("user", ["a\nb", " ", "u" * 257])
def test_docingest_token_refuses_a_user_id_the_api_would_refuse_or_the_cli_calls_blank(
    user: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``docingest token --user`` takes the user ids ``ingest``/``search`` take: a token it
    printed for another id would be refused by the API (401) or name no CLI user."""
    from typer.testing import CliRunner

    from docingest.cli.main import app

    monkeypatch.setenv("UPLOAD_PIPELINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("UPLOAD_PIPELINE_ENVIRONMENT", "test")
    result = CliRunner().invoke(app, ["token", "--user", user])
    assert result.exit_code == 2
    shown = " ".join(result.output.replace("│", " ").split())  # typer's error box wraps lines
    assert "a user id is 1-256 printable characters, not blank" in shown
    assert "eyJ" not in result.output
