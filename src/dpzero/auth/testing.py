"""A small OpenID Connect (and GitHub OAuth) provider on loopback, for tests and demos.

It serves discovery, an authorization endpoint that logs in ``next_user`` at once
(no form), a token endpoint answering RS256-signed ID tokens, and the JWKS; the same
server answers GitHub's ``/login/oauth/*`` and ``/user`` so the GitHub login runs
against it too. Only loopback addresses are served.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["LocalOidcProvider", "LocalUser"]


@dataclass(frozen=True)
class LocalUser:
    """Who the provider logs in."""

    username: str
    name: str = "A. Tester"
    email: str = "tester@example.org"


@dataclass
class _Grant:
    user: LocalUser
    client_id: str
    redirect_uri: str
    nonce: str | None
    created: float = field(default_factory=time.time)


class LocalOidcProvider:
    """The provider; use as a context manager or call `start` and `stop`.

    Parameters
    ----------
    client_id, client_secret
        The one client it knows.
    """

    def __init__(self, client_id: str = "dpzero", client_secret: str = "s3cret") -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.next_user = LocalUser("alice")
        self.refuse_next = False
        self.token_lifetime = 300
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = secrets.token_hex(4)
        self._grants: dict[str, _Grant] = {}
        self._access: dict[str, LocalUser] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def issuer(self) -> str:
        """The issuer URL (server must be started)."""
        assert self._server is not None, "provider not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalOidcProvider:
        """Listen on a free loopback port in a background thread."""
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                provider._get(self)

            def do_POST(self) -> None:
                provider._post(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalOidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # HTTP

    @staticmethod
    def _answer(
        h: BaseHTTPRequestHandler, status: int, body: object, headers: dict[str, str]
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.send_response(status)
        for k, v in {"Content-Type": "application/json", **headers}.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/.well-known/openid-configuration":
            self._answer(h, 200, self._discovery(), {})
        elif url.path == "/jwks":
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
            self._answer(
                h, 200, {"keys": [{**jwk, "kid": self._kid, "use": "sig", "alg": "RS256"}]}, {}
            )
        elif url.path in ("/authorize", "/login/oauth/authorize"):
            self._authorize(h, q, oidc=url.path == "/authorize")
        elif url.path == "/user":
            token = h.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            with self._lock:
                user = self._access.get(token)
            if user is None:
                self._answer(h, 401, {"message": "Bad credentials"}, {})
            else:
                self._answer(
                    h, 200, {"login": user.username, "name": user.name, "email": user.email}, {}
                )
        else:
            self._answer(h, 404, {"error": "not_found"}, {})

    def _post(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        form = {k: v[-1] for k, v in parse_qs(h.rfile.read(length).decode()).items()}
        if url.path in ("/token", "/login/oauth/access_token"):
            self._token(h, form, oidc=url.path == "/token")
        else:
            self._answer(h, 404, {"error": "not_found"}, {})

    def _discovery(self) -> dict[str, object]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def _authorize(self, h: BaseHTTPRequestHandler, q: dict[str, str], oidc: bool) -> None:
        redirect = q.get("redirect_uri", "")
        if q.get("client_id") != self.client_id or not redirect.startswith("http://127.0.0.1"):
            self._answer(h, 400, {"error": "invalid_client"}, {})
            return
        if oidc and q.get("response_type") != "code":
            self._answer(h, 400, {"error": "unsupported_response_type"}, {})
            return
        if self.refuse_next:
            self.refuse_next = False
            answer = {"error": "access_denied", "state": q.get("state", "")}
        else:
            code = secrets.token_urlsafe(16)
            with self._lock:
                self._grants[code] = _Grant(
                    self.next_user, self.client_id, redirect, q.get("nonce")
                )
            answer = {"code": code, "state": q.get("state", "")}
        sep = "&" if "?" in redirect else "?"
        self._answer(h, 302, b"", {"Location": redirect + sep + urlencode(answer)})

    def _token(self, h: BaseHTTPRequestHandler, form: dict[str, str], oidc: bool) -> None:
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)
        if (
            grant is None
            or time.time() - grant.created > 60
            or form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
            or form.get("redirect_uri") != grant.redirect_uri
        ):
            self._answer(h, 400, {"error": "invalid_grant"}, {})
            return
        access = secrets.token_urlsafe(16)
        with self._lock:
            self._access[access] = grant.user
        body: dict[str, object] = {"access_token": access, "token_type": "bearer"}
        if oidc:
            now = int(time.time())
            claims = {
                "iss": self.issuer,
                "aud": self.client_id,
                "sub": f"sub-{grant.user.username}",
                "preferred_username": grant.user.username,
                "name": grant.user.name,
                "email": grant.user.email,
                "iat": now,
                "exp": now + self.token_lifetime,
                "nonce": grant.nonce,
            }
            body["id_token"] = jwt.encode(
                claims, self._key, algorithm="RS256", headers={"kid": self._kid}
            )
        self._answer(h, 200, body, {})
