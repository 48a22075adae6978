"""Routes of the portal: its page and its static files (all data comes through TAP)."""

from __future__ import annotations

import json
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from dpzero.config import Settings

__all__ = ["portal_router"]


def portal_router(settings: Settings) -> APIRouter:
    """The portal's routes.

    Parameters
    ----------
    settings
        Platform settings (``settings.portal``).

    Returns
    -------
    APIRouter
        ``/portal`` (the page) and ``/portal/static`` (scripts, styles, vendored library).
    """
    router = APIRouter()
    package = resources.files("dpzero.portal")
    page = package.joinpath("templates/index.html").read_text()
    config = json.dumps(
        {
            "tapUrl": "/api/tap",
            "pageRows": settings.portal.page_rows,
            "maxRows": settings.portal.max_rows,
            "densityThreshold": settings.portal.density_threshold,
        }
    )
    html = page.replace("{{config}}", config.replace("</", "<\\/"))

    @router.get("/portal", include_in_schema=False)
    async def portal_slash() -> RedirectResponse:
        return RedirectResponse("/portal/", status_code=307)

    @router.get("/portal/", response_class=HTMLResponse, include_in_schema=False)
    async def portal_page() -> HTMLResponse:
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    router.mount(
        "/portal/static",
        StaticFiles(directory=str(package.joinpath("static"))),
        name="portal-static",
    )
    return router
