"""A test OIDC provider and a real dpzero server using it for logins."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dpzero.auth.testing import LocalOidcProvider, LocalUser
from tap.conftest import ServerProcess

ADMIN = "root"
LIMITED = "limited"
LIMITED_PER_MINUTE = 3
PORTAL_DENSITY_THRESHOLD = 5000


@pytest.fixture(scope="session")
def oidc() -> Iterator[LocalOidcProvider]:
    """The test OpenID Connect provider on a loopback port."""
    with LocalOidcProvider(client_id="dpzero-test", client_secret="xyzzy") as provider:
        yield provider


def auth_env(provider: LocalOidcProvider) -> dict[str, str]:
    """Settings (as environment) of a server logging in through the provider."""
    return {
        "DPZERO_AUTH__OIDC__ISSUER": provider.issuer,
        "DPZERO_AUTH__OIDC__CLIENT_ID": provider.client_id,
        "DPZERO_AUTH__OIDC__CLIENT_SECRET": provider.client_secret,
        "DPZERO_AUTH__ADMINS": json.dumps([ADMIN]),
        "DPZERO_AUTH__USER_RATE_LIMITS": json.dumps({LIMITED: {"tap": LIMITED_PER_MINUTE}}),
        "DPZERO_PORTAL__DENSITY_THRESHOLD": str(PORTAL_DENSITY_THRESHOLD),
    }


@pytest.fixture(scope="session")
def auth_server(
    tiny_store: Path, oidc: LocalOidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server over the tiny store with OIDC login configured."""
    state = tmp_path_factory.mktemp("auth") / "state"
    server = ServerProcess(tiny_store, state, auth_env(oidc)).start()
    yield server
    server.stop()


def login(server: ServerProcess, provider: LocalOidcProvider, username: str) -> httpx.Client:
    """A client holding a session of ``username`` (logged in through the provider),
    with the CSRF header set."""
    provider.next_user = LocalUser(username, name=username.title())
    client = httpx.Client(base_url=server.url, timeout=30)
    start = client.get("/login", params={"rd": "/portal/"})
    assert start.status_code == 302, start.text
    answer = httpx.get(start.headers["location"])  # the provider logs in at once
    assert answer.status_code == 302
    back = client.get(answer.headers["location"])
    assert back.status_code == 302 and back.headers["location"] == "/portal/", back.text
    me = client.get("/auth/api/user").json()
    client.headers["X-CSRF-Token"] = me["csrf"]
    return client
