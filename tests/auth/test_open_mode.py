"""Single-user open mode (no login provider): everything open to the local user."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from dpzero.app import create_app
from dpzero.config import Settings


def requests_to(settings: Settings, calls: list[tuple[str, str, dict]]) -> list[httpx.Response]:
    """Answers of the application (its lifespan, the catalog store, is not started)."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return [await c.request(m, url, **kw) for m, url, kw in calls]

    return asyncio.run(run())


def test_open_mode(tmp_path: Path) -> None:
    settings = Settings(store=tmp_path / "store", state_dir=tmp_path / "state")
    me, portal, login, token = requests_to(
        settings,
        [
            ("GET", "/auth/api/user", {}),
            ("GET", "/portal/", {}),
            ("GET", "/login", {"params": {"rd": "/portal/"}}),
            ("POST", "/auth/api/tokens", {"json": {"name": "x", "scopes": ["read:tap"]}}),
        ],
    )
    who = me.json()
    assert (who["username"], who["via"], who["auth_enabled"]) == ("anonymous", "open", False)
    assert "read:tap" in who["scopes"]
    assert portal.status_code == 200
    assert login.status_code == 302 and login.headers["location"] == "/portal/"
    assert token.status_code == 400 and "not configured" in token.text
    assert not (tmp_path / "state" / "auth.sqlite3").exists()


def test_portal_serves_its_assets(tmp_path: Path) -> None:
    names = [
        "portal.js",
        "data.js",
        "plot.js",
        "portal.css",
        "vendor/htm-preact-standalone.module.js",
    ]
    answers = requests_to(
        Settings(store=tmp_path, state_dir=tmp_path / "s"),
        [("GET", "/portal/", {})]
        + [("GET", f"/portal/static/{n}", {}) for n in names]
        + [("GET", "/portal/static/%2e%2e/handlers.py", {})],
    )
    page = answers[0].text
    assert '"densityThreshold": 25000' in page and "/portal/static/portal.js" in page
    assert [r.status_code for r in answers[1:-1]] == [200] * len(names)
    assert len(answers[-2].content) > 10_000  # the vendored library
    assert answers[-1].status_code == 404
