"""The gate in front of every service: who calls, may they, and not too often."""

from __future__ import annotations

import base64
import binascii
import time
from http.cookies import SimpleCookie
from urllib.parse import quote

from starlette.types import ASGIApp, Receive, Scope, Send

from dpzero.auth.context import LOCAL_USER, SESSION_COOKIE, AuthContext, Caller
from dpzero.auth.errors import AuthenticationError, RateLimitedError
from dpzero.auth.scopes import ALL_SCOPES, rule_for

__all__ = ["AuthMiddleware"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_REALM = 'Bearer realm="dpzero"'
_OPEN_CALLER = Caller(LOCAL_USER, ALL_SCOPES, "open")


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class AuthMiddleware:
    """ASGI middleware setting ``request.state.user`` and ``request.state.caller``.

    Answers 401 (with ``WWW-Authenticate``) to missing or bad credentials, 403 to a
    missing scope or CSRF header, 429 (with ``Retry-After``) past a rate limit, and
    sends browsers without a session from HTML pages to the login.

    Parameters
    ----------
    app
        The application behind the gate.
    context
        Authentication resources.
    """

    def __init__(self, app: ASGIApp, context: AuthContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = rule_for(scope["path"])
        ctx = self.context
        if not ctx.enabled:
            # Single-user open mode (loopback only): the local user may do anything,
            # unthrottled.
            state = scope.setdefault("state", {})
            state["user"] = LOCAL_USER
            state["caller"] = _OPEN_CALLER
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        caller: Caller | None
        try:
            caller = self._identify(headers)
        except AuthenticationError as exc:
            if not rule.open:
                await self._unauthorized(send, exc.message)
                return
            caller = None
        if caller is not None:
            state = scope.setdefault("state", {})
            state["user"] = caller.username
            state["caller"] = caller
        if rule.open:
            await self.app(scope, receive, send)
            return
        if caller is None:
            if rule.page:
                target = scope["path"] + (
                    "?" + scope["query_string"].decode() if scope.get("query_string") else ""
                )
                await self._send(send, 302, b"", [("location", "/login?rd=" + quote(target))])
            else:
                await self._unauthorized(send, "authentication required")
            return
        if rule.scope is not None and rule.scope not in caller.scopes:
            await self._send(
                send,
                403,
                f"permission denied: this needs the scope {rule.scope}\n".encode(),
                [
                    (
                        "www-authenticate",
                        f'{_REALM}, error="insufficient_scope", scope="{rule.scope}"',
                    )
                ],
            )
            return
        if (
            caller.via == "session"
            and scope["method"] not in _SAFE_METHODS
            and headers.get("x-csrf-token") != caller.csrf
        ):
            await self._send(
                send, 403, b"permission denied: missing or wrong X-CSRF-Token header\n", []
            )
            return
        try:
            ctx.limiter.check(caller.username, rule.service or "", time.monotonic())
        except RateLimitedError as exc:
            await self._send(
                send,
                429,
                (exc.message + "\n").encode(),
                [("retry-after", str(exc.retry_after))],
            )
            return
        await self.app(scope, receive, send)

    def _identify(self, headers: dict[str, str]) -> Caller | None:
        authorization = headers.get("authorization", "")
        if authorization:
            kind, _, credentials = authorization.partition(" ")
            kind = kind.lower()
            credentials = credentials.strip()
            if kind == "bearer" and credentials:
                return self.context.caller_from_token(credentials)
            if kind == "basic":
                # Clients that only speak Basic send the token as user or password.
                try:
                    user, _, password = base64.b64decode(credentials).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    raise AuthenticationError("malformed Basic credentials") from None
                token = password if password.startswith("dpz-") else user
                return self.context.caller_from_token(token)
            raise AuthenticationError("unsupported Authorization header (use Bearer)")
        cookie = headers.get("cookie")
        if cookie:
            jar = SimpleCookie()
            try:
                jar.load(cookie)
            except Exception:  # a malformed Cookie header counts as none
                return None
            if SESSION_COOKIE in jar:
                return self.context.caller_from_cookie(jar[SESSION_COOKIE].value)
        return None

    async def _unauthorized(self, send: Send, message: str) -> None:
        value = _REALM
        if message != "authentication required":
            value += f', error="invalid_token", error_description="{_quoted(message)}"'
        await self._send(
            send, 401, f"authentication failed: {message}\n".encode(), [("www-authenticate", value)]
        )

    @staticmethod
    async def _send(send: Send, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        raw = [(k.encode(), v.encode()) for k, v in headers]
        raw += [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
