"""The login providers against the test provider on loopback: OIDC (discovery, code
exchange, ID token checks) and GitHub (OAuth code, user API)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from dpzero.auth import AuthenticationError
from dpzero.auth.providers import GitHubProvider, OidcProvider
from dpzero.auth.testing import LocalOidcProvider, LocalUser
from dpzero.config import GitHubSettings, OidcSettings

REDIRECT = "http://127.0.0.1:9/login"


@pytest.fixture
def provider() -> Iterator[LocalOidcProvider]:
    with LocalOidcProvider(client_id="cid", client_secret="csecret") as p:
        p.next_user = LocalUser("dana", "Dana D", "dana@example.org")
        yield p


def code_from(url: str) -> tuple[str, str]:
    """Follow the provider's authorization page; return the code and state it answers."""
    r = httpx.get(url)
    assert r.status_code == 302
    q = parse_qs(urlsplit(r.headers["location"]).query)
    return q["code"][0], q["state"][0]


def oidc(p: LocalOidcProvider, **changes: object) -> OidcProvider:
    return OidcProvider(
        OidcSettings(issuer=p.issuer, client_id="cid", client_secret="csecret", **changes)  # type: ignore[arg-type]
    )


def test_oidc_login(provider: LocalOidcProvider) -> None:
    login = oidc(provider)
    url = asyncio.run(login.authorization_url(REDIRECT, "st", "nonce-1"))
    assert url.startswith(provider.issuer + "/authorize?") and "scope=openid+profile+email" in url
    code, state = code_from(url)
    assert state == "st"
    who = asyncio.run(login.identify(code, REDIRECT, "nonce-1"))
    assert (who.username, who.name, who.email) == ("dana", "Dana D", "dana@example.org")
    with pytest.raises(AuthenticationError, match="refused"):
        asyncio.run(login.identify(code, REDIRECT, "nonce-1"))  # a code works once


def test_oidc_username_claim(provider: LocalOidcProvider) -> None:
    login = oidc(provider, username_claim="sub")
    code, _ = code_from(asyncio.run(login.authorization_url(REDIRECT, "s", "n")))
    assert asyncio.run(login.identify(code, REDIRECT, "n")).username == "sub-dana"


def test_oidc_rejects_other_logins_and_bad_tokens(provider: LocalOidcProvider) -> None:
    login = oidc(provider)
    code, _ = code_from(asyncio.run(login.authorization_url(REDIRECT, "s", "mine")))
    with pytest.raises(AuthenticationError, match="nonce"):
        asyncio.run(login.identify(code, REDIRECT, "someone-elses"))
    # An ID token that expired before it arrived.
    provider.token_lifetime = -10
    code, _ = code_from(asyncio.run(login.authorization_url(REDIRECT, "s", "n")))
    with pytest.raises(AuthenticationError, match="not valid"):
        asyncio.run(login.identify(code, REDIRECT, "n"))
    provider.token_lifetime = 300
    # A client with the wrong secret gets no token.
    wrong = OidcProvider(OidcSettings(issuer=provider.issuer, client_id="cid", client_secret="x"))  # type: ignore[arg-type]
    code, _ = code_from(asyncio.run(wrong.authorization_url(REDIRECT, "s", "n")))
    with pytest.raises(AuthenticationError):
        asyncio.run(wrong.identify(code, REDIRECT, "n"))


def test_oidc_rejects_a_token_signed_by_another_key(provider: LocalOidcProvider) -> None:
    with LocalOidcProvider(client_id="cid", client_secret="csecret") as impostor:
        # The impostor answers the token request; the keys come from the real issuer.
        login = oidc(provider)
        asyncio.run(login.authorization_url(REDIRECT, "s", "n"))
        login._discovery = {  # type: ignore[attr-defined]
            **login._discovery,  # type: ignore[attr-defined]
            "token_endpoint": impostor.issuer + "/token",
            "issuer": impostor.issuer,
        }
        code, _ = code_from(
            f"{impostor.issuer}/authorize?response_type=code&client_id=cid"
            f"&redirect_uri={REDIRECT}&state=s&nonce=n"
        )
        with pytest.raises(AuthenticationError):
            asyncio.run(login.identify(code, REDIRECT, "n"))


def test_unreachable_provider() -> None:
    login = OidcProvider(
        OidcSettings(issuer="http://127.0.0.1:9", client_id="a", client_secret="b")  # type: ignore[arg-type]
    )
    with pytest.raises(AuthenticationError, match="unreachable"):
        asyncio.run(login.authorization_url(REDIRECT, "s", "n"))


def test_github_login(provider: LocalOidcProvider) -> None:
    settings = GitHubSettings(
        client_id="cid",
        client_secret="csecret",  # type: ignore[arg-type]
        web_url=provider.issuer,
        api_url=provider.issuer,
    )
    login = GitHubProvider(settings)
    url = asyncio.run(login.authorization_url(REDIRECT, "st", "unused"))
    assert url.startswith(provider.issuer + "/login/oauth/authorize?")
    code, state = code_from(url)
    who = asyncio.run(login.identify(code, REDIRECT, "unused"))
    assert (who.username, who.email, state) == ("dana", "dana@example.org", "st")
    with pytest.raises(AuthenticationError, match="GitHub refused"):
        asyncio.run(login.identify(code, REDIRECT, "unused"))


def test_id_tokens_are_rs256_with_a_key_id(provider: LocalOidcProvider) -> None:
    code, _ = code_from(
        f"{provider.issuer}/authorize?response_type=code&client_id=cid"
        f"&redirect_uri={REDIRECT}&state=s&nonce=n"
    )
    r = httpx.post(
        provider.issuer + "/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
              "client_id": "cid", "client_secret": "csecret"},
    )  # fmt: skip
    header = jwt.get_unverified_header(r.json()["id_token"])
    assert header["alg"] == "RS256" and header["kid"]
