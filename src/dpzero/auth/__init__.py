"""Authentication and authorization: logins (GitHub, OIDC), sessions, scoped tokens,
rate limits.

``install_auth(app, settings)`` puts the gate (`AuthMiddleware`) in front of every
service and mounts ``/login``, ``/logout`` and ``/auth``. Without a login provider
configured the platform runs in single-user open mode (loopback only, see
``dpzero.app.check_bind``).
"""

from __future__ import annotations

from fastapi import FastAPI

from dpzero.auth.context import LOCAL_USER, AuthContext, Caller
from dpzero.auth.errors import (
    AuthenticationError,
    PermissionDeniedError,
    RateLimitedError,
    TokenNotFoundError,
)
from dpzero.auth.handlers import auth_router, get_caller, get_user
from dpzero.auth.middleware import AuthMiddleware
from dpzero.auth.scopes import ADMIN_TOKEN, ALL_SCOPES, EXEC_NOTEBOOK, READ_IMAGE, READ_TAP
from dpzero.auth.tokens import TokenInfo, TokenStore
from dpzero.config import Settings

__all__ = [
    "ADMIN_TOKEN",
    "ALL_SCOPES",
    "EXEC_NOTEBOOK",
    "LOCAL_USER",
    "READ_IMAGE",
    "READ_TAP",
    "AuthContext",
    "AuthMiddleware",
    "AuthenticationError",
    "Caller",
    "PermissionDeniedError",
    "RateLimitedError",
    "TokenInfo",
    "TokenNotFoundError",
    "TokenStore",
    "get_caller",
    "get_user",
    "install_auth",
]


def install_auth(app: FastAPI, settings: Settings) -> AuthContext:
    """Put authentication in front of an application and mount its routes.

    Parameters
    ----------
    app
        The platform's application.
    settings
        Its settings (``settings.auth``).

    Returns
    -------
    AuthContext
        The resources made (also at ``app.state.auth``).
    """
    context = AuthContext.create(settings)
    app.state.auth = context
    app.include_router(auth_router())
    app.add_middleware(AuthMiddleware, context=context)
    return context
