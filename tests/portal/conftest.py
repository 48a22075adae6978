"""A real headless Chromium (Debian's ``chromium``) driven by Playwright, logged in to a
dpzero server through the test OIDC provider."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from auth.conftest import auth_server, oidc  # noqa: F401  (fixtures of the same server)
from dpzero.auth.testing import LocalOidcProvider, LocalUser
from tap.conftest import ServerProcess

CHROMIUM = os.environ.get("DPZERO_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
# The documentation's screenshots are refreshed on request only
# (DPZERO_SCREENSHOTS=docs/portal), so a test run leaves the checkout unchanged.
SCREENSHOTS = Path(
    os.environ.get("DPZERO_SCREENSHOTS")
    or Path(tempfile.gettempdir()) / "dpzero-portal-screenshots"
)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Chromium, headless, with a fresh profile."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (make install puts Debian's chromium there)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=FLAGS,
            headless=True,
            viewport={"width": 1400, "height": 900},
            accept_downloads=True,
        )
        yield context
        context.close()


@pytest.fixture(scope="module")
def page(
    browser: object,
    auth_server: ServerProcess,  # noqa: F811
    oidc: LocalOidcProvider,  # noqa: F811
) -> Iterator[object]:
    """A tab that logged in through the OIDC provider and shows the portal."""
    oidc.next_user = LocalUser("portal-user", "Portal User")
    tab = browser.new_page()  # type: ignore[attr-defined]
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(auth_server.url + "/portal/")  # → /login → provider → back, logged in
    tab.wait_for_selector("#search", timeout=60_000)
    tab.errors = errors
    yield tab
    tab.close()
    assert not errors, errors


def screenshot(page: object, name: str) -> None:
    """Save the page as <name>.png in `SCREENSHOTS`."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))  # type: ignore[attr-defined]
