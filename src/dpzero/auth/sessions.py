"""Signed cookies: the login session and the short-lived state of a login under way."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CookieSigner", "Session", "load_or_create_key"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_key(path: Path) -> bytes:
    """A signing key kept in a file readable by its owner only (made on first use)."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    path.touch(mode=0o600)
    path.write_bytes(key)
    return key


class CookieSigner:
    """HMAC-SHA256 signed JSON values with an expiry, for cookies.

    Parameters
    ----------
    key
        Secret key.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: str, body: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}|{body}".encode(), hashlib.sha256).digest())

    def sign(self, purpose: str, value: dict[str, object], expires: float) -> str:
        """Cookie text holding ``value`` until ``expires`` (Unix time), for one purpose."""
        body = _b64(json.dumps({"v": value, "exp": expires}, separators=(",", ":")).encode())
        return f"{body}.{self._mac(purpose, body)}"

    def unsign(self, purpose: str, text: str, now: float) -> dict[str, object] | None:
        """The value of a cookie, or ``None`` if forged, for another purpose, or expired."""
        body, _, mac = text.partition(".")
        if not mac or not hmac.compare_digest(mac, self._mac(purpose, body)):
            return None
        try:
            data = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(data, dict) or float(data.get("exp", 0)) <= now:
            return None
        value = data.get("v")
        return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class Session:
    """A signed-in browser.

    Attributes
    ----------
    username
        Who.
    scopes
        What the session may do.
    csrf
        Value the portal's scripts send back in ``X-CSRF-Token`` on changing requests.
    """

    username: str
    scopes: tuple[str, ...]
    csrf: str

    def to_value(self) -> dict[str, object]:
        """The cookie's value."""
        return {"u": self.username, "s": list(self.scopes), "c": self.csrf}

    @classmethod
    def from_value(cls, value: dict[str, object]) -> Session | None:
        """A session from a cookie's value (``None`` when malformed)."""
        user, scopes, csrf = value.get("u"), value.get("s"), value.get("c")
        if not isinstance(user, str) or not isinstance(scopes, list) or not isinstance(csrf, str):
            return None
        return cls(user, tuple(str(s) for s in scopes), csrf)
