"""Errors of authentication and authorization, each with its HTTP status."""

from __future__ import annotations

from dpzero.errors import DpzeroUserError

__all__ = ["AuthenticationError", "PermissionDeniedError", "RateLimitedError", "TokenNotFoundError"]


class AuthenticationError(DpzeroUserError):
    """No credentials, or credentials that are malformed, unknown, expired or revoked."""

    code = "authentication_required"
    status_code = 401


class PermissionDeniedError(DpzeroUserError):
    """Valid credentials without the scope the request needs."""

    code = "permission_denied"
    status_code = 403


class TokenNotFoundError(DpzeroUserError):
    """No such token (or not one of the caller's)."""

    code = "token_not_found"
    status_code = 404


class RateLimitedError(DpzeroUserError):
    """Too many requests to one service within a minute.

    Parameters
    ----------
    message
        What was exceeded.
    retry_after
        Seconds until the next request is accepted.
    """

    code = "rate_limited"
    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
