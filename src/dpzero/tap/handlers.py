"""HTTP handlers of the TAP service at ``/api/tap``: parse, call the service, render.

IVOA parameter names are case-insensitive: keys are lower-cased once, here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, Request
from fastapi.responses import (
    FileResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from dpzero.auth import get_user
from dpzero.errors import DpzeroUserError, InvalidInputError
from dpzero.tap.formats import votable_error, write_result
from dpzero.tap.models import FINAL_PHASES, JobPhase
from dpzero.tap.service import TapService
from dpzero.tap.xml import availability_xml, capabilities_xml, job_list_xml, job_xml, tables_xml

__all__ = ["get_tap_service", "get_user", "tap_router"]

_XML = "application/xml"
_VOTABLE = "application/x-votable+xml"
MAX_WAIT_SECONDS = 60.0


async def _parameters(request: Request) -> tuple[dict[str, list[str]], dict[str, bytes]]:
    params: dict[str, list[str]] = {}
    files: dict[str, bytes] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key.lower(), []).append(value)
    if request.method == "POST":
        try:
            form = await request.form(max_part_size=64 * 1024 * 1024)
        except Exception as exc:  # malformed multipart bodies
            raise InvalidInputError(f"the request body is not a readable form ({exc})") from None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                files[key] = await value.read()
            else:
                params.setdefault(key.lower(), []).append(value)
    return params, files


def _text_error(exc: DpzeroUserError) -> PlainTextResponse:
    return PlainTextResponse(exc.message + "\n", status_code=exc.status_code)


def get_tap_service(request: Request) -> TapService:
    """The TAP service of the application (made in its lifespan)."""
    return request.app.state.tap_service


Service = Annotated[TapService, Depends(get_tap_service)]
User = Annotated[str, Depends(get_user)]


def tap_router() -> APIRouter:
    """The TAP routes."""
    router = APIRouter(prefix="/api/tap")

    def tap_url(request: Request, service: TapService) -> str:
        return service.settings.base_url.rstrip("/") + "/api/tap" if service.settings.base_url \
            else str(request.base_url).rstrip("/") + "/api/tap"  # fmt: skip

    @router.api_route("/sync", methods=["GET", "POST"])
    async def sync(request: Request, service: Service) -> Response:
        try:
            params, files = await _parameters(request)
            parameters, blobs = service.parse_parameters(params, files)
            outcome, fmt = await run_in_threadpool(service.run_sync, parameters, blobs)
        except DpzeroUserError as exc:
            return Response(
                votable_error(exc.message), status_code=exc.status_code, media_type=_VOTABLE
            )
        # Rows stream from the store to the client as they are read.
        stream = write_result(
            fmt,
            outcome.batches(),
            outcome.schema,
            outcome.columns,
            infos=[("QUERY", parameters.query)],
            overflow=lambda: outcome.overflow,
        )
        return StreamingResponse(stream, media_type=fmt.media_type)

    @router.post("/async")
    async def create(request: Request, service: Service, user: User) -> Response:
        try:
            params, files = await _parameters(request)
            parameters, blobs = service.parse_parameters(params, files)
            run = (params.get("phase") or [""])[-1].upper() == "RUN"
            job = await run_in_threadpool(service.create_job, user, parameters, blobs, run)
        except DpzeroUserError as exc:
            return _text_error(exc)
        return RedirectResponse(f"{tap_url(request, service)}/async/{job.job_id}", status_code=303)

    @router.get("/async")
    async def job_list(request: Request, service: Service, user: User) -> Response:
        q = request.query_params
        lowered = {k.lower(): q.getlist(k) for k in q}
        try:
            jobs = service.list(
                user,
                lowered.get("phase", []),
                (lowered.get("after") or [None])[-1],
                (lowered.get("last") or [None])[-1],
            )
        except DpzeroUserError as exc:
            return _text_error(exc)
        return Response(job_list_xml(jobs, tap_url(request, service) + "/async"), media_type=_XML)

    @router.get("/async/{job_id}")
    async def job(job_id: str, request: Request, service: Service, user: User) -> Response:
        q = {k.lower(): v for k, v in request.query_params.items()}
        try:
            job = service.get(user, job_id)
            if "wait" in q:
                try:
                    wait = float(q["wait"])
                except ValueError:
                    raise InvalidInputError(
                        f"WAIT must be a number of seconds, not {q['wait']!r}"
                    ) from None
                wait = MAX_WAIT_SECONDS if wait < 0 else min(wait, MAX_WAIT_SECONDS)
                initial = JobPhase(q["phase"].upper()) if "phase" in q else job.phase
                loop = asyncio.get_running_loop()
                deadline = loop.time() + wait
                while (
                    job.phase == initial
                    and job.phase not in FINAL_PHASES
                    and loop.time() < deadline
                ):
                    await asyncio.sleep(0.1)
                    job = service.get(user, job_id)
        except DpzeroUserError as exc:
            return _text_error(exc)
        except ValueError:
            return PlainTextResponse(f"unknown PHASE {q.get('phase')}\n", status_code=400)
        return Response(
            job_xml(job, f"{tap_url(request, service)}/async/{job_id}"), media_type=_XML
        )

    @router.post("/async/{job_id}")
    async def job_post(job_id: str, request: Request, service: Service, user: User) -> Response:
        params, _ = await _parameters(request)
        action = (params.get("action") or [""])[-1].upper()
        try:
            if action == "DELETE":
                await run_in_threadpool(service.delete, user, job_id)
                return RedirectResponse(f"{tap_url(request, service)}/async", status_code=303)
            raise InvalidInputError("POST to a job takes ACTION=DELETE")
        except DpzeroUserError as exc:
            return _text_error(exc)

    @router.delete("/async/{job_id}")
    async def job_delete(job_id: str, request: Request, service: Service, user: User) -> Response:
        try:
            await run_in_threadpool(service.delete, user, job_id)
        except DpzeroUserError as exc:
            return _text_error(exc)
        return RedirectResponse(f"{tap_url(request, service)}/async", status_code=303)

    @router.get("/async/{job_id}/phase")
    async def phase(job_id: str, service: Service, user: User) -> Response:
        try:
            return PlainTextResponse(service.get(user, job_id).phase.value)
        except DpzeroUserError as exc:
            return _text_error(exc)

    @router.post("/async/{job_id}/phase")
    async def set_phase(job_id: str, request: Request, service: Service, user: User) -> Response:
        params, _ = await _parameters(request)
        value = (params.get("phase") or [""])[-1].upper()
        try:
            if value == "RUN":
                service.start(user, job_id)
            elif value == "ABORT":
                await run_in_threadpool(service.abort, user, job_id)
            else:
                raise InvalidInputError(f"PHASE={value or '(none)'}: use RUN or ABORT")
        except DpzeroUserError as exc:
            return _text_error(exc)
        return RedirectResponse(f"{tap_url(request, service)}/async/{job_id}", status_code=303)

    def _attribute(name: str, render: Callable[[object], str]) -> None:
        @router.get(f"/async/{{job_id}}/{name}", name=f"get_{name}")
        async def get_attr(job_id: str, service: Service, user: User) -> Response:
            try:
                return PlainTextResponse(render(service.get(user, job_id)))
            except DpzeroUserError as exc:
                return _text_error(exc)

    def _time(value: object) -> str:
        return "" if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"  # type: ignore[attr-defined]

    _attribute("executionduration", lambda j: str(j.execution_duration))  # type: ignore[attr-defined]
    _attribute("destruction", lambda j: _time(j.destruction))  # type: ignore[attr-defined]
    _attribute("quote", lambda j: _time(j.quote))  # type: ignore[attr-defined]
    _attribute("owner", lambda j: j.owner)  # type: ignore[attr-defined]

    @router.post("/async/{job_id}/executionduration")
    async def set_duration(job_id: str, request: Request, service: Service, user: User) -> Response:
        params, _ = await _parameters(request)
        try:
            service.set_execution_duration(
                user, job_id, (params.get("executionduration") or [""])[-1]
            )
        except DpzeroUserError as exc:
            return _text_error(exc)
        return RedirectResponse(f"{tap_url(request, service)}/async/{job_id}", status_code=303)

    @router.post("/async/{job_id}/destruction")
    async def set_destruction(
        job_id: str, request: Request, service: Service, user: User
    ) -> Response:
        params, _ = await _parameters(request)
        try:
            service.set_destruction(user, job_id, (params.get("destruction") or [""])[-1])
        except DpzeroUserError as exc:
            return _text_error(exc)
        return RedirectResponse(f"{tap_url(request, service)}/async/{job_id}", status_code=303)

    @router.get("/async/{job_id}/parameters")
    async def parameters(job_id: str, service: Service, user: User) -> Response:
        try:
            job = service.get(user, job_id)
        except DpzeroUserError as exc:
            return _text_error(exc)
        body = "".join(
            f'<uws:parameter id="{k}">{escape(v)}</uws:parameter>'
            for k, v in job.parameters.as_uws()
        )
        xml = (
            f'<uws:parameters xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0">{body}</uws:parameters>'
        )
        return Response(xml, media_type=_XML)

    @router.post("/async/{job_id}/parameters")
    async def set_parameters(
        job_id: str, request: Request, service: Service, user: User
    ) -> Response:
        params, files = await _parameters(request)
        try:
            await run_in_threadpool(service.update_parameters, user, job_id, params, files)
        except DpzeroUserError as exc:
            return _text_error(exc)
        return RedirectResponse(f"{tap_url(request, service)}/async/{job_id}", status_code=303)

    @router.get("/async/{job_id}/results")
    async def results(job_id: str, request: Request, service: Service, user: User) -> Response:
        try:
            job = service.get(user, job_id)
        except DpzeroUserError as exc:
            return _text_error(exc)
        href = f"{tap_url(request, service)}/async/{job_id}/results/result"
        inner = (
            f'<uws:result id="result" xlink:type="simple" xlink:href="{escape(href)}"/>'
            if job.phase == JobPhase.COMPLETED
            else ""
        )
        xml = (
            '<uws:results xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" '
            f'xmlns:xlink="http://www.w3.org/1999/xlink">{inner}</uws:results>'
        )
        return Response(xml, media_type=_XML)

    @router.get("/async/{job_id}/results/result")
    async def result(job_id: str, service: Service, user: User) -> Response:
        try:
            path, media_type = service.result_file(user, job_id)
        except DpzeroUserError as exc:
            return _text_error(exc)
        return FileResponse(path, media_type=media_type)

    @router.get("/async/{job_id}/error")
    async def error(job_id: str, service: Service, user: User) -> Response:
        try:
            job = service.get(user, job_id)
        except DpzeroUserError as exc:
            return _text_error(exc)
        if job.phase != JobPhase.ERROR:
            return PlainTextResponse(
                f"job {job_id} is {job.phase.value}, not ERROR\n", status_code=404
            )
        return Response(votable_error(job.error_message or "unknown error"), media_type=_VOTABLE)

    @router.get("/availability")
    async def availability(service: Service) -> Response:
        try:
            await run_in_threadpool(service.engine.published_tables)
        except Exception as exc:  # the store cannot be read: not available, and why
            return Response(
                availability_xml(False, f"catalog store unreadable: {exc}"), media_type=_XML
            )
        return Response(availability_xml(True, "service is accepting queries"), media_type=_XML)

    @router.get("/capabilities")
    async def capabilities(request: Request, service: Service) -> Response:
        tap = service.settings.tap
        xml = capabilities_xml(
            tap_url(request, service),
            tap.default_maxrec,
            tap.max_maxrec,
            tap.execution_duration,
            tap.max_execution_duration,
            int(tap.destruction_days * 86400),
            tap.upload_limit_bytes,
        )
        return Response(xml, media_type=_XML)

    @router.get("/tables")
    async def tables(service: Service) -> Response:
        tables = await run_in_threadpool(service.engine.published_tables)
        xml = tables_xml(
            tables, service.engine.schema_descriptions(tables), service.engine.tap_schema()
        )
        return Response(xml, media_type=_XML)

    @router.get("/tables/{name}")
    async def table(name: str, service: Service) -> Response:
        tables = await run_in_threadpool(service.engine.published_tables)
        xml = tables_xml(
            tables,
            service.engine.schema_descriptions(tables),
            service.engine.tap_schema(),
            only=name,
        )
        if b"<name>" not in xml:
            return PlainTextResponse(f"no table {name}\n", status_code=404)
        return Response(xml, media_type=_XML)

    return router
