"""Front door benchmark: authentication overhead per TAP request, and the portal's time
from search to first rows (10 k rows) and to a 100 k-point density plot.

Usage::

    python benchmarks/portal_auth.py --store STORE   # e.g. a store of `--size tiny`

Starts the test OIDC provider and two ``dpzero serve`` processes over STORE (open
single-user mode, and with OIDC login), logs in, and times:

- the gate alone, in process: ``AuthMiddleware`` with a token looked up in SQLite and in
  PostgreSQL (if reachable at 127.0.0.1:5432), in front of an empty application;
- end to end: median latency of ``GET /api/tap/capabilities`` with a token against the
  open server (the difference is what authentication costs a client);
- the portal in headless Chromium: search → first rows of a 10 k-row result, and the
  density map of a 100 k-row result.

Prints a table and writes JSON under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from dpzero.auth import AuthContext, AuthMiddleware
from dpzero.auth.testing import LocalOidcProvider, LocalUser
from dpzero.config import Settings

ROOT = Path(__file__).resolve().parent
Q10K = (
    "SELECT TOP 10000 objectId, ra, dec, mag_g_cModel, mag_r_cModel, mag_i_cModel "
    "FROM dp01_dc2_catalogs.object"
)
Q100K = (
    "SELECT TOP 100000 a.ra + 0.001 * b.ra AS ra, a.dec + 0.001 * b.dec AS dec, a.mag_r_cModel "
    "FROM dp01_dc2_catalogs.object AS a, dp01_dc2_catalogs.truth_match AS b WHERE b.mag_r < 19"
)


def gate_overhead(db_url: str, state: Path, n: int = 2000) -> float:
    """Median microseconds the gate adds to a request carrying a token."""
    settings = Settings(
        state_dir=state,
        auth={
            "oidc": {"issuer": "http://127.0.0.1:1", "client_id": "a", "client_secret": "b"},
            "database": db_url,
            "rate_limits": {"tap": 10**9},  # counted, never reached
        },
    )
    ctx = AuthContext.create(settings)
    assert ctx.store is not None
    token, _ = ctx.store.create("bench", "b", ("read:tap",), None, datetime.now(UTC))

    async def inner(scope: dict, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    gate = AuthMiddleware(inner, ctx)  # type: ignore[arg-type]
    scope = {
        "type": "http", "method": "GET", "path": "/api/tap/sync", "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
    }  # fmt: skip
    statuses: list[int] = []

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def run() -> list[float]:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            await gate(dict(scope, state={}), None, send)  # type: ignore[arg-type]
            times.append(time.perf_counter() - t0)
        return times

    times = asyncio.run(run())
    assert set(statuses) == {200}, set(statuses)
    ctx.store.close()
    return statistics.median(times) * 1e6


def postgres_url() -> str | None:
    try:
        import psycopg

        name = f"dpzero_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:5432/{name}"
    except Exception:
        return None


def median_latency(url: str, headers: dict[str, str], n: int = 200) -> float:
    with httpx.Client(headers=headers) as client:
        client.get(url)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = client.get(url)
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.status_code
    return statistics.median(times) * 1e3


def portal_times(url: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
    out: dict[str, float] = {}
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", args=flags, headless=True,
            viewport={"width": 1400, "height": 900},
        )  # fmt: skip
        page = ctx.new_page()
        page.goto(url + "/portal/")
        page.wait_for_selector("#search", timeout=60_000)
        page.click("#search .tabs button:has-text('ADQL')")
        for name, query in [("10k", Q10K), ("100k", Q100K)]:
            page.fill("textarea[name=adql]", query)
            t0 = time.perf_counter()
            page.click("#search button[type=submit]")
            page.wait_for_function(
                "document.querySelector('#status')?.textContent.includes('rows in')"
            )
            page.wait_for_selector("#results tbody tr")
            out[f"search_to_rows_{name}_ms"] = (time.perf_counter() - t0) * 1e3
            out[f"rows_{name}"] = int(page.inner_text("#status").split()[0])
            t0 = time.perf_counter()
            page.click("button[name=next]")
            page.wait_for_function(
                "document.querySelector('#page-info').textContent.startsWith('Page 2')"
            )
            out[f"next_page_{name}_ms"] = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            page.click("#results thead th[data-col=ra]")
            page.wait_for_function(
                "document.querySelector('#results thead th[data-col=ra]').textContent.includes('▲')"
            )
            out[f"sort_{name}_ms"] = (time.perf_counter() - t0) * 1e3
        page.click("button[name=tab-plot]")
        page.click("button[name=plot-sky]")
        page.wait_for_selector("#plot[data-kind=density]")
        info = page.inner_text("#plot-info")
        out["density_plot_100k_ms"] = float(info.split(" in ")[1].split()[0])
        page.click("button[name=tab-results]")
        ctx.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()
    import sys

    sys.path.insert(0, str(ROOT.parent / "tests"))
    from tap.conftest import ServerProcess

    results: dict[str, object] = {"machine": platform.node(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        results["gate_sqlite_us"] = gate_overhead(f"sqlite:///{t / 'a.sqlite3'}", t / "s1")
        pg = postgres_url()
        if pg:
            results["gate_postgresql_us"] = gate_overhead(pg, t / "s2")
        with LocalOidcProvider() as oidc:
            env = {
                "DPZERO_AUTH__OIDC__ISSUER": oidc.issuer,
                "DPZERO_AUTH__OIDC__CLIENT_ID": oidc.client_id,
                "DPZERO_AUTH__OIDC__CLIENT_SECRET": oidc.client_secret,
                "DPZERO_AUTH__RATE_LIMITS": json.dumps({"tap": 10**9}),
            }
            open_server = ServerProcess(args.store, t / "open").start()
            auth_server = ServerProcess(args.store, t / "auth", env).start()
            try:
                oidc.next_user = LocalUser("bench")
                client = httpx.Client(base_url=auth_server.url)
                start = client.get("/login")
                client.get(httpx.get(start.headers["location"]).headers["location"])
                csrf = client.get("/auth/api/user").json()["csrf"]
                token = client.post(
                    "/auth/api/tokens", json={"name": "bench", "scopes": ["read:tap"]},
                    headers={"X-CSRF-Token": csrf},
                ).json()["token"]  # fmt: skip
                path = "/api/tap/capabilities"
                results["http_open_ms"] = median_latency(open_server.url + path, {})
                results["http_token_ms"] = median_latency(
                    auth_server.url + path, {"Authorization": f"Bearer {token}"}
                )
                results.update(portal_times(open_server.url))
            finally:
                open_server.stop()
                auth_server.stop()
    width = max(map(len, results))
    for k, v in results.items():
        print(f"{k:<{width}}  {v:.2f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    out = ROOT / "results" / f"portal_auth-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
