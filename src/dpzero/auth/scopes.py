"""Scopes, and which service and scope each URL of the platform needs (pure)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ADMIN_TOKEN",
    "ALL_SCOPES",
    "EXEC_NOTEBOOK",
    "READ_IMAGE",
    "READ_TAP",
    "USER_SCOPES",
    "Rule",
    "rule_for",
]

READ_TAP = "read:tap"
READ_IMAGE = "read:image"
EXEC_NOTEBOOK = "exec:notebook"
ADMIN_TOKEN = "admin:token"
USER_SCOPES = (READ_TAP, READ_IMAGE, EXEC_NOTEBOOK)
"""What every signed-in user may do (DP0: everyone may read everything)."""
ALL_SCOPES = (*USER_SCOPES, ADMIN_TOKEN)


@dataclass(frozen=True)
class Rule:
    """What a request to a path needs.

    Attributes
    ----------
    service
        Name the rate limits are counted under, or ``None`` for an open path.
    scope
        Scope the caller must hold (``None``: any authenticated caller).
    page
        Whether a browser without a session is sent to the login page (HTML pages)
        rather than answered 401 (APIs).
    """

    service: str | None
    scope: str | None = None
    page: bool = False

    @property
    def open(self) -> bool:
        """Whether anyone may call the path without credentials."""
        return self.service is None


_OPEN = Rule(None)
# First matching prefix wins; a prefix matches itself and anything below "prefix/".
_RULES: tuple[tuple[str, Rule], ...] = (
    ("/api/tap/availability", _OPEN),
    ("/api/docs", _OPEN),
    ("/api/tap", Rule("tap", READ_TAP)),
    ("/api/datalink", Rule("image", READ_IMAGE)),
    ("/api/cutout", Rule("image", READ_IMAGE)),
    ("/api/notebook", Rule("notebook", EXEC_NOTEBOOK)),
    ("/api", Rule("api")),
    ("/auth/api/admin", Rule("auth", ADMIN_TOKEN)),
    ("/auth/api", Rule("auth")),
    ("/auth/tokens", Rule("auth", page=True)),
    ("/portal/static", _OPEN),
    ("/portal", Rule("tap", READ_TAP, page=True)),
)


def rule_for(path: str) -> Rule:
    """The rule of a request path (paths outside the services are open).

    Parameters
    ----------
    path
        URL path, e.g. ``/api/tap/sync``.

    Returns
    -------
    Rule
        What the request needs.
    """
    for prefix, rule in _RULES:
        if path == prefix or path.startswith(prefix + "/"):
            return rule
    return _OPEN
