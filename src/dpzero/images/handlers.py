"""HTTP handlers of the image services: ``/api/datalink`` and ``/api/cutout`` (SODA).

Requests pass the platform's authentication gate first (``read:image`` scope, the
``image`` rate limit); the gate puts the caller in ``request.state.user``. IVOA
parameter names are case-insensitive: keys are upper-cased once, here.
"""

from __future__ import annotations

import logging
from typing import Annotated

import pyarrow as pa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from dpzero.auth import get_user
from dpzero.config import Settings
from dpzero.images.cutout import parse_region
from dpzero.images.faults import ImageServiceError, UsageFault
from dpzero.images.service import CatalogQuery, ImageService

__all__ = ["get_image_service", "images_router"]

_VOTABLE = "application/x-votable+xml;content=datalink"
_MAX_IMAGES_PER_OBJECT = 10_000
_FITS = "application/fits"
_log = logging.getLogger("dpzero.images")


async def _parameters(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key.upper(), []).append(value)
    if request.method == "POST":
        try:
            form = await request.form()
        except Exception:  # a malformed body is the client's mistake
            raise UsageFault("the request body is not a readable form") from None
        for key, value in form.multi_items():
            if isinstance(value, str):
                params.setdefault(key.upper(), []).append(value)
    return params


def _fault(exc: ImageServiceError) -> PlainTextResponse:
    return PlainTextResponse(exc.message + "\n", status_code=exc.status_code)


def get_image_service(request: Request) -> ImageService:
    """The image service of the application (opened in its lifespan)."""
    return request.app.state.image_service


def get_catalog_query(request: Request) -> CatalogQuery | None:
    """ADQL over the TAP service's catalogs and ``ivoa.ObsCore`` (for object IDs)."""
    tap = getattr(request.app.state, "tap_service", None)
    if tap is None:
        return None
    engine = tap.engine

    def run(adql: str) -> pa.Table:
        return engine.execute(adql, {}, _MAX_IMAGES_PER_OBJECT).read_all()

    return run


Service = Annotated[ImageService, Depends(get_image_service)]
Catalog = Annotated[CatalogQuery | None, Depends(get_catalog_query)]
User = Annotated[str, Depends(get_user)]


def _check_format(params: dict[str, list[str]], accepted: tuple[str, ...]) -> None:
    for value in params.get("RESPONSEFORMAT", []):
        if value.replace(" ", "").lower() not in accepted:
            raise UsageFault(f"RESPONSEFORMAT {value!r} is not served; use {accepted[0]}")


def _one_id(params: dict[str, list[str]]) -> str:
    ids = params.get("ID", [])
    if not ids or not ids[0].strip():
        raise UsageFault("the ID parameter is missing (ID=butler://<repo-label>/<dataset UUID>)")
    if len(ids) > 1:
        raise UsageFault(f"one ID per request, got {len(ids)}")
    return ids[0]


def images_router(settings: Settings) -> APIRouter:
    """The routes of DataLink and cutouts."""
    router = APIRouter()

    def base_url(request: Request) -> str:
        return settings.base_url.rstrip("/") if settings.base_url \
            else str(request.base_url).rstrip("/")  # fmt: skip

    @router.api_route("/api/datalink/links", methods=["GET", "POST"])
    async def links(request: Request, service: Service, catalog: Catalog, user: User) -> Response:
        """DataLink ``{links}``: the file and the cutout service of each ID.

        An ID is a dataset (``butler://…``) or a catalog object
        (``dp01_dc2_catalogs.object?<objectId>``): the images holding the object.
        """
        try:
            params = await _parameters(request)
            _check_format(
                params,
                (
                    "application/x-votable+xml;content=datalink",
                    "application/x-votable+xml",
                    "votable",
                ),
            )
            ids = [i for i in params.get("ID", []) if i.strip()]
            if not ids:
                raise UsageFault(
                    "the ID parameter is missing (ID=butler://<repo-label>/<dataset UUID> "
                    "or ID=<database>.<table>?<objectId>)"
                )
            if len(ids) > 100:
                raise UsageFault(f"at most 100 IDs per request, got {len(ids)}")
            document = await run_in_threadpool(
                service.links,
                ids,
                base_url(request),
                auth_required=settings.auth.enabled,
                catalog=catalog,
            )
        except ImageServiceError as exc:
            return _fault(exc)
        _log.info("datalink %s: %d IDs", user, len(ids))
        return Response(document, media_type=_VOTABLE)

    @router.get("/api/datalink/file")
    async def dataset_file(request: Request, service: Service, user: User) -> Response:
        """The dataset's file, streamed from the datastore (local or S3)."""
        try:
            dataset_id = _one_id(await _parameters(request))
            file = await run_in_threadpool(service.dataset_file, dataset_id)
        except ImageServiceError as exc:
            return _fault(exc)
        _log.info("file %s: %s", user, dataset_id)
        if file.uri.isLocal:
            return FileResponse(
                file.uri.ospath, media_type=file.content_type, filename=file.filename
            )
        return StreamingResponse(
            file.chunks(),
            media_type=file.content_type,
            headers={
                "content-length": str(file.size),
                "content-disposition": f'attachment; filename="{file.filename}"',
            },
        )

    @router.api_route("/api/cutout/sync", methods=["GET", "POST"])
    async def cutout_sync(request: Request, service: Service, user: User) -> Response:
        """SODA sync: a FITS cutout of one image holding one region."""
        try:
            params = await _parameters(request)
            _check_format(params, (_FITS, "fits", "image/fits"))
            dataset_id = _one_id(params)
            region = parse_region(params)
            cutout = await run_in_threadpool(service.cutout, dataset_id, region)
        except ImageServiceError as exc:
            return _fault(exc)
        _log.info("cutout %s: %s %s -> %s", user, dataset_id, region.describe(), cutout.box)
        return Response(
            cutout.data,
            media_type=_FITS,
            headers={"content-disposition": f'inline; filename="{cutout.filename}"'},
        )

    return router
