"""Per-process resources of authentication, made once by ``install_auth``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from dpzero.auth.errors import AuthenticationError
from dpzero.auth.providers import GitHubProvider, OidcProvider, Provider
from dpzero.auth.ratelimit import RateLimiter
from dpzero.auth.scopes import ADMIN_TOKEN, ALL_SCOPES, USER_SCOPES
from dpzero.auth.sessions import CookieSigner, Session, load_or_create_key
from dpzero.auth.tokens import TokenInfo, TokenStore
from dpzero.config import Settings

__all__ = ["LOCAL_USER", "SESSION_COOKIE", "AuthContext", "Caller"]

SESSION_COOKIE = "dpzero_session"
LOCAL_USER = "anonymous"
"""The single user of open mode (the TAP service's default owner)."""


@dataclass(frozen=True)
class Caller:
    """Who is calling, how, and with which scopes."""

    username: str
    scopes: tuple[str, ...]
    via: str
    """``token``, ``session`` or ``open``."""
    csrf: str | None = None
    token_key: str | None = None


@dataclass(frozen=True)
class AuthContext:
    """Settings, the token store, the cookie signer, the rate limiter, the provider."""

    settings: Settings
    store: TokenStore | None
    signer: CookieSigner
    limiter: RateLimiter
    provider: Provider | None

    @classmethod
    def create(cls, settings: Settings) -> AuthContext:
        """Open what authentication needs (the token database only when auth is on)."""
        auth = settings.auth
        provider: Provider | None = None
        if auth.oidc is not None:
            provider = OidcProvider(auth.oidc)
        elif auth.github is not None:
            provider = GitHubProvider(auth.github)
        if auth.session_secret is not None:
            key = auth.session_secret.get_secret_value().encode()
        else:
            key = load_or_create_key(settings.state_dir / "session.key")
        store = None
        if provider is not None:
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            store = TokenStore(settings.auth_database_url)
        limiter = RateLimiter(auth.rate_limits, auth.user_rate_limits)
        return cls(settings, store, CookieSigner(key), limiter, provider)

    @property
    def enabled(self) -> bool:
        """Whether logins are required (a provider is configured)."""
        return self.provider is not None

    @property
    def cookie_secure(self) -> bool:
        """Whether cookies carry the Secure flag."""
        flag = self.settings.auth.cookie_secure
        return self.settings.public_url.startswith("https://") if flag is None else flag

    def is_admin(self, username: str) -> bool:
        """Whether the user is one of the configured administrators."""
        return username in self.settings.auth.admins

    def session_scopes(self, username: str) -> tuple[str, ...]:
        """Scopes of a user's browser session."""
        return ALL_SCOPES if self.is_admin(username) else USER_SCOPES

    def new_session_cookie(self, username: str, csrf: str) -> str:
        """Signed session cookie for a user who just logged in."""
        session = Session(username, self.session_scopes(username), csrf)
        expires = time.time() + self.settings.auth.session_hours * 3600
        return self.signer.sign("session", session.to_value(), expires)

    def caller_from_cookie(self, cookie: str) -> Caller | None:
        """The session a cookie carries, if it is valid."""
        value = self.signer.unsign("session", cookie, time.time())
        session = Session.from_value(value) if value is not None else None
        if session is None:
            return None
        return Caller(session.username, session.scopes, "session", csrf=session.csrf)

    def caller_from_token(self, token: str) -> Caller:
        """The caller a token stands for.

        Raises
        ------
        AuthenticationError
            If the token is malformed, unknown, expired or revoked.
        """
        if self.store is None:
            raise AuthenticationError("tokens are not in use (authentication is not configured)")
        info: TokenInfo = self.store.verify(token, datetime.now(UTC))
        scopes = info.scopes
        if ADMIN_TOKEN in scopes and not self.is_admin(info.username):
            scopes = tuple(s for s in scopes if s != ADMIN_TOKEN)
        return Caller(info.username, scopes, "token", token_key=info.key)
