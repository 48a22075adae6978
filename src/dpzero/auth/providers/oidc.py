"""Login through an OpenID Connect provider: discovery, code flow, signed ID token."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from dpzero.auth.errors import AuthenticationError
from dpzero.auth.providers.base import Identity, Provider
from dpzero.config import OidcSettings

__all__ = ["OidcProvider"]


class OidcProvider(Provider):
    """A generic OIDC provider found from its issuer URL.

    Parameters
    ----------
    settings
        Issuer, client id and secret, scopes, username claim.
    """

    def __init__(self, settings: OidcSettings) -> None:
        self._settings = settings
        self._discovery: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def _config(self, client: httpx.AsyncClient) -> dict[str, Any]:
        async with self._lock:
            if self._discovery is None:
                url = self._settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
                try:
                    r = await client.get(url)
                    r.raise_for_status()
                    self._discovery = r.json()
                except (httpx.HTTPError, ValueError) as exc:
                    raise AuthenticationError(
                        f"the login provider is unreachable ({exc})"
                    ) from None
            return self._discovery  # type: ignore[return-value]

    async def authorization_url(self, redirect_uri: str, state: str, nonce: str) -> str:
        """The provider's authorization endpoint with this login's parameters."""
        async with httpx.AsyncClient(timeout=20) as client:
            config = await self._config(client)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._settings.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self._settings.scopes),
                "state": state,
                "nonce": nonce,
            }
        )
        return f"{config['authorization_endpoint']}?{query}"

    async def identify(self, code: str, redirect_uri: str, nonce: str) -> Identity:
        """Exchange the code, then verify the ID token's signature, issuer, audience,
        expiry and nonce."""
        s = self._settings
        async with httpx.AsyncClient(timeout=20) as client:
            config = await self._config(client)
            r = await client.post(
                config["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "client_id": s.client_id,
                    "client_secret": s.client_secret.get_secret_value(),
                },
                headers={"Accept": "application/json"},
            )
            id_token = r.json().get("id_token") if r.status_code == 200 else None
            if not id_token:
                raise AuthenticationError("the login provider refused the authorization code")
            keys = await client.get(config["jwks_uri"])
        try:
            jwks = jwt.PyJWKSet.from_dict(keys.json())
            kid = jwt.get_unverified_header(id_token).get("kid")
            key = next((k for k in jwks.keys if kid is None or k.key_id == kid), None)
            if key is None:
                raise AuthenticationError("the ID token is signed by an unknown key")
            claims = jwt.decode(
                id_token,
                key=key.key,
                algorithms=["RS256", "ES256", "PS256", "EdDSA"],
                audience=s.client_id,
                issuer=config.get("issuer", s.issuer),
                options={"require": ["exp", "iat", "sub"]},
            )
        except (jwt.PyJWTError, ValueError) as exc:
            raise AuthenticationError(f"the ID token is not valid ({exc})") from None
        if claims.get("nonce") != nonce:
            raise AuthenticationError("the ID token answers another login (nonce mismatch)")
        username = claims.get(s.username_claim) or claims["sub"]
        return Identity(str(username), claims.get("name"), claims.get("email"))
