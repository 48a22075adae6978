"""Login through GitHub's OAuth apps."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx

from dpzero.auth.errors import AuthenticationError
from dpzero.auth.providers.base import Identity, Provider
from dpzero.config import GitHubSettings

__all__ = ["GitHubProvider"]


class GitHubProvider(Provider):
    """GitHub: the login name becomes the username.

    Parameters
    ----------
    settings
        Client id and secret, GitHub's URLs.
    """

    def __init__(self, settings: GitHubSettings) -> None:
        self._settings = settings

    async def authorization_url(self, redirect_uri: str, state: str, nonce: str) -> str:
        """GitHub's authorization page for this app."""
        query = urlencode(
            {
                "client_id": self._settings.client_id,
                "redirect_uri": redirect_uri,
                "scope": "read:user user:email",
                "state": state,
            }
        )
        return f"{self._settings.web_url.rstrip('/')}/login/oauth/authorize?{query}"

    async def identify(self, code: str, redirect_uri: str, nonce: str) -> Identity:
        """Exchange the code for an access token and read the user from GitHub's API."""
        s = self._settings
        async with httpx.AsyncClient(timeout=20) as client:
            r = await client.post(
                f"{s.web_url.rstrip('/')}/login/oauth/access_token",
                data={
                    "client_id": s.client_id,
                    "client_secret": s.client_secret.get_secret_value(),
                    "code": code,
                    "redirect_uri": redirect_uri,
                },
                headers={"Accept": "application/json"},
            )
            token = r.json().get("access_token") if r.status_code == 200 else None
            if not token:
                raise AuthenticationError("GitHub refused the login")
            u = await client.get(
                f"{s.api_url.rstrip('/')}/user",
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        if u.status_code != 200 or not u.json().get("login"):
            raise AuthenticationError("GitHub did not say who logged in")
        data = u.json()
        return Identity(str(data["login"]).lower(), data.get("name"), data.get("email"))
