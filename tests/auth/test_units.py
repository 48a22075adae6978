"""Pure parts of authentication: path rules, signed cookies, rate limits, binding."""

from __future__ import annotations

import pytest

from dpzero.app import check_bind
from dpzero.auth import RateLimitedError
from dpzero.auth.ratelimit import RateLimiter
from dpzero.auth.scopes import rule_for
from dpzero.auth.sessions import CookieSigner
from dpzero.config import Settings
from dpzero.errors import InvalidInputError


@pytest.mark.parametrize(
    ("path", "service", "scope", "page"),
    [
        ("/api/tap/availability", None, None, False),
        ("/api/tap/sync", "tap", "read:tap", False),
        ("/api/tap", "tap", "read:tap", False),
        ("/api/tap/async/abc/error", "tap", "read:tap", False),
        ("/api/tapx", "api", None, False),
        ("/api/datalink/links", "image", "read:image", False),
        ("/api/cutout/sync", "image", "read:image", False),
        ("/auth/api/tokens", "auth", None, False),
        ("/auth/api/admin/tokens", "auth", "admin:token", False),
        ("/auth/tokens", "auth", None, True),
        ("/portal/", "tap", "read:tap", True),
        ("/portal/static/portal.js", None, None, False),
        ("/login", None, None, False),
        ("/", None, None, False),
    ],
)
def test_rules(path: str, service: str | None, scope: str | None, page: bool) -> None:
    rule = rule_for(path)
    assert (rule.service, rule.scope, rule.page) == (service, scope, page)


def test_signed_cookies() -> None:
    signer = CookieSigner(b"k" * 32)
    text = signer.sign("session", {"u": "alice"}, expires=1000.0)
    assert signer.unsign("session", text, now=999.0) == {"u": "alice"}
    assert signer.unsign("session", text, now=1000.0) is None  # expired
    assert signer.unsign("login", text, now=0.0) is None  # other purpose
    assert CookieSigner(b"x" * 32).unsign("session", text, now=0.0) is None  # other key
    _body, mac = text.split(".")
    forged = signer.sign("session", {"u": "root"}, 1000.0).split(".")[0]
    assert signer.unsign("session", f"{forged}.{mac}", now=0.0) is None
    assert signer.unsign("session", "garbage", now=0.0) is None


def test_rate_limiter_counts_per_user_and_service() -> None:
    limiter = RateLimiter({"tap": 3}, {"vip": {"tap": 6}})
    for _ in range(3):
        limiter.check("alice", "tap", now=0.0)
    with pytest.raises(RateLimitedError) as caught:
        limiter.check("alice", "tap", now=0.1)
    assert caught.value.retry_after == 20  # one request per 20 s refills
    limiter.check("bob", "tap", now=0.1)  # others unaffected
    limiter.check("alice", "image", now=0.1)  # unlimited service
    for _ in range(6):
        limiter.check("vip", "tap", now=0.0)
    limiter.check("alice", "tap", now=21.0)  # refilled


def test_bind_beyond_loopback_needs_auth() -> None:
    check_bind(Settings(host="127.0.0.1"))
    with pytest.raises(InvalidInputError, match="refusing"):
        check_bind(Settings(host="0.0.0.0"))
    configured = Settings(
        host="0.0.0.0",
        auth={"oidc": {"issuer": "https://id.example.org", "client_id": "a", "client_secret": "b"}},
    )
    check_bind(configured)
