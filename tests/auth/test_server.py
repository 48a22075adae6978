"""Authentication through the real server: login flow, the auth matrix over every
endpoint, tokens, admin, job ownership and rate limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing
from http.cookies import SimpleCookie

import httpx
import pytest
import pyvo
import requests

from auth.conftest import ADMIN, LIMITED, LIMITED_PER_MINUTE, login
from dpzero.auth.testing import LocalOidcProvider
from tap.conftest import ServerProcess

QUERY = "SELECT TOP 3 objectId, ra, dec FROM dp01_dc2_catalogs.object"
SYNC = {"LANG": "ADQL", "QUERY": QUERY, "FORMAT": "csv"}


@pytest.fixture(scope="module")
def alice(auth_server: ServerProcess, oidc: LocalOidcProvider) -> Iterator[httpx.Client]:
    client = login(auth_server, oidc, "alice")
    yield client
    client.close()


def make_token(client: httpx.Client, scopes: list[str], days: float | None = None) -> str:
    r = client.post(
        "/auth/api/tokens",
        json={"name": f"t-{time.time()}", "scopes": scopes, "expires_days": days},
    )
    assert r.status_code == 201, r.text
    return r.json()["token"]


@pytest.fixture(scope="module")
def credentials(
    auth_server: ServerProcess, oidc: LocalOidcProvider, alice: httpx.Client
) -> dict[str, dict[str, str]]:
    """Authorization headers of each kind the matrix tries."""
    revoked = make_token(alice, ["read:tap", "read:image"])
    key = revoked.removeprefix("dpz-").split(".")[0]
    assert alice.delete(f"/auth/api/tokens/{key}").json()["state"] == "revoked"
    expired = make_token(alice, ["read:tap", "read:image"], days=1.5 / 86400)
    with closing(login(auth_server, oidc, ADMIN)) as admin:
        admin_token = make_token(admin, ["read:tap", "admin:token"])
    time.sleep(2)
    bearer = lambda t: {"Authorization": f"Bearer {t}"}  # noqa: E731
    return {
        "none": {},
        "bad": bearer("dpz-0123456789abcdef.notasecret"),
        "garbage": {"Authorization": "Bearer ???"},
        "expired": bearer(expired),
        "revoked": bearer(revoked),
        "wrong_scope": bearer(make_token(alice, ["exec:notebook"])),
        "right_scope": bearer(make_token(alice, ["read:tap", "read:image"])),
        "admin": bearer(admin_token),
    }


# (method, path, data, needed scope or "" for any authenticated caller, "open" or "page")
ENDPOINTS = [
    ("GET", "/api/tap/sync", SYNC, "read:tap"),
    ("POST", "/api/tap/sync", SYNC, "read:tap"),
    ("GET", "/api/tap/tables", None, "read:tap"),
    ("GET", "/api/tap/capabilities", None, "read:tap"),
    ("GET", "/api/tap/async", None, "read:tap"),
    ("POST", "/api/tap/async", {"LANG": "ADQL", "QUERY": QUERY}, "read:tap"),
    ("GET", "/api/datalink/links", {"ID": "x"}, "read:image"),
    ("GET", "/api/cutout/sync", {"ID": "x"}, "read:image"),
    ("GET", "/auth/api/user", None, ""),
    ("GET", "/auth/api/tokens", None, ""),
    ("GET", "/auth/api/admin/users", None, "admin:token"),
    ("GET", "/auth/api/admin/tokens", None, "admin:token"),
    ("GET", "/portal/", None, "read:tap"),
    ("GET", "/auth/tokens", None, ""),
    ("GET", "/api/tap/availability", None, "open"),
]
SCOPES = {
    "right_scope": {"read:tap", "read:image"},
    "wrong_scope": {"exec:notebook"},
    "admin": {"read:tap", "admin:token"},
}
PAGES = {"/portal/", "/auth/tokens"}


@pytest.mark.parametrize("kind", ["none", "bad", "garbage", "expired", "revoked", "wrong_scope",
                                  "right_scope", "admin"])  # fmt: skip
def test_auth_matrix(
    auth_server: ServerProcess, credentials: dict[str, dict[str, str]], kind: str
) -> None:
    failures = []
    for method, path, data, needs in ENDPOINTS:
        params = data if method == "GET" else None
        body = data if method == "POST" else None
        r = httpx.request(
            method, auth_server.url + path, params=params, data=body,
            headers=credentials[kind], timeout=60,
        )  # fmt: skip
        if needs == "open":
            expected = {200}
        elif kind in ("none",) and path in PAGES:
            expected = {302}
        elif kind not in SCOPES:
            expected = {401}
        elif needs and needs not in SCOPES[kind]:
            expected = {403}
        else:
            # Allowed: the image services are not mounted yet (404), async POST redirects.
            expected = {200, 303} if "image" not in needs else {404}
        if r.status_code not in expected:
            failures.append(f"{method} {path}: {r.status_code} not in {expected}: {r.text[:120]}")
            continue
        if r.status_code == 401:
            challenge = r.headers.get("www-authenticate", "")
            assert challenge.startswith('Bearer realm="dpzero"'), (path, challenge)
            if kind in ("expired", "revoked"):
                assert f"token {kind}" in challenge
        if r.status_code == 403:
            assert f'scope="{needs}"' in r.headers.get("www-authenticate", "")
        if r.status_code == 302:
            assert r.headers["location"].startswith("/login?rd=")
    assert not failures, "\n".join(failures)


def test_login_sets_a_secure_session_cookie(
    auth_server: ServerProcess, oidc: LocalOidcProvider
) -> None:
    client = httpx.Client(base_url=auth_server.url)
    oidc.next_user = oidc.next_user.__class__("carol", "Carol C", "carol@example.org")
    start = client.get("/login", params={"rd": "/auth/tokens"})
    assert start.headers["location"].startswith(oidc.issuer + "/authorize?")
    answer = httpx.get(start.headers["location"])
    back = client.get(answer.headers["location"])
    assert back.status_code == 302 and back.headers["location"] == "/auth/tokens"
    cookie = SimpleCookie()
    for header in back.headers.get_list("set-cookie"):
        if header.startswith("dpzero_session="):
            cookie.load(header)
    morsel = cookie["dpzero_session"]
    assert morsel["httponly"] and morsel["samesite"].lower() == "lax" and morsel["path"] == "/"
    me = client.get("/auth/api/user").json()
    assert (me["username"], me["via"], me["admin"]) == ("carol", "session", False)
    assert "admin:token" not in me["scopes"]
    assert client.get("/auth/tokens").status_code == 200
    # A replayed code or a forged state does not log anyone in.
    again = client.get(answer.headers["location"])
    assert again.status_code == 401
    forged = httpx.get(answer.headers["location"].replace("state=", "state=x"))
    assert forged.status_code == 401
    # Logging out forgets the session.
    client.get("/logout")
    assert client.get("/auth/api/user").status_code == 401
    client.close()


def test_refused_login(auth_server: ServerProcess, oidc: LocalOidcProvider) -> None:
    client = httpx.Client(base_url=auth_server.url)
    oidc.refuse_next = True
    start = client.get("/login")
    back = client.get(httpx.get(start.headers["location"]).headers["location"])
    assert back.status_code == 401 and "access_denied" in back.text
    assert "dpzero_session" not in client.cookies
    client.close()


def test_open_redirects_are_refused(auth_server: ServerProcess, oidc: LocalOidcProvider) -> None:
    client = httpx.Client(base_url=auth_server.url)
    start = client.get("/login", params={"rd": "https://evil.example.org/"})
    back = client.get(httpx.get(start.headers["location"]).headers["location"])
    assert back.headers["location"] == "/portal"
    client.close()


def test_session_changes_need_the_csrf_header(alice: httpx.Client) -> None:
    no_header = {k: v for k, v in alice.headers.items() if k.lower() != "x-csrf-token"}
    r = httpx.post(
        str(alice.base_url) + "/api/tap/sync", data=SYNC, cookies=alice.cookies, headers=no_header
    )
    assert r.status_code == 403 and "CSRF" in r.text
    assert alice.post("/api/tap/sync", data=SYNC).status_code == 200


def test_token_rules(auth_server: ServerProcess, alice: httpx.Client) -> None:
    token = make_token(alice, ["read:tap"])
    by_token = httpx.post(
        auth_server.url + "/auth/api/tokens",
        json={"name": "x", "scopes": ["read:tap"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert by_token.status_code == 403  # tokens do not mint tokens
    r = alice.post("/auth/api/tokens", json={"name": "x", "scopes": ["admin:token"]})
    assert r.status_code == 403  # not an admin
    r = alice.post("/auth/api/tokens", json={"name": "x", "scopes": ["write:all"]})
    assert r.status_code == 400
    listed = {t["key"]: t for t in alice.get("/auth/api/tokens").json()}
    key = token.removeprefix("dpz-").split(".")[0]
    assert listed[key]["scopes"] == ["read:tap"] and listed[key]["state"] == "active"
    assert all(t["username"] == "alice" for t in listed.values())
    assert "token" not in listed[key]  # the secret is shown once only


def test_clients_with_tokens(auth_server: ServerProcess, alice: httpx.Client) -> None:
    token = make_token(alice, ["read:tap"])
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    table = pyvo.dal.TAPService(auth_server.tap_url, session=session).search(QUERY).to_table()
    assert len(table) == 3
    # TOPCAT-style Basic authentication with the token as password.
    basic = httpx.get(auth_server.tap_url + "/sync", params=SYNC, auth=("x-oauth-basic", token))
    assert basic.status_code == 200 and basic.text.count("\n") == 4


def test_admin_lists_and_revokes(
    auth_server: ServerProcess, oidc: LocalOidcProvider, alice: httpx.Client
) -> None:
    token = make_token(alice, ["read:tap"])
    key = token.removeprefix("dpz-").split(".")[0]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(auth_server.tap_url + "/tables", headers=headers).status_code == 200
    with closing(login(auth_server, oidc, ADMIN)) as admin:
        users = {u["username"]: u for u in admin.get("/auth/api/admin/users").json()}
        assert {"alice", ADMIN} <= set(users) and users[ADMIN]["admin"]
        mine = admin.get("/auth/api/admin/tokens", params={"username": "alice"}).json()
        assert key in {t["key"] for t in mine}
        assert admin.delete(f"/auth/api/admin/tokens/{key}").json()["state"] == "revoked"
        assert admin.delete("/auth/api/admin/tokens/0000").status_code == 404
    r = httpx.get(auth_server.tap_url + "/tables", headers=headers)
    assert r.status_code == 401 and "token revoked" in r.headers["www-authenticate"]
    # Alice cannot revoke somebody else's token through her own API.
    assert alice.get("/auth/api/admin/tokens").status_code == 403


def test_jobs_belong_to_their_owner(
    auth_server: ServerProcess, oidc: LocalOidcProvider, alice: httpx.Client
) -> None:
    mine = {"Authorization": f"Bearer {make_token(alice, ['read:tap'])}"}
    with closing(login(auth_server, oidc, "bob")) as bob:
        theirs = {"Authorization": f"Bearer {make_token(bob, ['read:tap'])}"}
    tap = auth_server.tap_url
    created = httpx.post(
        tap + "/async", data={"LANG": "ADQL", "QUERY": QUERY, "PHASE": "RUN"}, headers=mine
    )
    assert created.status_code == 303
    job = created.headers["location"].rsplit("/", 1)[1]
    assert httpx.get(f"{tap}/async/{job}", headers=mine).status_code == 200
    assert httpx.get(f"{tap}/async/{job}/owner", headers=mine).text == "alice"
    for method, path, data in [
        ("GET", "", None),
        ("GET", "/phase", None),
        ("GET", "/results/result", None),
        ("POST", "/phase", {"PHASE": "ABORT"}),
        ("DELETE", "", None),
    ]:
        r = httpx.request(method, f"{tap}/async/{job}{path}", data=data, headers=theirs)
        assert r.status_code == 404, (method, path, r.status_code)
    assert job not in httpx.get(tap + "/async", headers=theirs).text
    assert job in httpx.get(tap + "/async", headers=mine).text


def test_rate_limit_answers_429_with_retry_after(
    auth_server: ServerProcess, oidc: LocalOidcProvider
) -> None:
    with closing(login(auth_server, oidc, LIMITED)) as limited:
        token = make_token(limited, ["read:tap"])
    headers = {"Authorization": f"Bearer {token}"}
    codes = [
        httpx.get(auth_server.tap_url + "/capabilities", headers=headers).status_code
        for _ in range(LIMITED_PER_MINUTE + 1)
    ]
    assert codes[:LIMITED_PER_MINUTE] == [200] * LIMITED_PER_MINUTE
    r = httpx.get(auth_server.tap_url + "/capabilities", headers=headers)
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 60
    # Other services of the same user, and other users, are not throttled.
    assert httpx.get(auth_server.url + "/auth/api/user", headers=headers).status_code == 200
    assert httpx.get(auth_server.tap_url + "/availability", headers=headers).status_code == 200
