"""Login, logout, the token page and the token and admin APIs (``/login``, ``/auth``)."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from dpzero.auth.context import SESSION_COOKIE, AuthContext, Caller
from dpzero.auth.errors import AuthenticationError, PermissionDeniedError
from dpzero.auth.providers import Identity
from dpzero.auth.scopes import ALL_SCOPES
from dpzero.auth.tokens import TokenStore
from dpzero.errors import InvalidInputError

__all__ = ["auth_router", "get_auth_context", "get_caller"]

_LOGIN_COOKIE = "dpzero_login"
_LOGIN_SECONDS = 600


def get_auth_context(request: Request) -> AuthContext:
    """Authentication resources of the application."""
    return request.app.state.auth


def get_caller(request: Request) -> Caller:
    """The caller the gate identified (open mode: the local user)."""
    caller = getattr(request.state, "caller", None)
    if caller is None:
        raise AuthenticationError("authentication required")
    return caller


def get_user(request: Request) -> str:
    """The caller's user name: set by the gate, else the single local user."""
    return getattr(request.state, "user", None) or "anonymous"


Context = Annotated[AuthContext, Depends(get_auth_context)]
CallerDep = Annotated[Caller, Depends(get_caller)]


class NewToken(BaseModel):
    """A token to create."""

    name: str = Field(min_length=1, max_length=200)
    scopes: list[str]
    expires_days: float | None = Field(default=None, gt=0, le=3650)


def _store(ctx: AuthContext) -> TokenStore:
    if ctx.store is None:
        raise InvalidInputError(
            "tokens are not in use: authentication is not configured (single-user mode)"
        )
    return ctx.store


def _local_target(rd: str | None) -> str:
    # Only paths on this site: never an open redirect.
    if not rd or not rd.startswith("/") or rd.startswith("//") or "\\" in rd:
        return "/portal"
    return rd


def auth_router() -> APIRouter:
    """Routes of login and tokens."""
    router = APIRouter()

    @router.get("/login")
    async def login(request: Request, ctx: Context) -> RedirectResponse:
        q = request.query_params
        if ctx.provider is None:
            return RedirectResponse(_local_target(q.get("rd")), status_code=302)
        redirect_uri = ctx.settings.public_url + "/login"
        if "error" in q:
            raise AuthenticationError(f"the login provider refused: {q['error']}")
        if "code" in q:
            raw = request.cookies.get(_LOGIN_COOKIE, "")
            pending = ctx.signer.unsign("login", raw, time.time())
            if pending is None or not secrets.compare_digest(
                str(pending.get("state")), q.get("state", "")
            ):
                raise AuthenticationError("login expired or not started here; log in again")
            identity: Identity = await ctx.provider.identify(
                q["code"], redirect_uri, str(pending["nonce"])
            )
            assert ctx.store is not None
            await run_in_threadpool(
                ctx.store.record_login,
                identity.username,
                identity.name,
                identity.email,
                datetime.now(UTC),
            )
            response = RedirectResponse(_local_target(str(pending.get("rd"))), status_code=302)
            response.set_cookie(
                SESSION_COOKIE,
                ctx.new_session_cookie(identity.username, secrets.token_urlsafe(16)),
                max_age=int(ctx.settings.auth.session_hours * 3600),
                httponly=True,
                secure=ctx.cookie_secure,
                samesite="lax",
                path="/",
            )
            response.delete_cookie(_LOGIN_COOKIE, path="/login")
            return response
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        pending_value: dict[str, object] = {"state": state, "nonce": nonce, "rd": q.get("rd")}
        url = await ctx.provider.authorization_url(redirect_uri, state, nonce)
        response = RedirectResponse(url, status_code=302)
        response.set_cookie(
            _LOGIN_COOKIE,
            ctx.signer.sign("login", pending_value, time.time() + _LOGIN_SECONDS),
            max_age=_LOGIN_SECONDS,
            httponly=True,
            secure=ctx.cookie_secure,
            samesite="lax",
            path="/login",
        )
        return response

    @router.get("/logout")
    async def logout(ctx: Context) -> RedirectResponse:
        response = RedirectResponse("/", status_code=302)
        response.delete_cookie(SESSION_COOKIE, path="/", secure=ctx.cookie_secure, httponly=True)
        return response

    @router.get("/auth/api/user")
    async def whoami(ctx: Context, caller: CallerDep) -> JSONResponse:
        return JSONResponse(
            {
                "username": caller.username,
                "scopes": list(caller.scopes),
                "via": caller.via,
                "csrf": caller.csrf,
                "auth_enabled": ctx.enabled,
                "admin": ctx.enabled and ctx.is_admin(caller.username),
            }
        )

    @router.get("/auth/api/tokens")
    async def list_tokens(ctx: Context, caller: CallerDep) -> JSONResponse:
        tokens = await run_in_threadpool(_store(ctx).list, caller.username)
        now = datetime.now(UTC)
        return JSONResponse([t.to_json(now) for t in tokens])

    @router.post("/auth/api/tokens", status_code=201)
    async def create_token(body: NewToken, ctx: Context, caller: CallerDep) -> JSONResponse:
        store = _store(ctx)
        if caller.via != "session":
            raise PermissionDeniedError("tokens are created from a logged-in browser session")
        beyond = sorted(set(body.scopes) - set(caller.scopes) & set(ALL_SCOPES))
        if beyond:
            raise PermissionDeniedError(f"you may not grant {', '.join(beyond)}")
        now = datetime.now(UTC)
        expires = now + timedelta(days=body.expires_days) if body.expires_days else None
        token, info = await run_in_threadpool(
            store.create, caller.username, body.name, tuple(body.scopes), expires, now
        )
        return JSONResponse({"token": token, **info.to_json(now)}, status_code=201)

    @router.delete("/auth/api/tokens/{key}")
    async def revoke_token(key: str, ctx: Context, caller: CallerDep) -> JSONResponse:
        now = datetime.now(UTC)
        info = await run_in_threadpool(
            _store(ctx).revoke, key, caller.username, now, caller.username
        )
        return JSONResponse(info.to_json(now))

    @router.get("/auth/api/admin/users")
    async def admin_users(ctx: Context) -> JSONResponse:
        users = await run_in_threadpool(_store(ctx).users)
        return JSONResponse(
            [
                {
                    "username": u.username,
                    "name": u.name,
                    "email": u.email,
                    "first_login": u.first_login.isoformat(),
                    "last_login": u.last_login.isoformat(),
                    "admin": ctx.is_admin(u.username),
                }
                for u in users
            ]
        )

    @router.get("/auth/api/admin/tokens")
    async def admin_tokens(request: Request, ctx: Context) -> JSONResponse:
        username = request.query_params.get("username")
        tokens = await run_in_threadpool(_store(ctx).list, username)
        now = datetime.now(UTC)
        return JSONResponse([t.to_json(now) for t in tokens])

    @router.delete("/auth/api/admin/tokens/{key}")
    async def admin_revoke(key: str, ctx: Context, caller: CallerDep) -> JSONResponse:
        now = datetime.now(UTC)
        info = await run_in_threadpool(_store(ctx).revoke, key, caller.username, now)
        return JSONResponse(info.to_json(now))

    @router.get("/auth/tokens", response_class=HTMLResponse)
    async def token_page(ctx: Context, caller: CallerDep) -> HTMLResponse:
        page = resources.files("dpzero.auth").joinpath("templates/tokens.html").read_text()
        return HTMLResponse(page.replace("{{username}}", caller.username))

    return router
