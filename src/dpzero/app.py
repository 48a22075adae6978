"""The web application: ``create_app(settings)`` mounts the platform's services."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from dpzero.config import Settings
from dpzero.errors import DpzeroUserError, InvalidInputError

__all__ = ["LOCAL_HOSTS", "check_bind", "create_app"]

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_log = logging.getLogger("dpzero")


def check_bind(settings: Settings) -> None:
    """Refuse to serve beyond this machine without authentication.

    Raises
    ------
    InvalidInputError
        If the host is not a loopback address and authentication is not configured.
    """
    if settings.host not in LOCAL_HOSTS and not settings.auth.enabled:
        raise InvalidInputError(
            f"refusing to listen on {settings.host}: without authentication configured "
            "dpzero serves only this machine (use --host 127.0.0.1)"
        )


def create_app(settings: Settings) -> FastAPI:
    """The platform as a FastAPI application (resources are opened in its lifespan)."""
    from dpzero.tap import JobRunner, JobStore, TapEngine, TapService, tap_router

    if settings.store is None:
        raise InvalidInputError("no catalog store given (--store STORE)")
    images = None
    if settings.repo is not None:
        from dpzero.images.service import ImageService

        images = ImageService.open(settings.repo)  # a clear error now if it is not a repo

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        attached = []
        if settings.repo is not None:
            # ivoa.ObsCore of the repository's images, built once (kept while unchanged).
            from dpzero.images.obscore import build_obscore

            obscore = build_obscore(
                settings.repo, settings.state_dir / "obscore.parquet", settings.public_url
            )
            _log.info("%s", obscore.summary())
            attached.append(obscore.path)
        engine = TapEngine.open(settings.store, attached)  # type: ignore[arg-type]
        jobs = JobStore(settings.jobs_database_url)
        runner = JobRunner(
            jobs,
            settings.results_dir,
            settings.store,  # type: ignore[arg-type]
            settings.tap.max_running_jobs,
            settings.tap.max_running_jobs_per_user,
            settings.tap.default_maxrec,
            settings.tap.upload_limit_rows,
            settings.tap.destruction_check_seconds,
            attached,
        )
        runner.start()
        app.state.tap_service = TapService(settings, engine, jobs, runner)
        app.state.image_service = images
        try:
            yield
        finally:
            runner.stop()
            jobs.close()
            if images is not None:
                images.close()

    app = FastAPI(title="dpzero", lifespan=lifespan, docs_url="/api/docs", redoc_url=None)
    app.include_router(tap_router())
    if images is not None:
        from dpzero.images.handlers import images_router

        app.include_router(images_router(settings))
    from dpzero.auth import install_auth
    from dpzero.portal import portal_router

    app.include_router(portal_router(settings))
    install_auth(app, settings)

    @app.exception_handler(DpzeroUserError)
    async def user_error(_request: Request, exc: DpzeroUserError) -> PlainTextResponse:
        return PlainTextResponse(exc.message + "\n", status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> PlainTextResponse:
        _log.exception("internal error on %s %s", request.method, request.url.path)
        return PlainTextResponse(
            "internal error: the service failed to answer; the operators can find the details "
            "in its log\n",
            status_code=500,
        )

    @app.get("/", response_class=HTMLResponse)
    async def home() -> str:
        return (
            "<!doctype html><title>dpzero</title><h1>dpzero</h1>"
            "<p>A data preview platform. Services:</p><ul>"
            '<li><a href="/api/tap/tables">TAP</a> at <code>/api/tap</code> '
            "(pyvo: <code>pyvo.dal.TAPService('…/api/tap')</code>)</li>"
            '<li><a href="/portal">Portal</a>: catalog search and plots</li>'
            '<li><a href="/auth/tokens">Access tokens</a> for scripts and TOPCAT</li>'
            '<li><a href="/api/docs">API documentation</a></li></ul>'
        )

    return app
