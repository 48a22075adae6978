"""Login providers: GitHub (OAuth) and any OpenID Connect provider."""

from dpzero.auth.providers.base import Identity, Provider
from dpzero.auth.providers.github import GitHubProvider
from dpzero.auth.providers.oidc import OidcProvider

__all__ = ["GitHubProvider", "Identity", "OidcProvider", "Provider"]
