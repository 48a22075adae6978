"""The web application: ``create_app(settings)`` mounts the platform's services."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import SecretStr
from uvicorn.protocols.http.h11_impl import H11Protocol

from dpzero.config import Settings
from dpzero.errors import DpzeroUserError, InvalidInputError

if TYPE_CHECKING:
    from dpzero.tap.engine import TapEngine

__all__ = [
    "LOCAL_HOSTS",
    "SETTINGS_ENVIRONMENT",
    "NoDelayHttpProtocol",
    "check_bind",
    "create_app",
    "create_app_from_environment",
    "prepare_state",
    "settings_to_environment",
]

#: Environment variable handing the settings to each server process (``--workers``).
SETTINGS_ENVIRONMENT = "DPZERO_SERVE_SETTINGS_JSON"

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_log = logging.getLogger("dpzero")


def _open_store(engine: TapEngine) -> None:
    started = time.perf_counter()
    try:
        engine.store.open_all()
    except Exception:  # a damaged partition shows up again, with its error, when queried
        _log.exception("opening the catalog store ahead of queries failed")
        return
    _log.info("catalog store opened in %.1f s", time.perf_counter() - started)


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


class NoDelayHttpProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol on connections with Nagle's algorithm off.

    asyncio turns it off only on sockets that say they are TCP; the listening socket
    uvicorn hands to its ``--workers`` processes comes back with protocol 0, so each
    response's body waited ~40 ms for the client's delayed ACK of its headers.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # a socket without the option: the default
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def settings_to_environment(settings: Settings) -> None:
    """Put ``settings`` (secrets included) where `create_app_from_environment` reads them.

    Server processes beyond the first are started by uvicorn from an import string, so
    the settings travel in the environment the processes inherit.
    """

    def plain(value: object) -> object:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        return str(value)

    os.environ[SETTINGS_ENVIRONMENT] = json.dumps(settings.model_dump(), default=plain)


def prepare_state(settings: Settings) -> None:
    """Create what a server's processes share, once, before several of them start.

    The job and token databases' tables, the session key and the ObsCore table would
    otherwise be created by every process at the same moment.
    """
    from dpzero.auth.sessions import load_or_create_key
    from dpzero.auth.tokens import TokenStore
    from dpzero.tap import JobStore

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    JobStore(settings.jobs_database_url).close()
    if settings.auth.enabled:
        TokenStore(settings.auth_database_url).close()
    if settings.auth.session_secret is None:
        load_or_create_key(settings.state_dir / "session.key")
    if settings.repo is not None:
        from dpzero.images.obscore import build_obscore

        build_obscore(settings.repo, settings.state_dir / "obscore.parquet", settings.public_url)


def create_app_from_environment() -> FastAPI:
    """The application of one of several server processes (see `settings_to_environment`)."""
    return create_app(Settings.model_validate(json.loads(os.environ[SETTINGS_ENVIRONMENT])))


def _claim_job_runner(state_dir: Path) -> int | None:
    """Whether this process runs the async jobs: one process of a server does.

    Every process of ``dpzero serve --workers N`` accepts and answers requests, and
    queues jobs in the shared job database; the one holding this lock starts them
    (the runner polls the database), recovers them after a restart and destroys
    expired ones. Returns the open lock file (kept for the process's life) or None.
    """
    fd = os.open(state_dir / "job-runner.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


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
        # Footers, row copies and indexes opened in the background: the first queries
        # touching a partition would otherwise each pay for it.
        threading.Thread(target=_open_store, args=(engine,), daemon=True).start()
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
        runner_lock = _claim_job_runner(settings.state_dir)
        if runner_lock is not None:
            runner.start()
        app.state.tap_service = TapService(settings, engine, jobs, runner)
        app.state.image_service = images
        try:
            yield
        finally:
            runner.stop()
            if runner_lock is not None:
                os.close(runner_lock)
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
